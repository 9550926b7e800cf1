"""Verification, classification and recognition metrics. Scores: higher means "same speaker"; labels: 1 = target
trial.

EER, minDCF and the phone error rate are returned as fractions (0.05 = 5 %).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _as_arrays(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"scores ({scores.shape}) and labels ({labels.shape}) differ in length")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (non-target) or 1 (target)")
    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("need both target (1) and non-target (0) trials")
    return scores, labels


class SortedTrials:
    """Trials sorted by score once, so that their error rates under many weightings (a bootstrap's draws) are
    weighted cumulative sums: :func:`error_rates` and :func:`eer` use it for a single weighting."""

    def __init__(self, scores, labels):
        scores, labels = _as_arrays(scores, labels)
        self.order = np.argsort(-scores, kind="mergesort")
        self.scores, self.labels = scores[self.order], labels[self.order]
        self.last_of_tie = np.r_[np.flatnonzero(np.diff(self.scores)), len(scores) - 1]  # ties accepted together

    def error_rates(self, weights=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(p_miss, p_fa, thresholds)`` as :func:`error_rates`; ``weights`` in the trials' original order."""
        n = len(self.order)
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
        if w.shape != (n,) or (w < 0).any():
            raise ValueError(f"weights ({w.shape}) must be one non-negative number per trial ({(n,)})")
        w, y = w[self.order], self.labels
        tp = np.cumsum(w * y)[self.last_of_tie]
        fp = np.cumsum(w * ~y)[self.last_of_tie]
        if tp[-1] <= 0 or fp[-1] <= 0:
            raise ValueError("need target and non-target trials of positive weight")
        p_miss = np.r_[1.0, 1.0 - tp / tp[-1]]
        p_fa = np.r_[0.0, fp / fp[-1]]
        return p_miss, p_fa, np.r_[np.inf, self.scores[self.last_of_tie]]

    def eer(self, weights=None) -> float:
        """:func:`eer` under ``weights``."""
        p_miss, p_fa, _ = self.error_rates(weights)
        diff = p_miss - p_fa  # decreasing from 1 to -1
        i = int(np.flatnonzero(diff <= 0)[0])
        if diff[i] == 0:
            return float(p_miss[i])
        # segment from point i-1 (diff > 0) to point i (diff < 0)
        t = diff[i - 1] / (diff[i - 1] - diff[i])
        return float(p_fa[i - 1] + t * (p_fa[i] - p_fa[i - 1]))


def error_rates(scores, labels, weights=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every distinct threshold (accept when score >= threshold).

    Returns ``(p_miss, p_fa, thresholds)``, from accepting nothing to accepting everything. ``weights``
    (one per trial, e.g. how often a bootstrap drew it) count each trial that many times.
    """
    return SortedTrials(scores, labels).error_rates(weights)


def eer(scores, labels, weights=None) -> float:
    """Equal error rate: where the miss rate equals the false-alarm rate (linear interpolation between
    the two operating points that bracket the crossing). ``weights``: see :func:`error_rates`."""
    return SortedTrials(scores, labels).eer(weights)


def min_dcf(scores, labels, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Normalised minimum detection cost (NIST SRE / VoxSRC):

    DCF(θ) = c_miss·P_miss(θ)·p_target + c_fa·P_fa(θ)·(1 − p_target),
    minDCF = min_θ DCF(θ) / min(c_miss·p_target, c_fa·(1 − p_target)).
    """
    p_miss, p_fa, _ = error_rates(scores, labels)
    dcf = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
    return float(dcf.min() / min(c_miss * p_target, c_fa * (1 - p_target)))


def cosine_scores(emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of two ``(n, d)`` embedding matrices."""
    return F.cosine_similarity(emb_a, emb_b, dim=-1)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy as a fraction."""
    return float((logits.argmax(-1) == labels).float().mean())


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance: the fewest substitutions, deletions and insertions that turn ``hypothesis`` into
    ``reference`` (dynamic programming over one row, O(len(reference) · len(hypothesis)))."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, start=1):
        current = [i]
        for j, hyp in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def phone_error_rate(references: Sequence[Sequence], hypotheses: Sequence[Sequence]) -> float:
    """Phone error rate, as SUPERB's PR scores it: ``PER = Σ_i edit(ref_i, hyp_i) / Σ_i |ref_i|``, the errors of
    every utterance over the reference phones of all (a fraction; above 1 when the hypotheses insert a lot)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    total = sum(len(r) for r in references)
    if total == 0:
        raise ValueError("the references hold no phones")
    return sum(edit_distance(r, h) for r, h in zip(references, hypotheses)) / total


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    r"""Linear centred kernel alignment of two representations of the same ``n`` items, ``x`` ``(n, d_x)`` and
    ``y`` ``(n, d_y)`` (the widths may differ; Kornblith, Norouzi, Lee and Hinton, *Similarity of Neural Network
    Representations Revisited*, ICML 2019, arXiv 1905.00414). With both centred over the items,

    .. math:: \mathrm{CKA}(X, Y) = \frac{\lVert Y^\top X\rVert_F^2}{\lVert X^\top X\rVert_F\,\lVert Y^\top Y\rVert_F}

    in [0, 1]: 1 when one is a rotation and scaling of the other, near 0 for unrelated ones. Unchanged by an
    orthogonal transform or an isotropic scaling of either side, so it compares teachers of different widths,
    where a cosine between their frames cannot."""
    if x.dim() != 2 or y.dim() != 2 or len(x) != len(y) or len(x) < 2:
        raise ValueError(
            f"need two (n, d) representations of the same n >= 2 items, got shapes {tuple(x.shape)} "
            f"and {tuple(y.shape)}"
        )
    x, y = x.double() - x.double().mean(0), y.double() - y.double().mean(0)
    cross = (y.T @ x).pow(2).sum()
    return float(cross / ((x.T @ x).norm() * (y.T @ y).norm()))


def share_recovered(
    student: float, start: float, teacher: float, *, higher_is_better: bool = True, min_gap: float = 0.0
) -> float | None:
    r"""The share of a teacher's lead over a student's starting point that the student recovered,
    ``(student − start) / (teacher − start)``: 0 no progress, 1 the teacher's level, above 1 past it, below 0
    worse than the start. None where the teacher does not lead the start by more than ``min_gap`` (in the
    metric's units): there was nothing to recover. The ratio reads the same for a metric where lower is
    better (EER, PER); ``higher_is_better`` only says which side is a lead."""
    lead = (teacher - start) if higher_is_better else (start - teacher)
    if not lead > min_gap:
        return None
    return (student - start) / (teacher - start)
