"""PyTorch datasets over a :class:`kdlib.data.sources.Source`: SV training crops, KWS items, whole utterances,
frame-aligned SSL crops, fixed crop banks; and kdlib's one loop over clips (:func:`map_clips`).

Audio goes through :func:`kdlib.data.audio.read_audio` (validation, resampling) and is cached in memory.
Random crops draw from torch's global generator, so ``torch.manual_seed`` (which ``kdlib.train.fit``
sets each epoch) makes them repeat.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from kdlib.data.audio import SAMPLE_RATE, crop, read_audio
from kdlib.data.sources import KWS_LABELS, Source


class AudioCache:
    """Waveforms of a source's clips, read once and kept in memory."""

    def __init__(self, source: Source):
        self.source, self._waves = source, {}

    def __call__(self, rel: str) -> np.ndarray:
        if rel not in self._waves:
            self._waves[rel] = read_audio(self.source.path(rel))
        return self._waves[rel]


def torch_seeded_rng() -> np.random.Generator:
    """A NumPy generator seeded from torch's global generator, so that ``torch.manual_seed`` (and a DataLoader
    worker's seed) decides every random crop."""
    return np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))


class SVTrainCrops(Dataset):
    """Random ``seconds``-long crops of training utterances with integer speaker labels.

    ``rows`` defaults to the source's train-split sentences. ``speakers`` lists the label order.
    """

    def __init__(self, source: Source, rows: list[dict] | None = None, seconds: float = 2.0):
        self.rows = rows if rows is not None else source.select("train", "sentence")
        if not self.rows:
            raise ValueError(f"{source.name}: no training utterances to crop")
        self.speakers = sorted({r["speaker"] for r in self.rows})
        self._index = {s: i for i, s in enumerate(self.speakers)}
        self.samples = int(seconds * SAMPLE_RATE)
        self.audio = AudioCache(source)

    @property
    def n_speakers(self) -> int:
        return len(self.speakers)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        row = self.rows[i]
        wave = crop(self.audio(row["path"]), self.samples, torch_seeded_rng())
        return torch.from_numpy(np.ascontiguousarray(wave)), self._index[row["speaker"]]


class KWSItems(Dataset):
    """One-second keyword-spotting items of one split: ``(wave, class index)`` over ``labels``.

    Long clips (Speech Commands' background noise for ``_silence_``) are cropped at random.
    """

    def __init__(self, source: Source, split: str, labels: tuple[str, ...] = KWS_LABELS, seconds: float = 1.0):
        kinds = ("keyword", "unknown", "silence")
        self.rows = [r for r in source.select(split, kinds) if r["label"] in labels]
        if not self.rows:
            raise ValueError(f"{source.name}: no keyword-spotting items in split {split!r}")
        self.labels = labels
        self._index = {label: i for i, label in enumerate(labels)}
        self.samples = int(seconds * SAMPLE_RATE)
        self.audio = AudioCache(source)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        row = self.rows[i]
        wave = self.audio(row["path"])
        wave = crop(wave, self.samples, torch_seeded_rng() if len(wave) > self.samples else None)
        return torch.from_numpy(np.ascontiguousarray(wave)), self._index[row["label"]]


class Utterances(Dataset):
    """Whole utterances by relative path (for embedding extraction); yields ``(wave, path)``."""

    def __init__(self, source: Source, paths: list[str]):
        self.paths, self.audio = list(paths), AudioCache(source)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return torch.from_numpy(self.audio(self.paths[i])), self.paths[i]


def multi_duration_crops(source: Source, rows: list[dict], durations: tuple[float, ...], seed: int = 0,
                         speakers: list[str] | None = None) -> dict[float, dict[str, torch.Tensor]]:
    """One random crop of every row per duration, drawn once with ``seed``: ``{seconds: {"wave": (n, samples),
    "label": (n,)}}``, labels indexing ``speakers`` (default: the rows' sorted speakers). Fixed crops let
    expensive per-crop work (teacher outputs, attributions) be computed once and cached."""
    if not rows:
        raise ValueError(f"{source.name}: no rows to crop")
    speakers = speakers or sorted({r["speaker"] for r in rows})
    index = {s: i for i, s in enumerate(speakers)}
    unknown = sorted({r["speaker"] for r in rows} - set(index))
    if unknown:
        raise ValueError(f"rows have speakers missing from `speakers`: {unknown[:5]}")
    audio, rng = AudioCache(source), np.random.default_rng(seed)
    labels = torch.tensor([index[r["speaker"]] for r in rows])
    return {d: {"wave": torch.stack([torch.from_numpy(crop(audio(r["path"]), int(d * SAMPLE_RATE), rng).copy())
                                     for r in rows]), "label": labels.clone()} for d in durations}


def random_subset(rows: list, n: int | None, rng: np.random.Generator) -> list:
    """``n`` of the rows drawn at random without replacement, kept in their order (all of them if ``n`` is
    None or not smaller). Not every k-th row: a manifest lists each speaker's clips in a fixed pattern, which
    a stride would alias with."""
    if n is None or n >= len(rows):
        return list(rows)
    return [rows[i] for i in sorted(rng.choice(len(rows), n, replace=False))]


class BucketBatches:
    """Mini-batches of cached tensors, each drawn from a single bucket (e.g. one crop duration, so that
    lengths match), buckets and items shuffled anew every pass from ``seed`` and the pass number.

    ``buckets``: ``{key: {field: tensor with items along dim 0}}``; yields ``{field: (batch, ...)}``."""

    def __init__(self, buckets: dict, batch_size: int, seed: int = 0):
        sizes = {k: {len(v) for v in b.values()} for k, b in buckets.items()}
        bad = {k: s for k, s in sizes.items() if len(s) != 1}
        if bad:
            raise ValueError(f"fields of a bucket must have equal lengths, got {bad}")
        self.buckets, self.batch_size, self.seed, self.passes = buckets, batch_size, seed, 0
        self._batches = [(k, i) for k, b in buckets.items() for i in range(next(iter(sizes[k])) // batch_size)]
        if not self._batches:
            raise ValueError(f"no bucket holds a full batch of {batch_size}")

    def __len__(self) -> int:
        return len(self._batches)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.passes)
        self.passes += 1
        perms = {k: torch.randperm(len(next(iter(b.values()))), generator=g) for k, b in self.buckets.items()}
        for j in torch.randperm(len(self._batches), generator=g).tolist():
            key, i = self._batches[j]
            idx = perms[key][i * self.batch_size:(i + 1) * self.batch_size]
            yield {field: t[idx] for field, t in self.buckets[key].items()}


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, (list, tuple)):
        return [_to_cpu(v) for v in value]
    return value


@torch.inference_mode()
def map_clips(fn: Callable, source: Source, paths: list[str], device: str = "cpu", desc: str = "clips",
              progress: bool = True) -> list:
    """kdlib's one loop over clips: ``fn`` applied to each whole clip as a ``(1, samples)`` tensor on
    ``device``, outputs moved to the CPU, in the order of ``paths``."""
    from kdlib.progress import bar

    audio = AudioCache(source)
    return [_to_cpu(fn(torch.from_numpy(audio(p)).unsqueeze(0).to(device)))
            for p in bar(paths, desc=desc, unit="clip", disable=not progress)]


def centred_crops(source: Source, paths: list[str], seconds: float) -> torch.Tensor:
    """Centred ``seconds``-long crops of the clips (wrap-padded when shorter), stacked: ``(n, samples)``."""
    audio, n = AudioCache(source), int(seconds * SAMPLE_RATE)
    return torch.stack([torch.from_numpy(crop(audio(p), n).copy()) for p in paths])


HOP, WINDOW = 320, 400
"""The SSL models' CNN stride and receptive field in samples (50 frames per second)."""


class FrameCrops(Dataset):
    """Frame-aligned random crops of clips for SSL pretraining and, when ``targets`` are given, their frame
    labels (``{path: (frames,) ints}``; frames past the clip are labelled −100)."""

    def __init__(self, source: Source, rows: list[dict], seconds: float, targets: dict | None = None):
        self.rows, self.audio, self.targets = rows, AudioCache(source), targets
        self.frames = (int(seconds * SAMPLE_RATE) - WINDOW) // HOP + 1
        self.samples = (self.frames - 1) * HOP + WINDOW

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        path = self.rows[i]["path"]
        wave = self.audio(path)
        total = (len(wave) - WINDOW) // HOP + 1
        start = int(torch.randint(0, max(1, total - self.frames + 1), ()).item())
        chunk = wave[start * HOP: start * HOP + self.samples]
        chunk = np.pad(chunk, (0, self.samples - len(chunk)))
        item = {"wave": torch.from_numpy(np.ascontiguousarray(chunk))}
        if self.targets is not None:
            labels = self.targets[path][start: start + self.frames]
            item["labels"] = torch.from_numpy(np.pad(labels, (0, self.frames - len(labels)), constant_values=-100))
        return item
