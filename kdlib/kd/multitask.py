"""Joint keyword spotting and speaker verification on one speech encoder (Kerpicci, Nguyen, Zhang and Visser,
*Application of Knowledge Distillation to Multi-task Speech Representation Learning*, arXiv 2210.16611; after
Hussain et al., ICASSP 2022).

One encoder (an SSL model or its distilled student) feeds one linear head per task:

- KWS: the frames' mean → ``Linear(dim, n_keywords)``, cross-entropy over the 12 Speech Commands classes;
- SV: the frames' mean and standard deviation → ``Linear(2·dim, embed_dim)``, an angular-margin softmax over
  the training speakers (the paper's A-softmax; kdlib's :class:`kdlib.models.AAMSoftmax` here, the margin and
  scale not being given in the paper). The SV training head is dropped after training; the embedding is kept.

Training alternates one KWS batch and one SV batch (:func:`alternate`, :func:`fine_tune`); ``frozen=True``
trains the heads only. One forward pass gives both answers (:meth:`JointModel.forward`): the keyword logits
and the speaker embedding of the same clip; :func:`score` measures both (KWS accuracy, SV EER and minDCF on
sentence trials and on keyword-clip trials).

The encoder is an SSL model's last hidden state, or, for a DistilHuBERT student whose prediction heads are
kept after distillation (as the paper does), one head's prediction (:class:`EncoderOutput`). One readout rule for
teachers and students alike is ``EncoderOutput(..., head="layers")`` with ``JointModel(..., layers=R)``: every
representation the encoder has (its hidden states, and a student's kept heads' predictions), mixed for each task by
its own learned weights, as SUPERB's featurizer (Yang et al., Interspeech 2021) does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import cycle, islice

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdlib import train
from kdlib.data.datasets import BucketBatches
from kdlib.data.features import stats_pool
from kdlib.evaluation import metrics
from kdlib.evaluation.superb import WeightedLayerSum
from kdlib.evaluation.verification import batched, score_trials
from kdlib.models.heads import AAMSoftmax, PredictionHeads

TASKS = ("kws", "sv")


class EncoderOutput(nn.Module):
    """The frames ``(batch, frames, width)`` the task heads read from an SSL model (a transformers model, or
    one reading cached inputs, :func:`kdlib.models.ssl.without_stem`): its last hidden state, or, with
    DistilHuBERT ``heads`` kept after distillation, the prediction of head ``head`` (default the last one,
    which predicts the teacher's last layer: the student's stand-in for what the teacher's task heads read),
    or of every head, averaged (``"mean"``) or side by side (``"concat"``: the width times the heads). With
    one head read, the others are kept (and counted) but get no gradient.

    ``head="layers"``: every representation, stacked as ``(batch, frames, R, width)`` for a
    :class:`JointModel` made with ``layers=R`` to mix: the hidden states (the stem's output and each layer's)
    followed, with ``heads``, by each head's prediction; :meth:`representations` says how many."""

    READINGS = ("mean", "concat", "layers")

    def __init__(self, model: nn.Module, heads: PredictionHeads | None = None, head: int | str = -1):
        super().__init__()
        if isinstance(head, str):
            if head not in self.READINGS:
                raise ValueError(f"head must be an index or one of {self.READINGS}, got {head!r}")
        elif heads is not None and not -len(heads.heads) <= head < len(heads.heads):
            raise ValueError(f"no prediction head {head}: there are {len(heads.heads)}")
        self.model, self.heads, self.head = model, heads, head

    def width(self, hidden: int) -> int:
        """The frames' width, for a model whose hidden states are ``hidden`` wide."""
        if self.heads is None:
            return hidden
        out = self.heads.heads[0][-1].out_features
        if self.head == "layers" and out != hidden:
            raise ValueError(
                f"head='layers' stacks hidden states ({hidden} wide) with the heads' predictions "
                f"({out} wide): they must be as wide"
            )
        return out * len(self.heads.heads) if self.head == "concat" else out

    def representations(self, n_layers: int) -> int:
        """How many representations ``head="layers"`` stacks, for a model of ``n_layers`` transformer layers."""
        return n_layers + 1 + (0 if self.heads is None else len(self.heads.heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head == "layers":
            states = list(self.model(x, output_hidden_states=True).hidden_states)
            if self.heads is not None:
                states += [h(states[-1]) for h in self.heads.heads]
            return torch.stack(states, dim=2)
        hidden = self.model(x).last_hidden_state
        if self.heads is None:
            return hidden
        if isinstance(self.head, int):
            return self.heads.heads[self.head](hidden)
        every = [h(hidden) for h in self.heads.heads]
        return torch.stack(every).mean(0) if self.head == "mean" else torch.cat(every, dim=-1)


class JointModel(nn.Module):
    """``encoder(x) -> (batch, frames, dim)`` plus a KWS head and an SV embedding head (and its AAM-softmax
    training head). ``frozen``: the encoder is not trained (its parameters get no gradient).

    ``layers=R``: the encoder gives ``(batch, frames, R, dim)`` (:class:`EncoderOutput` with ``head="layers"``)
    and each task mixes the R representations with its own learned weights, ``Σ_r softmax(w)_r h_r``
    (:class:`kdlib.evaluation.superb.WeightedLayerSum`, counted among the task heads).

    ``standardise``: each head's pooled input goes through a batch norm first (each feature to zero mean and unit
    variance over the batch, running statistics at test time; as ECAPA-TDNN normalises its pooled statistics).
    Without it, a few outlier features of large magnitude, as Whisper's residual stream has, dominate the
    normalised speaker embedding and the angular-margin loss barely moves."""

    def __init__(
        self,
        encoder: Callable[[torch.Tensor], torch.Tensor],
        dim: int,
        n_keywords: int,
        n_speakers: int,
        embed_dim: int = 192,
        margin: float = 0.2,
        scale: float = 30.0,
        frozen: bool = False,
        layers: int | None = None,
        standardise: bool = False,
    ):
        super().__init__()
        self.encoder = encoder
        self.kws_layers = WeightedLayerSum(layers) if layers else None
        self.sv_layers = WeightedLayerSum(layers) if layers else None

        def head(n_in: int, n_out: int) -> nn.Module:
            linear = nn.Linear(n_in, n_out)
            return nn.Sequential(nn.BatchNorm1d(n_in), linear) if standardise else linear

        self.kws_head, self.sv_head = head(dim, n_keywords), head(2 * dim, embed_dim)
        self.n_keywords = n_keywords
        self.sv_loss = AAMSoftmax(embed_dim, n_speakers, margin=margin, scale=scale)
        self.frozen = frozen
        if frozen and isinstance(encoder, nn.Module):
            encoder.requires_grad_(False)

    def train(self, mode: bool = True) -> JointModel:
        """A frozen encoder stays in eval mode (no dropout) while the heads train."""
        super().train(mode)
        if self.frozen and isinstance(self.encoder, nn.Module):
            self.encoder.eval()
        return self

    def task_heads(self) -> list[nn.Module]:
        """The task heads (KWS head, SV embedding head and its AAM-softmax training head, and each task's layer
        weights where the encoder gives several representations)."""
        mixers = [] if self.kws_layers is None else [self.kws_layers, self.sv_layers]
        return [self.kws_head, self.sv_head, self.sv_loss, *mixers]

    def layer_weights(self) -> dict[str, list[float]]:
        """Each task's weights softmax(w) over the encoder's representations (empty without ``layers``)."""
        if self.kws_layers is None:
            return {}
        return {"kws": self.kws_layers.layer_weights(), "sv": self.sv_layers.layer_weights()}

    def copy_heads_from(self, other: JointModel) -> JointModel:
        """Start from another model's trained task heads (e.g. heads fitted on the frozen encoder first)."""
        if len(self.task_heads()) != len(other.task_heads()):
            raise ValueError("both models must mix layers (layers=R) or neither")
        for mine, theirs in zip(self.task_heads(), other.task_heads()):
            mine.load_state_dict(theirs.state_dict())
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen:
            with torch.no_grad():
                return self.encoder(x)
        return self.encoder(x)

    def keyword_logits(self, frames: torch.Tensor) -> torch.Tensor:
        if self.kws_layers is not None:
            frames = self.kws_layers(frames)
        return self.kws_head(frames.mean(dim=1))

    def embedding(self, frames: torch.Tensor) -> torch.Tensor:
        if self.sv_layers is not None:
            frames = self.sv_layers(frames)
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


def alternate(kws_batches: Iterable, sv_batches: Iterable, steps: int) -> Alternating:
    """``steps`` batches taking turns, KWS first: each KWS batch ``(wave, label)`` becomes ``{"task": "kws",
    "wave", "label"}``, each SV batch likewise with ``"sv"``; a loader that runs out starts again."""
    return Alternating({"kws": kws_batches, "sv": sv_batches}, steps)


class Alternating:
    """``steps`` batches from ``loaders`` (``{task: loader of (wave, label)}``, one task or both), the tasks
    taking turns in the order of :data:`TASKS`, ``turns[task]`` batches per turn (default one each: two KWS
    batches per SV batch is ``{"kws": 2, "sv": 1}``); an iterable with a length (for :func:`kdlib.train.fit`)."""

    def __init__(self, loaders: dict[str, Iterable], steps: int, turns: dict[str, int] | None = None):
        if steps < 1:
            raise ValueError(f"steps must be positive, got {steps}")
        unknown = sorted(set(loaders) - set(TASKS))
        if unknown or not loaders:
            raise ValueError(f"loaders must be keyed by tasks among {TASKS}, got {sorted(loaders)}")
        turns = {task: 1 for task in loaders} if turns is None else turns
        if any(not isinstance(turns.get(task), int) or turns[task] < 1 for task in loaders):
            raise ValueError(
                f"turns must give every task of {sorted(loaders)} a positive number of batches, got {turns}"
            )
        self.loaders, self.steps = loaders, steps
        self.tasks = [task for task in TASKS if task in loaders for _ in range(turns[task])]

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        streams = {task: _endless(loader) for task, loader in self.loaders.items()}
        for task in islice(cycle(self.tasks), self.steps):
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


class _Pairs:
    """:class:`kdlib.data.datasets.BucketBatches` of one ``(inputs, labels)`` bank, as ``(inputs, labels)`` pairs."""

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor, batch: int, seed: int):
        self.batches = BucketBatches({"all": {"x": inputs, "y": labels}}, batch, seed=seed)

    def __iter__(self):
        return ((b["x"], b["y"]) for b in self.batches)


def fine_tune(
    model: JointModel,
    banks: dict[str, tuple[torch.Tensor, torch.Tensor]],
    *,
    steps_per_task: int,
    batch: int,
    encoder_lr: float,
    heads_lr: float,
    grad_clip: float | None = 5.0,
    schedule: str = "cosine",
    seed: int = 0,
    progress: bool = False,
    turns: dict[str, int] | None = None,
) -> train.History:
    """Train ``model`` on the tasks of ``banks`` (``{task: (inputs, labels)}``, one task or both):
    ``steps_per_task`` × (number of tasks) batches of ``batch`` items, the tasks alternating batch by batch (or
    ``turns[task]`` batches per turn, see :class:`Alternating`: the same budget, another mix), each bank
    shuffled anew every pass from ``seed``. Adam (as the paper), the encoder at ``encoder_lr`` (unless frozen)
    and the task heads at ``heads_lr``, ``schedule`` "cosine" (a decay over all the steps) or "constant",
    gradients clipped at norm ``grad_clip`` (None: not clipped)."""
    for task, (inputs, labels) in banks.items():
        if len(inputs) != len(labels):
            raise ValueError(f"{task}: {len(inputs)} inputs but {len(labels)} labels")
    loaders = {
        task: _Pairs(inputs, labels, batch, 1000 * TASKS.index(task) + seed) for task, (inputs, labels) in banks.items()
    }
    groups = [{"params": [p for head in model.task_heads() for p in head.parameters()], "lr": heads_lr}]
    encoder = model.encoder.parameters() if isinstance(model.encoder, nn.Module) else []
    encoder = [p for p in encoder if p.requires_grad]
    if encoder and not model.frozen:
        groups.append({"params": encoder, "lr": encoder_lr})
    optimizer = torch.optim.Adam(groups)
    turns = None if turns is None else {task: turns[task] for task in loaders if task in turns}
    return train.fit(
        model,
        Alternating(loaders, steps_per_task * len(loaders), turns),
        model.loss,
        epochs=1,
        optimizer=optimizer,
        schedule=schedule,
        grad_clip=grad_clip,
        seed=seed,
        progress=progress,
        desc=" + ".join(loaders),
    )


@torch.no_grad()
def score(
    model: JointModel,
    *,
    kws: tuple[torch.Tensor, torch.Tensor] | None = None,
    keyword_trials: np.ndarray | None = None,
    sentences: tuple[torch.Tensor, np.ndarray] | None = None,
    batch_size: int = 64,
    device: str | None = None,
) -> dict:
    """Both tasks from one forward pass per clip. ``kws``: ``(inputs, labels)`` of keyword-spotting clips, gives
    ``kws_accuracy``; ``keyword_trials``: ``(n, 3)`` ``(label, i, j)`` indexing those clips, gives
    ``keyword_sv_eer`` and ``keyword_sv_min_dcf``; ``sentences``: ``(inputs, trials)`` likewise, gives ``sv_eer``
    and ``sv_min_dcf`` (fractions). See :func:`kdlib.evaluation.verification.trial_indices` for the trial arrays."""
    if keyword_trials is not None and kws is None:
        raise ValueError("keyword trials index the KWS clips: pass kws as well")
    model.eval()
    n_keywords = model.n_keywords

    def both(x):
        logits, embedding = model(x)
        return torch.cat([logits, embedding], dim=1)

    out = {}
    if kws is not None:
        joint = batched(both, kws[0], batch_size, device)
        out["kws_accuracy"] = metrics.accuracy(joint[:, :n_keywords], kws[1])
        if keyword_trials is not None:
            out.update(_verify(joint[:, n_keywords:], keyword_trials, "keyword_"))
    if sentences is not None:
        out.update(_verify(batched(both, sentences[0], batch_size, device)[:, n_keywords:], sentences[1]))
    return out


def _verify(embeddings: torch.Tensor, trials: np.ndarray, prefix: str = "") -> dict:
    return {f"{prefix}sv_{key}": value for key, value in score_trials(embeddings, trials).items()}
