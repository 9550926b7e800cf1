"""Linear probes on frozen features: how much speaker or keyword information a representation holds.

Every feature is pooled the same way, the mean and standard deviation over time, then standardised and
fed to a multinomial logistic regression (scikit-learn). Probes run on held-out speakers, so they measure
what the frozen model encodes rather than what it memorised:

- ``speaker``: test speakers' sentences, half of each speaker's utterances to fit, half to score;
- ``keyword``: the 12 KWS classes on test speakers' one-second clips, fitted on half of the speakers and
  scored on the others.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from kdlib.datasets import AudioCache
from kdlib.sources import KWS_LABELS, Source


def probe_tasks(source: Source, split: str = "test") -> dict[str, dict]:
    """Rows and labels of the ``speaker`` and ``keyword`` probes, with their fit/score partition."""
    by_speaker = source.by_speaker(split, "sentence")
    sid_rows, sid_fit = [], []
    for rows in by_speaker.values():
        for i, row in enumerate(rows):
            sid_rows.append(row)
            sid_fit.append(i % 2 == 0)
    speakers = sorted(by_speaker)
    kws_rows = [r for r in source.select(split, ("keyword", "unknown", "silence")) if r["label"] in KWS_LABELS]
    fit_speakers = set(speakers[::2])
    return {
        "speaker": {"rows": sid_rows, "labels": np.array([speakers.index(r["speaker"]) for r in sid_rows]),
                    "fit": np.array(sid_fit)},
        "keyword": {"rows": kws_rows, "labels": np.array([KWS_LABELS.index(r["label"]) for r in kws_rows]),
                    "fit": np.array([r["speaker"] in fit_speakers for r in kws_rows])},
    }


def mean_std(frames: torch.Tensor) -> np.ndarray:
    """Mean and standard deviation over time of ``(frames, dim)`` features."""
    return torch.cat([frames.mean(0), frames.std(0, unbiased=False)]).float().numpy()


@torch.inference_mode()
def pooled_features(layers_fn: Callable[[torch.Tensor], list[torch.Tensor]], source: Source, rows: list[dict],
                    device: str = "cpu", progress: bool = True) -> list[np.ndarray]:
    """For each layer returned by ``layers_fn(wave)`` (a list of ``(1, frames, dim)``), an
    ``(n_rows, 2·dim)`` matrix of mean+std pooled features."""
    from tqdm.auto import tqdm

    audio = AudioCache(source)
    per_layer: list[list[np.ndarray]] | None = None
    for row in tqdm(rows, desc="features", disable=not progress, leave=False):
        wave = torch.from_numpy(audio(row["path"])).unsqueeze(0).to(device)
        layers = layers_fn(wave)
        if per_layer is None:
            per_layer = [[] for _ in layers]
        for store, hidden in zip(per_layer, layers):
            store.append(mean_std(hidden[0].cpu()))
    return [np.stack(store) for store in per_layer or []]


def linear_probe(features: np.ndarray, labels: np.ndarray, fit: np.ndarray, seed: int = 0) -> float:
    """Accuracy of a standardised logistic regression fitted on ``fit`` rows and scored on the rest."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if fit.all() or not fit.any():
        raise ValueError("a probe needs both fit and score rows")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5, random_state=seed))
    clf.fit(features[fit], labels[fit])
    return float((clf.predict(features[~fit]) == labels[~fit]).mean())


def layerwise_probes(layers_fn, source: Source, split: str = "test", device: str = "cpu",
                     progress: bool = True) -> dict[str, list[float]]:
    """``{task: [accuracy of layer 0, layer 1, ...]}`` for the speaker and keyword probes."""
    out = {}
    for task, spec in probe_tasks(source, split).items():
        feats = pooled_features(layers_fn, source, spec["rows"], device, progress)
        out[task] = [linear_probe(f, spec["labels"], spec["fit"]) for f in feats]
    return out


def mfcc_frames(wave: torch.Tensor, sample_rate: int = 16_000, cmvn: bool = True) -> torch.Tensor:
    """13 MFCCs with deltas and delta-deltas at the SSL frame rate (25 ms windows every 20 ms):
    ``(batch, frames, 39)``. Frame i covers samples [320·i, 320·i + 400), the same as a wav2vec 2.0 / HuBERT
    CNN output frame. ``cmvn`` normalises each utterance's mean and variance (for k-means targets); leave it
    off for probes, whose mean+std pooling would otherwise see only zeros and ones."""
    import torchaudio

    mfcc = torchaudio.transforms.MFCC(sample_rate, n_mfcc=13, melkwargs={
        "n_fft": 400, "win_length": 400, "hop_length": 320, "n_mels": 40, "center": False}).to(wave.device)
    m = mfcc(wave.float())
    feats = torch.cat([m, torchaudio.functional.compute_deltas(m),
                       torchaudio.functional.compute_deltas(torchaudio.functional.compute_deltas(m))], dim=1)
    if cmvn:
        feats = (feats - feats.mean(-1, keepdim=True)) / (feats.std(-1, keepdim=True) + 1e-5)
    return feats.transpose(1, 2)
