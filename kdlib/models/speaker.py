"""Speaker models as three replaceable parts: a front end (audio -> features), an encoder (features ->
embedding) and an optional training head (embedding -> speaker logits and loss).

Swapping a part is composition, never surgery: a teacher's encoder can take cached log-mel features
(``SpeakerModel(teacher.encoder)``), a rebuilt head can be attached (``SpeakerModel(encoder, head=head)``),
and :meth:`SpeakerModel.deployable` gives what ships: front end + encoder, no head.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from kdlib.evaluation import metrics
from kdlib.models.ecapa import ECAPA_TDNN
from kdlib.models.resnet import ResNet34

ARCHITECTURES = {"ecapa_tdnn": ECAPA_TDNN, "resnet34": ResNet34}
"""The speaker encoders :func:`speaker_model` builds and checkpoints name, by their name there."""


class SpeakerModel(nn.Module):
    """``forward(x)`` = ``encoder(frontend(x))``: the speaker embedding. ``frontend=None`` means the input
    already is the encoder's features. ``head`` (e.g. :class:`kdlib.models.AAMSoftmax`) is for training and
    speaker logits only."""

    def __init__(self, encoder: nn.Module, frontend: nn.Module | None = None, head: nn.Module | None = None):
        super().__init__()
        self.frontend = frontend if frontend is not None else nn.Identity()
        self.encoder = encoder
        self.head = head

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.frontend(x))

    def _need_head(self) -> nn.Module:
        if self.head is None:
            raise ValueError("this SpeakerModel has no head; attach one: SpeakerModel(encoder, frontend, head)")
        return self.head

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Margin-free speaker logits ``s·cos θ`` (for KD targets, accuracy and attributions)."""
        return self._need_head().logits(self(x))

    def loss(self, batch) -> tuple[torch.Tensor, dict]:
        """The head's training loss on a ``(x, speaker)`` batch and the training accuracy, the form
        :func:`kdlib.train.fit` expects."""
        x, label = batch
        loss, logits = self._need_head()(self(x), label)
        return loss, {"accuracy": metrics.accuracy(logits, label)}

    def classifier(self) -> nn.Module:
        """A module whose ``forward`` gives :meth:`logits` (what captum or a KD loss needs), sharing weights."""
        self._need_head()
        wrapper = _Logits(self)
        wrapper.training = self.training  # a new module starts in train mode; mirror the model's own
        return wrapper

    def deployable(self, frontend: nn.Module | None = None) -> SpeakerModel:
        """What ships: a copy of the front end (or ``frontend``, e.g. the log-mel front end of a model
        trained on cached features) and the encoder, without the training head, in eval mode."""
        front = frontend if frontend is not None else self.frontend
        return SpeakerModel(copy.deepcopy(self.encoder), copy.deepcopy(front)).eval()


class _Logits(nn.Module):
    def __init__(self, model: SpeakerModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.logits(x)


def speaker_model(
    architecture: str,
    n_classes: int | None = None,
    margin: float = 0.2,
    scale: float = 30.0,
    frontend: bool = True,
    **kwargs,
) -> SpeakerModel:
    """A fresh speaker model: ``architecture`` (``"ecapa_tdnn"`` or ``"resnet34"``, with its ``kwargs``) on a
    log-mel front end (``frontend=False``: features in), with an AAM-softmax head over ``n_classes``."""
    from kdlib.data.features import Fbank
    from kdlib.models.heads import AAMSoftmax

    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; kdlib has {sorted(ARCHITECTURES)}")
    encoder = ARCHITECTURES[architecture](**kwargs)
    head = AAMSoftmax(encoder.embed_dim, n_classes, margin=margin, scale=scale) if n_classes else None
    return SpeakerModel(encoder, Fbank(encoder.n_mels) if frontend else None, head)
