"""Joint keyword spotting and speaker verification on one speech encoder (Kerpicci, Nguyen, Zhang and Visser,
*Application of Knowledge Distillation to Multi-task Speech Representation Learning*, arXiv 2210.16611; after
Hussain et al., ICASSP 2022).

One encoder (an SSL model or its distilled student) feeds one linear head per task:

- KWS: the frames' mean → ``Linear(dim, n_keywords)``, cross-entropy over the 12 Speech Commands classes;
- SV: the frames' mean and standard deviation → ``Linear(2·dim, embed_dim)``, an angular-margin softmax over
  the training speakers (the paper's A-softmax; kdlib's :class:`kdlib.models.AAMSoftmax` here, the margin and
  scale not being given in the paper). The SV training head is dropped after training; the embedding is kept.

Training alternates one KWS batch and one SV batch (:func:`alternate`); ``frozen=True`` trains the heads only.
One forward pass gives both answers (:meth:`JointModel.forward`): the keyword logits and the speaker
embedding of the same clip.
"""

from __future__ import annotations

from itertools import cycle, islice
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from kdlib import metrics
from kdlib.models.heads import AAMSoftmax, stats_pool

TASKS = ("kws", "sv")


class JointModel(nn.Module):
    """``encoder(x) -> (batch, frames, dim)`` plus a KWS head and an SV embedding head (and its AAM-softmax
    training head). ``frozen``: the encoder is not trained (its parameters get no gradient)."""

    def __init__(self, encoder: Callable[[torch.Tensor], torch.Tensor], dim: int, n_keywords: int, n_speakers: int,
                 embed_dim: int = 192, margin: float = 0.2, scale: float = 30.0, frozen: bool = False):
        super().__init__()
        self.encoder = encoder
        self.kws_head = nn.Linear(dim, n_keywords)
        self.sv_head = nn.Linear(2 * dim, embed_dim)
        self.sv_loss = AAMSoftmax(embed_dim, n_speakers, margin=margin, scale=scale)
        self.frozen = frozen
        if frozen and isinstance(encoder, nn.Module):
            encoder.requires_grad_(False)

    def train(self, mode: bool = True) -> "JointModel":
        """A frozen encoder stays in eval mode (no dropout) while the heads train."""
        super().train(mode)
        if self.frozen and isinstance(self.encoder, nn.Module):
            self.encoder.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen:
            with torch.no_grad():
                return self.encoder(x)
        return self.encoder(x)

    def keyword_logits(self, frames: torch.Tensor) -> torch.Tensor:
        return self.kws_head(frames.mean(dim=1))

    def embedding(self, frames: torch.Tensor) -> torch.Tensor:
        return self.sv_head(stats_pool(frames, dim=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint inference, one encoder pass: ``(keyword logits, speaker embedding)``."""
        frames = self.features(x)
        return self.keyword_logits(frames), self.embedding(frames)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """A batch of one task: ``{"task": "kws" | "sv", "wave": ..., "label": ...}``."""
        task = batch.get("task")
        if task not in TASKS:
            raise ValueError(f"batch task must be one of {TASKS}, got {task!r}")
        frames = self.features(batch["wave"])
        if task == "kws":
            logits = self.keyword_logits(frames)
            loss = F.cross_entropy(logits, batch["label"])
        else:
            loss, logits = self.sv_loss(self.embedding(frames), batch["label"])
        return loss, {f"{task}_loss": loss.detach(), f"{task}_accuracy": metrics.accuracy(logits, batch["label"])}


def alternate(kws_batches: Iterable, sv_batches: Iterable, steps: int) -> "Alternating":
    """``steps`` batches taking turns, KWS first: each KWS batch ``(wave, label)`` becomes ``{"task": "kws",
    "wave", "label"}``, each SV batch likewise with ``"sv"``; a loader that runs out starts again."""
    return Alternating(kws_batches, sv_batches, steps)


class Alternating:
    """An iterable of :func:`alternate`'s batches with a length (for :func:`kdlib.train.fit`)."""

    def __init__(self, kws_batches: Iterable, sv_batches: Iterable, steps: int):
        if steps < 1:
            raise ValueError(f"steps must be positive, got {steps}")
        self.loaders, self.steps = {"kws": kws_batches, "sv": sv_batches}, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        streams = {task: _endless(loader) for task, loader in self.loaders.items()}
        for task in islice(cycle(TASKS), self.steps):
            wave, label = next(streams[task])
            yield {"task": task, "wave": wave, "label": label}


def _endless(loader: Iterable):
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("a task's loader yields no batches")
