import numpy as np
import pytest
import torch
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


@pytest.mark.parametrize(
    "scores,labels,message",
    [
        ([0.1, 0.2], [1, 1], "both target"),
        ([0.1, np.nan], [1, 0], "NaN"),
        ([0.1, 0.2, 0.3], [1, 0], "differ in length"),
        ([0.1, 0.2], [1, 2], "labels must be"),
    ],
)
def test_metric_bad_input(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        metrics.eer(scores, labels)


def test_accuracy_and_cosine():
    import torch

    assert metrics.accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])) == 0.5
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    assert metrics.cosine_scores(a, b).tolist() == pytest.approx([0.0, 1.0])


def test_linear_cka_is_one_for_a_rotated_copy_and_small_for_unrelated_frames():
    torch.manual_seed(0)
    x = torch.randn(2000, 6) * torch.tensor([3.0, 2, 1, 1, 0.5, 0.2])
    rotation, _ = torch.linalg.qr(torch.randn(6, 6))
    assert metrics.linear_cka(x, 4.0 * x @ rotation) == pytest.approx(1.0, abs=1e-9)
    assert metrics.linear_cka(x, torch.randn(2000, 9)) < 0.02  # different widths, unrelated
    assert metrics.linear_cka(x, x[:, :2]) == pytest.approx(
        (9**2 + 4**2) / (81 + 16 + 1 + 1 + 0.0625 + 0.0016) ** 0.5 / (81 + 16) ** 0.5, rel=0.05
    )


def test_linear_cka_golden_value_and_bad_input():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    y = torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    # centred: x columns (.5,-.5,.5,-.5) and (-.5,.5,.5,-.5); y (.5,-.5,.5,-.5): Y'X = (1, 0), X'X = I, Y'Y = 1
    assert metrics.linear_cka(x, y) == pytest.approx(1 / 2**0.5, abs=1e-12)
    with pytest.raises(ValueError, match="same n"):
        metrics.linear_cka(x, y[:3])


def test_share_recovered_reads_both_directions_and_needs_a_lead():
    assert metrics.share_recovered(0.88, 0.87, 0.90) == pytest.approx(1 / 3)
    assert metrics.share_recovered(0.40, 0.48, 0.38, higher_is_better=False) == pytest.approx(0.8)  # PER falls
    assert metrics.share_recovered(0.86, 0.87, 0.90) == pytest.approx(-1 / 3)  # went back
    assert metrics.share_recovered(0.80, 0.70, 0.75) == pytest.approx(2.0)  # past the teacher
    assert metrics.share_recovered(0.5, 0.80, 0.72) is None  # teacher behind
    assert metrics.share_recovered(0.5, 0.80, 0.805, min_gap=0.01) is None  # lead too small
    assert metrics.share_recovered(0.5, 0.15, 0.22, higher_is_better=False) is None  # EER: behind
