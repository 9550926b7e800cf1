import numpy as np
import pytest
from sklearn.metrics import roc_curve

from kdlib.evaluation import metrics


def test_eer_golden_small_example():
    # Targets 0.9 0.8 0.4, non-targets 0.7 0.3 0.2. Accepting >= 0.8 gives miss 1/3, FA 0;
    # >= 0.7 gives miss 1/3, FA 1/3: the rates meet at exactly 1/3.
    scores = [0.9, 0.8, 0.4, 0.7, 0.3, 0.2]
    labels = [1, 1, 1, 0, 0, 0]
    assert metrics.eer(scores, labels) == pytest.approx(1 / 3)


def test_eer_perfect_and_inverted():
    assert metrics.eer([3, 2, 1, 0], [1, 1, 0, 0]) == 0.0
    assert metrics.eer([0, 1, 2, 3], [1, 1, 0, 0]) == 1.0


def _eer_sklearn(scores, labels):
    """Independent EER: sklearn's ROC, then the crossing of FNR and FPR by linear interpolation."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1 - tpr
    i = np.flatnonzero(fnr - fpr <= 0)[0]
    d0, d1 = fnr[i - 1] - fpr[i - 1], fnr[i] - fpr[i]
    t = d0 / (d0 - d1)
    return fpr[i - 1] + t * (fpr[i] - fpr[i - 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eer_matches_sklearn_roc(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 3000)
    scores = rng.normal(labels * 1.5, 1.0)
    ours = metrics.eer(scores, labels)
    assert ours == pytest.approx(_eer_sklearn(scores, labels), abs=1e-9)
    # Two unit-variance Gaussians 1.5 apart: the theoretical EER is Phi(-0.75) = 0.2266.
    assert ours == pytest.approx(0.2266, abs=0.025)


def test_min_dcf_golden_and_brute_force():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 500)
    scores = rng.normal(labels * 2.0, 1.0)
    best = np.inf
    for thr in np.r_[np.inf, np.sort(scores)]:
        accept = scores >= thr
        p_miss = np.mean(~accept[labels == 1])
        p_fa = np.mean(accept[labels == 0])
        best = min(best, (0.01 * p_miss + 0.99 * p_fa) / 0.01)
    assert metrics.min_dcf(scores, labels) == pytest.approx(best)
    # Golden value of the smallest example: the best operating point accepts nothing above 0.9 -> cost 1
    # unless a threshold gives zero false alarms with fewer misses: >= 0.8 gives miss 1/3, FA 0 -> 1/3.
    assert metrics.min_dcf([0.9, 0.8, 0.4, 0.7, 0.3, 0.2], [1, 1, 1, 0, 0, 0]) == pytest.approx(1 / 3)


def test_ties_are_accepted_together():
    # All scores equal: the only operating points are accept-none and accept-all -> EER 0.5.
    assert metrics.eer([1.0] * 4, [1, 0, 1, 0]) == pytest.approx(0.5)


@pytest.mark.parametrize("scores,labels,message", [
    ([0.1, 0.2], [1, 1], "both target"),
    ([0.1, np.nan], [1, 0], "NaN"),
    ([0.1, 0.2, 0.3], [1, 0], "differ in length"),
    ([0.1, 0.2], [1, 2], "labels must be"),
])
def test_metric_bad_input(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        metrics.eer(scores, labels)


def test_accuracy_and_cosine():
    import torch

    assert metrics.accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])) == 0.5
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    assert metrics.cosine_scores(a, b).tolist() == pytest.approx([0.0, 1.0])
