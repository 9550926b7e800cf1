"""SUPERB-style evaluation of a frozen speech representation (Yang et al., *SUPERB: Speech processing Universal
PERformance Benchmark*, Interspeech 2021, arXiv 2105.01051): the upstream model is frozen, a learned
softmax-weighted sum of its layers feeds a light downstream model, one per task.

Four utterance-level tasks on held-out speakers of a :class:`kdlib.data.sources.Source`, each also scored on a
heavily distorted copy of its test clips (:data:`kdlib.data.augment.HARSH`), the downstream models being trained
on the ordinary clips only:

- ``sid``: speaker identification, the test speakers' sentences (alternate utterances of each speaker fit and
  score), accuracy;
- ``kws``: keyword spotting, the 12 Speech Commands classes, fitted on training speakers' clips and scored on
  the test speakers', accuracy;
- ``words``: word recognition (content), which of the keyword and auxiliary words a clip says (silence
  excluded), same clips, accuracy;
- ``sv``: speaker verification, an embedding trained with AAM-softmax on training speakers' sentences,
  scored by cosine similarity on the source's trial list, EER and minDCF.

Every clip is summarised once per layer by the mean and standard deviation of its frames
(:func:`layer_statistics`, ``(clips, layers, 2·dim)``); the downstream model mixes the layers' statistics
with the learned weights and applies a linear map. For the mean this is exactly SUPERB's weighted sum
followed by mean pooling (the two linear operations commute); for the standard deviation the pooling comes
before the mixing, which lets the statistics be computed once per model and makes every downstream model
train in about a second on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdlib.data import augment
from kdlib.data.datasets import centred_crops, random_subset
from kdlib.data.features import stats_pool
from kdlib.data.sources import KWS_LABELS, Source
from kdlib.evaluation import metrics
from kdlib.evaluation.probing import probe_split
from kdlib.evaluation.verification import batched, score_trials, trial_indices
from kdlib.models.heads import AAMSoftmax

TASKS = ("sid", "kws", "words", "sv")
CONDITIONS = ("clean", "harsh")
"""``clean``: the test clips as the source has them; ``harsh``: the same clips under
:data:`kdlib.data.augment.HARSH`."""


class WeightedLayerSum(nn.Module):
    r"""SUPERB's featurizer: ``x = Σ_ℓ softmax(w)_ℓ · h^ℓ`` over the ``n_layers`` frozen layers, the weights
    ``w`` learned with the downstream model (zeros at the start: the plain mean of the layers).
    ``forward(h)`` takes ``(..., n_layers, dim)`` and returns ``(..., dim)``."""

    def __init__(self, n_layers: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(n_layers))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.shape[-2] != len(self.weights):
            raise ValueError(f"expected {len(self.weights)} layers, got {h.shape[-2]}")
        return (F.softmax(self.weights, dim=0).unsqueeze(-1) * h).sum(dim=-2)

    def layer_weights(self) -> list[float]:
        return F.softmax(self.weights.detach(), dim=0).tolist()


class UtteranceDownstream(nn.Module):
    """Standardise each layer's pooled statistics (with the fitting set's mean and spread), mix the layers
    with :class:`WeightedLayerSum`, then one linear map to ``out`` (class logits or an embedding), or with
    ``hidden`` > 0 a small MLP (linear, ReLU, linear)."""

    def __init__(self, n_layers: int, dim: int, out: int, hidden: int = 0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_layers, dim))
        self.register_buffer("std", torch.ones(n_layers, dim))
        self.mix = WeightedLayerSum(n_layers)
        self.linear = (
            nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out)) if hidden else nn.Linear(dim, out)
        )

    def standardise_with(self, x: torch.Tensor) -> UtteranceDownstream:
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp(min=1e-5))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.mix((x - self.mean) / self.std))


def fit_downstream(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    *,
    verification: bool = False,
    embed_dim: int = 128,
    steps: int = 100,
    lr: float = 3e-2,
    weight_decay: float = 1e-3,
    seed: int = 0,
    hidden: int = 0,
) -> UtteranceDownstream:
    """Train a downstream model on statistics ``x`` ``(n, layers, dim)`` with labels ``y``, full batch, AdamW
    (``hidden``: see :class:`UtteranceDownstream`).
    Classification: cross-entropy over ``n_classes``. Verification: an ``embed_dim`` embedding trained with
    AAM-softmax (m = 0.2, s = 30) over ``n_classes`` speakers; the training head is dropped."""
    if x.dim() != 3 or len(x) != len(y):
        raise ValueError(f"need statistics (n, layers, dim) and n labels, got {tuple(x.shape)} and {len(y)}")
    if int(y.max()) >= n_classes or int(y.min()) < 0:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {int(y.min())}..{int(y.max())}")
    with torch.random.fork_rng():  # seeded here, the caller's generator left as it was
        torch.manual_seed(seed)
        model = UtteranceDownstream(x.shape[1], x.shape[2], embed_dim if verification else n_classes, hidden)
        model.standardise_with(x)
        head = AAMSoftmax(embed_dim, n_classes) if verification else None
        params = list(model.parameters()) + (list(head.parameters()) if head else [])
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        with torch.enable_grad():
            for _ in range(steps):
                out = model(x)
                loss = head(out, y)[0] if head else F.cross_entropy(out, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    return model.eval().requires_grad_(False)


def layer_statistics(
    layers_fn: Callable[[torch.Tensor], list[torch.Tensor]],
    inputs: torch.Tensor,
    batch_size: int = 32,
    device: str | None = None,
) -> torch.Tensor:
    """``(n, layers, 2·dim)``: the mean and standard deviation over frames of every layer that
    ``layers_fn(batch)`` returns (a list of ``(batch, frames, dim)``), for ``inputs`` in batches."""

    def pooled(batch):
        return torch.stack([stats_pool(h.float(), dim=1) for h in layers_fn(batch)], dim=1)

    return batched(pooled, inputs, batch_size, device)


@dataclass
class Suite:
    """The clips of the four tasks and their labels. ``sets``: ``{name: (n, samples) waves}`` for
    ``sv_train``, ``sentences`` and ``words_train``, ``words``, plus ``sentences_harsh`` and ``words_harsh``;
    ``rows``: the manifest rows of each (the harsh sets share their clean set's rows)."""

    sets: dict[str, torch.Tensor]
    rows: dict[str, list[dict]]
    trials: np.ndarray  # (n_trials, 3): label, index into "sentences", index into "sentences"
    vocabulary: list[str]
    settings: dict = field(default_factory=dict)

    def statistics(
        self, layers_fn, inputs: dict[str, torch.Tensor] | None = None, batch_size: int = 32, device: str | None = None
    ) -> dict[str, torch.Tensor]:
        """:func:`layer_statistics` of every set; ``inputs`` replaces a set's waves by precomputed model
        inputs (e.g. a frozen stem's output shared by several students)."""
        inputs = inputs or {}
        return {
            name: layer_statistics(layers_fn, inputs.get(name, wave), batch_size, device)
            for name, wave in self.sets.items()
        }

    def summary(self) -> dict:
        return {name: {"clips": len(w), "seconds": round(w.shape[1] / 16_000, 2)} for name, w in self.sets.items()}


def build_suite(
    source: Source,
    *,
    sv_per_speaker: int = 3,
    sentence_seconds: float = 1.5,
    train_words: int | None = 800,
    test_words: int | None = 500,
    trials: str = "trials",
    harsh: dict | None = None,
    seed: int = 0,
) -> Suite:
    """The clips of :data:`TASKS` from ``source``: ``sv_per_speaker`` training sentences of every training
    speaker, every test sentence (centred ``sentence_seconds`` crops, wrap-padded), ``train_words`` training
    and ``test_words`` test keyword-spotting clips (1 s; drawn at random with ``seed``; None: all), and the
    harsh copies of the test sets (``harsh``: :func:`kdlib.data.augment.session` settings, default
    :data:`kdlib.data.augment.HARSH`, drawn from ``seed``)."""
    harsh = augment.HARSH if harsh is None else harsh
    kinds = ("keyword", "unknown", "silence")
    rng = np.random.default_rng(seed)
    by_speaker = source.by_speaker("train", "sentence")
    rows = {
        "sv_train": [r for s in sorted(by_speaker) for r in by_speaker[s][:sv_per_speaker]],
        "sentences": source.select("test", "sentence"),
        "words_train": random_subset(
            [r for r in source.select("train", kinds) if r["label"] in KWS_LABELS], train_words, rng
        ),
        "words": random_subset([r for r in source.select("test", kinds) if r["label"] in KWS_LABELS], test_words, rng),
    }
    for name, r in rows.items():
        if not r:
            raise ValueError(f"{source.name}: no clips for the {name!r} set of the downstream tasks")
    trial_array = trial_indices(
        source.trials(trials),
        [r["path"] for r in rows["sentences"]],
        f"{source.name}: trial list {trials!r} (test sentences)",
    )
    seconds = {"sv_train": sentence_seconds, "sentences": sentence_seconds, "words_train": 1.0, "words": 1.0}
    sets = {name: centred_crops(source, [x["path"] for x in r], seconds[name]) for name, r in rows.items()}
    sets["sentences_harsh"] = augment.distort_crops(sets["sentences"], 1.0, seed=seed, **harsh)
    sets["words_harsh"] = augment.distort_crops(sets["words"], 1.0, seed=seed + 1, **harsh)
    rows["sentences_harsh"], rows["words_harsh"] = rows["sentences"], rows["words"]
    vocabulary = sorted({r["text"] for r in rows["words_train"] if r["kind"] != "silence"})
    settings = {
        "sv_per_speaker": sv_per_speaker,
        "sentence_seconds": sentence_seconds,
        "train_words": len(rows["words_train"]),
        "test_words": len(rows["words"]),
        "trials": trials,
        "harsh": dict(harsh),
        "seed": seed,
    }
    return Suite(sets, rows, trial_array, vocabulary, settings)


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return metrics.accuracy(model(x), y)


def _labels(rows: list[dict], key: str, classes: list[str]) -> tuple[torch.Tensor, np.ndarray]:
    """Class indices of the rows whose ``key`` is in ``classes`` and the mask of those rows."""
    keep = np.array([r[key] in classes for r in rows])
    return torch.tensor([classes.index(r[key]) for r, k in zip(rows, keep) if k]), keep


def run_suite(
    stats: dict[str, torch.Tensor], suite: Suite, *, steps: int = 100, lr: float = 3e-2, seed: int = 0, hidden: int = 0
) -> dict:
    """Fit the downstream model of each task on ``stats`` (from :meth:`Suite.statistics`) and score it
    (``hidden`` > 0: an MLP instead of the linear map, see :class:`UtteranceDownstream`):
    ``{"clean": {"sid", "kws", "words", "sv_eer", "sv_min_dcf"}, "harsh": {...}, "layer_weights": {task:
    [w_0, ...]}}`` (accuracies and EER as fractions)."""
    out: dict = {c: {} for c in CONDITIONS}
    weights = {}
    # speaker identification: alternate utterances of each test speaker fit and score
    sent = suite.rows["sentences"]
    speakers = sorted({r["speaker"] for r in sent})
    y, fit = probe_split(sent, "speaker", "row", classes=speakers)
    y = torch.from_numpy(y)
    model = fit_downstream(stats["sentences"][fit], y[fit], len(speakers), steps=steps, lr=lr, seed=seed, hidden=hidden)
    for cond, name in zip(CONDITIONS, ("sentences", "sentences_harsh")):
        out[cond]["sid"] = _accuracy(model, stats[name][~fit], y[~fit])
    weights["sid"] = model.mix.layer_weights()
    # keyword spotting (12 classes) and word recognition (the vocabulary, no silence)
    for task, key, classes in (("kws", "label", list(KWS_LABELS)), ("words", "text", suite.vocabulary)):
        y_fit, keep_fit = _labels(suite.rows["words_train"], key, classes)
        y_test, keep_test = _labels(suite.rows["words"], key, classes)
        model = fit_downstream(
            stats["words_train"][keep_fit], y_fit, len(classes), steps=steps, lr=lr, seed=seed, hidden=hidden
        )
        for cond, name in zip(CONDITIONS, ("words", "words_harsh")):
            out[cond][task] = _accuracy(model, stats[name][keep_test], y_test)
        weights[task] = model.mix.layer_weights()
    # speaker verification: an embedding trained on training speakers, cosine scores on the trial list
    train_speakers = sorted({r["speaker"] for r in suite.rows["sv_train"]})
    y_sv = torch.tensor([train_speakers.index(r["speaker"]) for r in suite.rows["sv_train"]])
    model = fit_downstream(
        stats["sv_train"], y_sv, len(train_speakers), verification=True, steps=steps, lr=lr, seed=seed, hidden=hidden
    )
    for cond, name in zip(CONDITIONS, ("sentences", "sentences_harsh")):
        with torch.no_grad():
            verified = score_trials(model(stats[name]), suite.trials)
        out[cond]["sv_eer"], out[cond]["sv_min_dcf"] = verified["eer"], verified["min_dcf"]
    weights["sv"] = model.mix.layer_weights()
    out["layer_weights"] = weights
    return out
