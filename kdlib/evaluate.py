"""Speaker-verification evaluation, one path for every notebook and the zoo: embeddings in batches, a trial
list or all pairs of a fixed set scored by cosine similarity, EER and minDCF.

- whole utterances (``seconds=None``): a :class:`kdlib.models.SpeakerModel` runs its front end clip by
  clip, then its encoder on batches of clips with the same number of frames. Nothing is padded or cut, so
  the embeddings are those of one clip at a time; other models (any callable) run clip by clip.
- fixed crops (``seconds=2.0``): centred crops, wrap-padded when shorter, in batches; much faster on a CPU
  where many variants are compared.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from kdlib import metrics
from kdlib.config import resolve_device
from kdlib.datasets import centred_crops, map_clips
from kdlib.sources import Source


@torch.no_grad()  # not inference_mode: the outputs are often cached and trained on later
def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 64,
            device: str | None = None) -> torch.Tensor:
    """``fn`` over ``x`` in batches on ``device`` (by kdlib's device rule; a module is moved there), outputs
    concatenated on the CPU."""
    device = resolve_device(fn, device)
    if isinstance(fn, torch.nn.Module):
        fn.to(device)
    return torch.cat([fn(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])


def _prepare(model, device: str | None) -> str:
    device = resolve_device(model, device)
    if isinstance(model, torch.nn.Module):
        model.to(device).eval()
    return device


def _clips(fn, source: Source, paths: list[str], device: str, desc: str, progress: bool,
           inputs: dict | None) -> list:
    """``fn`` over each clip's audio, or over its entry in ``inputs`` (precomputed ``(1, ...)`` model inputs per
    path, those of equal shape in batches)."""
    if inputs is None:
        return map_clips(fn, source, paths, device, desc, progress)
    missing = [p for p in paths if p not in inputs]
    if missing:
        raise KeyError(f"{source.name}: no precomputed input for {len(missing)} clips, e.g. {missing[0]}")
    from kdlib.progress import bar

    # inputs of equal shape are stacked and run together: exact (nothing padded), and much faster
    by_shape: dict[tuple, list[int]] = {}
    for i, p in enumerate(paths):
        by_shape.setdefault(tuple(inputs[p].shape), []).append(i)
    out: list = [None] * len(paths)
    for group in bar(list(by_shape.values()), desc=desc, unit="shape", disable=not progress):
        for start in range(0, len(group), 32):
            chunk = group[start:start + 32]
            result = fn(torch.cat([inputs[paths[i]] for i in chunk]).to(device)).cpu()
            for i, value in zip(chunk, result):
                out[i] = value.unsqueeze(0)
    return out


@torch.inference_mode()
def embed(model: Callable[[torch.Tensor], torch.Tensor], source: Source, paths: list[str],
          seconds: float | None = None, batch_size: int = 32, device: str | None = None,
          progress: bool = True, inputs: dict | None = None) -> torch.Tensor:
    """Embeddings ``(len(paths), dim)`` of whole clips (``seconds=None``) or of centred ``seconds``-long crops,
    in the order of ``paths``. A model that is an ``nn.Module`` is put in eval mode on the device.

    ``inputs`` (``{path: (1, ...) tensor}``) replaces each clip's audio by a precomputed input, e.g. the
    output of a frozen front end that many compared models share, computed once per clip."""
    from kdlib.models.speaker import SpeakerModel

    device = _prepare(model, device)
    if seconds is not None:
        if inputs is not None:
            raise ValueError("precomputed inputs are whole clips; leave seconds=None")
        return batched(model, centred_crops(source, paths, seconds), batch_size, device)
    unique = sorted(set(paths))
    if isinstance(model, SpeakerModel):
        feats = _clips(model.frontend, source, unique, device, "features", progress, inputs)
        by_frames: dict[int, list[int]] = {}
        for i, f in enumerate(feats):
            by_frames.setdefault(f.shape[-1], []).append(i)
        out: list[torch.Tensor | None] = [None] * len(unique)
        for group in by_frames.values():
            stacked = torch.cat([feats[i] for i in group])
            for i, e in zip(group, batched(model.encoder, stacked, batch_size, device)):
                out[i] = e
    else:
        out = [e[0].float() for e in _clips(model, source, unique, device, "embedding", progress, inputs)]
    index = {p: i for i, p in enumerate(unique)}
    return torch.stack([out[index[p]] for p in paths])


def all_pairs_scores(emb: torch.Tensor, speakers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores and labels of every pair of rows (i < j): a dense trial list over a fixed set."""
    e = torch.nn.functional.normalize(emb.float(), dim=1)
    sim = (e @ e.T).numpy()
    i, j = np.triu_indices(len(speakers), k=1)
    spk = np.asarray(speakers)
    return sim[i, j], (spk[i] == spk[j]).astype(int)


def sv(model: Callable[[torch.Tensor], torch.Tensor], source: Source, *, trials: str | None = None,
       rows: list[dict] | None = None, seconds: float | None = None, batch_size: int = 32,
       device: str | None = None, progress: bool = True, inputs: dict | None = None) -> dict:
    """Speaker verification of ``model`` on ``source``: either the trial list named ``trials`` (e.g.
    ``"trials"``, ``"trials_other"``) or every pair of ``rows`` (a fixed set, speakers from the rows).

    Returns ``eer`` and ``min_dcf`` (fractions), ``scores`` and ``labels`` (for plots), ``n_trials``, and
    ``embeddings`` (in the order of ``rows``, or of the trial list's sorted paths) with their ``paths``.
    ``inputs``: precomputed model inputs per path instead of the audio (see :func:`embed`)."""
    if (trials is None) == (rows is None):
        raise ValueError("evaluate.sv needs either trials (a trial list's name) or rows (scored as all pairs)")
    if trials is not None:
        trial_list = source.trials(trials)
        paths = sorted({p for _, a, b in trial_list for p in (a, b)})
        emb = embed(model, source, paths, seconds, batch_size, device, progress, inputs)
        index = {p: i for i, p in enumerate(paths)}
        scores = metrics.cosine_scores(emb[[index[a] for _, a, _ in trial_list]],
                                       emb[[index[b] for _, _, b in trial_list]]).numpy()
        labels = np.array([t[0] for t in trial_list])
    else:
        if not rows:
            raise ValueError(f"{source.name}: no rows to score")
        paths = [r["path"] for r in rows]
        emb = embed(model, source, paths, seconds, batch_size, device, progress, inputs)
        scores, labels = all_pairs_scores(emb, [r["speaker"] for r in rows])
    return {"eer": metrics.eer(scores, labels), "min_dcf": metrics.min_dcf(scores, labels), "scores": scores,
            "labels": labels, "n_trials": len(labels), "embeddings": emb, "paths": paths}
