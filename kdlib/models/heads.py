"""Classification heads and pooling for speaker models."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AAMSoftmax(nn.Module):
    r"""Additive angular margin softmax (ArcFace; Deng et al., CVPR 2019), the usual SV training loss.

    With unit-normalised embedding x and class weights W_c, cos θ_c = W_cᵀx and

        L = −log  e^{s·cos(θ_y + m)} / (e^{s·cos(θ_y + m)} + Σ_{c≠y} e^{s·cos θ_c}).

    Where θ_y + m would pass π, the target logit becomes cos θ_y − m·sin m (the standard monotonic
    fallback). ``forward`` returns the loss and the margin-free logits s·cos θ (for accuracy or KD).
    """

    def __init__(self, embed_dim: int, n_classes: int, margin: float = 0.2, scale: float = 30.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_classes, embed_dim))
        nn.init.xavier_normal_(self.weight, gain=1)
        self.margin, self.scale = margin, scale
        self.cos_m, self.sin_m = math.cos(margin), math.sin(margin)
        self.th, self.mm = math.cos(math.pi - margin), math.sin(math.pi - margin) * margin

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(emb), F.normalize(self.weight))

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        """Margin-free scaled cosine logits ``s·cos θ``."""
        return self.scale * self.cosine(emb)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos = self.cosine(emb).float()
        sin = torch.sqrt((1.0 - cos * cos).clamp(0, 1))
        phi = cos * self.cos_m - sin * self.sin_m
        phi = torch.where(cos - self.th > 0, phi, cos - self.mm)
        one_hot = F.one_hot(labels, cos.shape[1]).bool()
        loss = F.cross_entropy(self.scale * torch.where(one_hot, phi, cos), labels)
        return loss, self.scale * cos


def _check_every_class(labels: torch.Tensor, n_classes: int) -> None:
    missing = sorted(set(range(n_classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"no embeddings for classes {missing[:5]}{'...' if len(missing) > 5 else ''}")


@torch.no_grad()
def centroid_head(
    embeddings: torch.Tensor, labels: torch.Tensor, n_classes: int, scale: float = 30.0, margin: float = 0.2
) -> AAMSoftmax:
    """A cosine classifier for a trained embedding extractor whose training head was not kept: each class
    vector is the mean of the class's unit-normalised embeddings, so ``logits(e) = s · cos(e, μ_c)``."""
    _check_every_class(labels, n_classes)
    unit = F.normalize(embeddings.float(), dim=-1)
    sums = torch.zeros(n_classes, unit.shape[1]).index_add_(0, labels.long(), unit)
    head = AAMSoftmax(unit.shape[1], n_classes, margin=margin, scale=scale)
    head.weight.copy_(F.normalize(sums, dim=-1))
    return head.requires_grad_(False)


def fitted_head(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    scale: float = 30.0,
    margin: float = 0.2,
    steps: int = 300,
    lr: float = 1e-2,
    seed: int = 0,
) -> AAMSoftmax:
    """The other way to give a frozen embedding extractor a classifier: an AAM-softmax head trained on its
    embeddings (full batch, Adam, ``steps`` steps, seeded), then frozen. :func:`centroid_head` needs no
    training; this one learns class vectors that separate the classes with the margin."""
    _check_every_class(labels, n_classes)
    with torch.random.fork_rng():  # seeded here, the caller's generator left as it was
        torch.manual_seed(seed)
        head = AAMSoftmax(embeddings.shape[1], n_classes, margin=margin, scale=scale)
    optimizer = torch.optim.Adam(head.parameters(), lr)
    x, y = embeddings.detach().float(), labels.long()
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad()
            head(x, y)[0].backward()
            optimizer.step()
    return head.requires_grad_(False)


class PredictionHeads(nn.Module):
    """DistilHuBERT's prediction heads (Chang, Yang and Lee, ICASSP 2022, arXiv 2110.01900): ``n_heads``
    separate ``Linear(dim, dim) → GELU → Linear(dim, out_dim)`` maps from the student's last hidden state, head
    k predicting teacher layer k of :func:`kdlib.kd.layers.distil_layers` (``out_dim``: ``dim`` unless the
    target is wider, e.g. several teachers' layers concatenated). Training only; dropped after KD.
    ``forward(h)`` with ``h`` of shape ``(batch, frames, dim)`` returns ``(batch, n_heads, frames, out_dim)``."""

    def __init__(self, dim: int, n_heads: int = 3, out_dim: int | None = None):
        super().__init__()
        out_dim = out_dim or dim
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, out_dim)) for _ in range(n_heads)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(h) for head in self.heads], dim=1)
