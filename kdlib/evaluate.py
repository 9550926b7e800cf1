"""Evaluation: speaker embeddings of whole utterances, SV trials scored by cosine, KWS accuracy."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from kdlib import metrics
from kdlib.datasets import Utterances
from kdlib.sources import Source


@torch.inference_mode()
def embed_utterances(embed: Callable[[torch.Tensor], torch.Tensor], source: Source, paths: list[str],
                     device: str = "cpu", progress: bool = True) -> dict[str, torch.Tensor]:
    """``{path: embedding}`` for whole utterances, one at a time (lengths differ)."""
    from tqdm.auto import tqdm

    out = {}
    for wave, path in tqdm(Utterances(source, sorted(set(paths))), desc="embedding", disable=not progress,
                           leave=False):
        out[path] = embed(wave.unsqueeze(0).to(device)).squeeze(0).float().cpu()
    return out


def evaluate_sv(embed: Callable[[torch.Tensor], torch.Tensor], source: Source, which: str = "trials",
                device: str = "cpu", progress: bool = True) -> dict:
    """Score trial list ``which`` by cosine similarity of ``embed`` outputs: ``eer``, ``min_dcf`` (fractions),
    plus ``scores`` and ``labels`` for plots."""
    trials = source.trials(which)
    emb = embed_utterances(embed, source, [p for _, a, b in trials for p in (a, b)], device, progress)
    a = torch.stack([emb[t[1]] for t in trials])
    b = torch.stack([emb[t[2]] for t in trials])
    scores = metrics.cosine_scores(a, b).numpy()
    labels = np.array([t[0] for t in trials])
    return {"eer": metrics.eer(scores, labels), "min_dcf": metrics.min_dcf(scores, labels), "scores": scores,
            "labels": labels}


@torch.inference_mode()
def evaluate_classifier(logits_fn: Callable[[torch.Tensor], torch.Tensor], dataset, device: str = "cpu",
                        batch_size: int = 64) -> dict:
    """Top-1 accuracy of ``logits_fn`` over a dataset of ``(wave, label)`` items, plus the predictions."""
    preds, labels = [], []
    for wave, label in DataLoader(dataset, batch_size=batch_size):
        preds.append(logits_fn(wave.to(device)).argmax(-1).cpu())
        labels.append(label)
    preds, labels = torch.cat(preds), torch.cat(labels)
    return {"accuracy": float((preds == labels).float().mean()), "predictions": preds.numpy(),
            "labels": labels.numpy()}


@torch.inference_mode()
def embed_fixed(embed: Callable[[torch.Tensor], torch.Tensor], source: Source, paths: list[str], seconds: float,
                device: str = "cpu", batch_size: int = 32) -> torch.Tensor:
    """Embeddings of centred ``seconds``-long crops (wrap-padded when shorter), in batches: ``(n, dim)``.

    Much faster than whole utterances on a CPU; used where many model variants are compared."""
    from kdlib.audio import SAMPLE_RATE, crop
    from kdlib.datasets import AudioCache

    audio, n = AudioCache(source), int(seconds * SAMPLE_RATE)
    waves = torch.stack([torch.from_numpy(crop(audio(p), n).copy()) for p in paths])
    return torch.cat([embed(waves[i:i + batch_size].to(device)).float().cpu()
                      for i in range(0, len(waves), batch_size)])


def all_pairs_scores(emb: torch.Tensor, speakers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores and labels of every pair of rows (i < j): a dense trial list over a fixed set."""
    e = torch.nn.functional.normalize(emb.float(), dim=1)
    sim = (e @ e.T).numpy()
    i, j = np.triu_indices(len(speakers), k=1)
    spk = np.asarray(speakers)
    return sim[i, j], (spk[i] == spk[j]).astype(int)
