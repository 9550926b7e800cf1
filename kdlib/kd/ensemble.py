"""Ensemble knowledge distillation of self-supervised speech models (Huang, Feng, Fu, Hsu, Yen, Tseng, Chang
and Lee, *Ensemble Knowledge Distillation of Self-Supervised Speech Models*, ICASSP 2023, arXiv 2302.12757).

A DistilHuBERT-style student (Chang, Yang and Lee, ICASSP 2022, arXiv 2110.01900: the teacher's front end and
first transformer layers, weights copied, plus prediction heads on its last hidden state) learns from K
teachers of the same width and frame rate at once. Three ways to do it, all with DistilHuBERT's L1 + cosine
loss (:func:`kdlib.kd.losses.distilhubert`):

- ``average``: one set of H heads predicts the teachers' layerwise average ``1/K Σ_k h_k^ℓ``;
- ``concat``: one set of H heads, each K times wider, predicts the concatenation ``[h_1^ℓ; …; h_K^ℓ]``;
- ``multihead``: K sets of H heads, set k predicting teacher k's layers.

With K = 1 every mode is ordinary DistilHuBERT distillation from one teacher. The heads exist for training
only: :meth:`EnsembleDistiller.deployable` is the student without them.

Teachers of different widths (Whisper tiny.en's 384 and base's 512) are brought to one width first with
:func:`to_width`; teachers of different depths give their layers at the same fractions of their depth
(:func:`kdlib.kd.layers.distil_layers`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kdlib import train
from kdlib.data.datasets import BucketBatches
from kdlib.kd import losses
from kdlib.models.heads import PredictionHeads

MODES = ("average", "concat", "multihead")


def heads_for(mode: str, dim: int, n_teachers: int, n_layers: int) -> PredictionHeads:
    """The prediction heads a mode needs: H heads of width ``dim`` (average), H heads of width ``K·dim``
    (concat), or K·H heads of width ``dim`` (multihead)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if n_teachers < 1 or n_layers < 1:
        raise ValueError(f"need at least one teacher and one layer, got {n_teachers} and {n_layers}")
    if mode == "average":
        return PredictionHeads(dim, n_layers)
    if mode == "concat":
        return PredictionHeads(dim, n_layers, out_dim=n_teachers * dim)
    return PredictionHeads(dim, n_teachers * n_layers)


class WidthMap(nn.Module):
    r"""A fixed linear map of a teacher's hidden states ``(..., D)`` to ``width`` features, so that teachers of
    different widths can be averaged layer by layer. Fitted once on a sample of frames ``X`` (rows: frames):

    - ``D > width``: the projection onto the ``width`` leading right singular vectors of ``X`` (uncentred
      PCA, ``y = x V_w``), the ``width``-dimensional subspace that keeps the most of the frames' energy
      ``Σ‖x‖²`` (Eckart and Young, 1936); :attr:`kept` is the share kept;
    - ``D = width``: the identity (a teacher already at the width keeps its own coordinates);
    - ``D < width``: zero-padding (nothing lost: norms and cosines unchanged).

    Uncentred, so that a layer's mean direction, which the cosine term of the loss sees, is kept. The
    coordinates of two teachers are not aligned by this map, as the paper's teachers' are not: its average of
    HuBERT and WavLM mixes unrelated bases too."""

    def __init__(self, frames: torch.Tensor, width: int):
        super().__init__()
        if frames.dim() != 2 or len(frames) < 1 or width < 1:
            raise ValueError(f"need frames (n, dim) and a width >= 1, got {tuple(frames.shape)} and {width}")
        dim = frames.shape[1]
        self.width, self.kept, self.identity = width, 1.0, dim == width
        if dim > width:
            x = frames.double()
            _, s, vh = torch.linalg.svd(x, full_matrices=False)
            self.kept = float(s[:width].pow(2).sum() / s.pow(2).sum())
            basis = vh[:width].T
        else:
            basis = torch.eye(dim, width, dtype=torch.float64)
        self.register_buffer("basis", basis.float())  # (dim, width)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        if states.shape[-1] != self.basis.shape[0]:
            raise ValueError(f"states of width {states.shape[-1]}; this map was fitted on width {self.basis.shape[0]}")
        if self.identity:
            return states
        return (states.float() @ self.basis).to(states.dtype)


def to_width(states: torch.Tensor, width: int, fit_on: int = 256) -> tuple[torch.Tensor, float]:
    """One teacher's cached target layers ``(crops, layers, frames, D)`` at ``width`` features, each layer
    through its own :class:`WidthMap` fitted on the frames of the first ``fit_on`` crops; returns the mapped
    states (same dtype) and the smallest share of energy a layer kept (1.0 when nothing was cut)."""
    if states.dim() != 4:
        raise ValueError(f"need (crops, layers, frames, dim) states, got shape {tuple(states.shape)}")
    mapped, kept = [], 1.0
    for layer in range(states.shape[1]):
        sample = states[:fit_on, layer].reshape(-1, states.shape[-1])
        width_map = WidthMap(sample, width)
        kept = min(kept, width_map.kept)
        mapped.append(torch.cat([width_map(chunk) for chunk in states[:, layer].split(512)]))
    return torch.stack(mapped, dim=1), kept


class EnsembleDistiller(nn.Module):
    """A student and its prediction heads, with ``loss(batch)`` for :func:`kdlib.train.fit`.

    ``student`` maps a batch's ``feats`` to an output with ``last_hidden_state`` ``(B, T, D)`` (a transformers
    SSL model, or the same reading cached inputs, :func:`kdlib.models.ssl.without_stem`); ``heads`` come from
    :func:`heads_for`. A batch is a dict with ``feats`` and ``targets``, the teachers' hidden states
    ``(B, K, H, T, D)`` (K teachers, H target layers). ``weights``: the teachers' weights in the layerwise
    average (:func:`kdlib.kd.losses.aggregate_teachers`; None: equal), or with multiple heads a ``(K, H)``
    weight per teacher and layer (:func:`kdlib.kd.losses.multi_teacher`; None: all 1)."""

    def __init__(
        self, student: nn.Module, heads: PredictionHeads, mode: str = "average", cos_weight: float = 1.0, weights=None
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if weights is not None and mode == "concat":
            raise ValueError(
                "weights apply to the layerwise average (per teacher) or to multiple heads (per "
                "teacher and layer), not to the concatenation"
            )
        self.student, self.heads, self.mode, self.cos_weight = student, heads, mode, cos_weight
        self.weights = weights

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """The heads' predictions ``(B, heads, T, width)``."""
        return self.heads(self.student(feats).last_hidden_state)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        targets = batch["targets"]
        predictions = self(batch["feats"])
        if self.mode == "multihead":
            loss, parts = losses.multi_teacher(predictions, targets, self.cos_weight, self.weights)
        else:
            target = losses.aggregate_teachers(targets, self.mode, self.weights)
            loss, parts = losses.distilhubert(predictions, target, self.cos_weight)
        return loss, parts

    def deployable(self) -> nn.Module:
        """What ships: the student alone (the prediction heads are dropped)."""
        return self.student


def distil(
    distiller: EnsembleDistiller,
    feats: torch.Tensor,
    targets: torch.Tensor,
    *,
    steps: int,
    batch: int,
    lr: float,
    heads_lr: float,
    warmup: float = 0.07,
    grad_clip: float = 5.0,
    seed: int = 0,
    progress: bool = False,
) -> train.History:
    """Distil on cached inputs for ``steps`` steps of ``batch`` items: ``feats`` what the student reads (e.g.
    a frozen stem's output) and ``targets`` ``(n, K, H, T, D)``, shuffled anew each pass from ``seed``.

    DistilHuBERT's optimiser: AdamW, betas (0.9, 0.98), weight decay 1e-6, a linear warm-up over the first
    ``warmup`` share of the steps then a cosine decay, gradients clipped at norm ``grad_clip``. The student's
    trainable weights take ``lr``, the new prediction heads ``heads_lr``. Returns the loss history."""
    if len(feats) != len(targets):
        raise ValueError(f"need one target per input, got {len(feats)} inputs and {len(targets)} targets")
    batches = BucketBatches({"crops": {"feats": feats, "targets": targets}}, batch, seed=seed)
    epochs = math.ceil(steps / len(batches))
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in distiller.student.parameters() if p.requires_grad], "lr": lr},
            {"params": list(distiller.heads.parameters()), "lr": heads_lr},
        ],
        betas=(0.9, 0.98),
        weight_decay=1e-6,
    )
    return train.fit(
        distiller,
        batches,
        distiller.loss,
        epochs=epochs,
        optimizer=optimizer,
        max_steps_per_epoch=math.ceil(steps / epochs),
        warmup_steps=max(1, round(warmup * steps)),
        grad_clip=grad_clip,
        seed=seed,
        progress=progress,
        desc="distillation",
    )
