"""The verdict function: known effects on synthetic scores give the outcome they must."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from kdlib.evaluation import metrics, verdicts
from kdlib.evaluation.verdicts import (
    about,
    all_of,
    at_least,
    better,
    from_paired_seeds,
    from_seeds,
    from_trials,
    from_value,
    no_worse,
)


def synthetic_trials(separations, n_speakers=40, per_speaker=30, seed=0):
    """Trial scores of systems that separate targets from non-targets by ``separations`` (one per seed):
    each speaker has its own offset, so trials of a speaker are correlated, as in real evaluations."""
    rng = np.random.default_rng(seed)
    speakers = np.repeat(np.arange(n_speakers), per_speaker)
    labels = np.tile(np.arange(per_speaker) % 2, n_speakers)
    offset = rng.normal(0, 0.5, n_speakers)[speakers]
    noise = rng.normal(0, 1, (len(separations), len(labels)))
    return [offset + d * labels + e for d, e in zip(separations, noise)], labels, speakers


def test_a_large_effect_over_seeds_holds_and_matches_welch():
    a, b = [0.101, 0.098, 0.104, 0.097], [0.201, 0.195, 0.207]
    v = from_seeds(a, b, better(), higher_is_better=False)
    assert v["outcome"] == "holds"
    assert v["effect"] == pytest.approx(100 * (np.mean(b) - np.mean(a)), abs=1e-3)
    welch = stats.ttest_ind(np.array(b) * 100, np.array(a) * 100, equal_var=False).confidence_interval(0.95)
    assert v["interval"] == pytest.approx([welch.low, welch.high], abs=1e-3)
    assert v["detectable"] < v["effect"]
    assert "Welch" in v["method"]


def test_a_tiny_effect_at_three_seeds_is_inconclusive_and_below_what_the_run_can_detect():
    v = from_seeds([0.277, 0.260, 0.294], [0.279, 0.262, 0.296], better(), higher_is_better=False)
    assert v["outcome"] == "inconclusive"
    assert 0 < v["effect"] < v["detectable"]


def test_an_effect_of_the_opposite_sign_is_contradicted():
    v = from_seeds([0.145, 0.132, 0.158], [0.089, 0.091, 0.088], better(), higher_is_better=False)
    assert v["outcome"] == "contradicted" and v["interval"][1] < 0


def test_higher_is_better_and_relative_effects():
    v = from_seeds([0.90, 0.91, 0.92], [0.80, 0.81, 0.79], better(), higher_is_better=True)
    assert v["effect"] == pytest.approx(11.0, abs=1e-6) and v["outcome"] == "holds"
    r = from_seeds([0.095, 0.095, 0.095], [0.100, 0.100, 0.100], better(2.5), higher_is_better=False, relative=True)
    assert r["effect"] == pytest.approx(5.0) and r["unit"] == "% of B"
    assert r["outcome"] == "holds"  # no spread at all: the interval is the point


def test_paired_seeds_golden_values_and_scipy():
    a, b = [0.80, 0.82, 0.85], [0.78, 0.81, 0.82]  # differences 2, 1, 3 points: mean 2, sd 1
    v = from_paired_seeds(a, b, better(), higher_is_better=True)
    half = stats.t.ppf(0.975, 2) / math.sqrt(3)  # 2.4841
    assert v["effect"] == pytest.approx(2.0, abs=1e-4)
    assert v["interval"] == pytest.approx([2.0 - half, 2.0 + half], abs=1e-4)
    paired = stats.ttest_rel(np.array(a) * 100, np.array(b) * 100).confidence_interval(0.95)
    assert v["interval"] == pytest.approx([paired.low, paired.high], abs=1e-3)
    assert v["detectable"] == pytest.approx((stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) / math.sqrt(3), abs=1e-4)
    assert v["outcome"] == "inconclusive" and v["seeds"] == [3, 3] and "paired" in v["method"]
    assert v["correlation"] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-4)


def test_pairing_removes_what_a_seed_does_to_both_systems():
    """The same tiny effect that three unpaired seeds cannot see: every seed moves both systems alike."""
    a, b = [0.277, 0.260, 0.294], [0.279, 0.262, 0.296]
    assert from_seeds(a, b, better(), higher_is_better=False)["outcome"] == "inconclusive"
    v = from_paired_seeds(a, b, better(), higher_is_better=False)
    assert v["outcome"] == "holds" and v["effect"] == pytest.approx(0.2, abs=1e-4)
    assert v["correlation"] == pytest.approx(1.0)
    # pairs that move against each other: the paired interval is the wider one
    c, d = [0.80, 0.84, 0.82], [0.80, 0.76, 0.78]
    assert np.diff(from_paired_seeds(c, d, better(), higher_is_better=True)["interval"]) > np.diff(
        from_seeds(c, d, better(), higher_is_better=True)["interval"]
    )


def test_paired_seeds_sign_one_pair_and_bad_input():
    v = from_paired_seeds([0.10, 0.12], [0.20, 0.25], better(), higher_is_better=False)  # lower is better: A wins
    assert v["effect"] == pytest.approx(11.5) and v["interval"][0] < v["effect"] < v["interval"][1]
    one = from_paired_seeds([0.1], [0.3], better(), higher_is_better=False)
    assert one["outcome"] == "inconclusive" and one["interval"] == [None, None] and one["correlation"] is None
    json.dumps(one)
    with pytest.raises(ValueError, match="paired"):
        from_paired_seeds([0.1, 0.2], [0.3], better(), higher_is_better=True)
    with pytest.raises(ValueError, match="finite"):
        from_paired_seeds([0.1, math.nan], [0.3, 0.2], better(), higher_is_better=True)


def test_one_run_each_gives_no_interval_and_one_seeded_side_borrows_the_spread():
    v = from_seeds([0.10], [0.30], better(), higher_is_better=False)
    assert v["outcome"] == "inconclusive" and v["interval"] == [None, None]
    json.dumps(v)  # JSON without Infinity
    w = from_seeds([0.10], [0.30, 0.31, 0.29], better(), higher_is_better=False)
    assert w["outcome"] == "holds" and "single run" in w["method"]


def test_bootstrap_over_speakers_finds_the_better_system_and_is_deterministic():
    scores, labels, speakers = synthetic_trials([2.5, 2.6, 2.4, 1.0, 1.1, 0.9])
    good, poor = scores[:3], scores[3:]
    v = from_trials(good, poor, labels, speakers, better(), draws=300)
    assert v["outcome"] == "holds" and v["effect"] > 10
    assert v == from_trials(good, poor, labels, speakers, better(), draws=300)
    assert v["method"] == "bootstrap over 40 speakers (and seeds: 3/3), 300 draws, 1200 trials"
    w = from_trials(poor, good, labels, speakers, better(), draws=300)
    assert w["outcome"] == "contradicted"
    assert w["effect"] == pytest.approx(-v["effect"])


def test_two_runs_of_one_system_are_inconclusive_for_better_and_hold_for_a_wide_no_loss_margin():
    (first, second), labels, speakers = synthetic_trials([1.5, 1.5])
    same = from_trials(first, second, labels, speakers, better(), draws=200)
    assert same["outcome"] == "inconclusive" and same["interval"][0] < 0 < same["interval"][1]
    assert from_trials(first, second, labels, speakers, no_worse(8.0), draws=200)["outcome"] == "holds"
    identical = from_trials(first, first, labels, speakers, better(), draws=50)
    assert identical["interval"] == [0.0, 0.0] and identical["outcome"] == "contradicted"  # exactly no gain


def test_the_bootstraps_eer_is_metrics_eer_with_weights_and_weights_count_trials():
    scores, labels, _ = synthetic_trials([1.0], n_speakers=5, per_speaker=8)
    scores = np.round(scores[0], 1)  # ties
    w = np.random.default_rng(1).integers(0, 3, len(labels)).astype(float)
    w[:2] = 1
    sorted_scores = metrics.SortedTrials(scores, labels)
    assert sorted_scores.eer(w) == metrics.eer(scores, labels, w)
    assert sorted_scores.eer(np.ones(len(labels))) == metrics.eer(scores, labels)
    repeated = np.repeat(np.arange(len(labels)), w.astype(int))
    assert metrics.eer(scores, labels, w) == pytest.approx(metrics.eer(scores[repeated], labels[repeated]))


def test_measured_values_and_combined_claims():
    assert from_value(77.6, about(76.2, 2.0), "%")["outcome"] == "holds"
    assert from_value(69.9, about(79.0, 5.0), "%")["outcome"] == "contradicted"
    h, c, i = ({"outcome": o} for o in ("holds", "contradicted", "inconclusive"))
    assert all_of([h, h])["outcome"] == "holds"
    assert all_of([h, i])["outcome"] == "inconclusive"
    assert all_of([h, c, i])["outcome"] == "contradicted"
    assert at_least([h, h, h, c], 3)["outcome"] == "holds"
    assert at_least([h, h, c, i], 3)["outcome"] == "inconclusive"
    assert at_least([h, c, c, i], 3)["outcome"] == "contradicted"
    assert verdicts.count([{"outcome": "holds"}, {"outcome": "inconclusive"}]) == {
        "holds": 1,
        "contradicted": 0,
        "inconclusive": 1,
    }


def test_the_one_rule_at_the_region_edges():
    region = better(0.0)
    assert verdicts.outcome(0.1, 2.0, region) == "holds"
    assert verdicts.outcome(-0.1, 2.0, region) == "inconclusive"
    assert verdicts.outcome(-3.0, 0.0, region) == "contradicted"
    assert verdicts.outcome(math.nan, 1.0, region) == "inconclusive"


def test_bad_input_says_what_is_wrong():
    with pytest.raises(ValueError, match="finite"):
        from_seeds([0.1, math.nan], [0.2], better(), higher_is_better=False)
    scores, labels, speakers = synthetic_trials([1.0, 1.0])
    with pytest.raises(ValueError, match="trials number"):
        from_trials([scores[0][:-1]], scores, labels, speakers, better())
    with pytest.raises(ValueError, match="low < high"):
        verdicts.Region(1.0, 1.0, "empty")
    with pytest.raises(ValueError, match="margin"):
        no_worse(0.0)
    with pytest.raises(ValueError, match="weights"):
        metrics.eer([0.1, 0.2], [0, 1], [1.0])


def test_any_function_of_several_eers_and_accuracies_from_per_item_outcomes():
    scores, labels, speakers = synthetic_trials([2.5, 1.0, 2.4, 2.3])
    systems = {"a32": scores[0], "a4": scores[1], "b32": scores[2], "b4": scores[3]}
    degrades_first = lambda e: 100 * ((e["a4"] / e["a32"] - 1) - (e["b4"] / e["b32"] - 1))
    v = verdicts.from_eers(systems, labels, speakers, degrades_first, better(), unit="% of fp32", draws=200)
    assert v["outcome"] == "holds" and v["unit"] == "% of fp32" and v["seeds"] == [1, 1, 1, 1]
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 4)
    right_often, right_less = rng.random(120) < 0.9, rng.random(120) < 0.5
    c = verdicts.from_items(right_often, right_less, groups, better(), draws=300)
    assert c["outcome"] == "holds" and c["effect"] == pytest.approx(100 * (right_often.mean() - right_less.mean()))
    kept = verdicts.from_items(right_often, right_often, groups, about(100.0, 10.0), relative=True, draws=50)
    assert kept["effect"] == 0.0 and kept["outcome"] == "contradicted"  # relative *change* is 0, not 100
    area = verdicts.from_items(
        [0.3, 0.35, 0.2, 0.3], [0.4, 0.45, 0.4, 0.5], [0, 1, 2, 3], better(), higher_is_better=False, draws=200
    )
    assert area["effect"] == pytest.approx(15.0) and area["outcome"] == "holds"  # a lower deletion area is better
    with pytest.raises(ValueError, match="differ in length"):
        verdicts.from_items(right_often[:-1], right_less, groups, better())


def test_a_relative_change_from_zero_is_undefined_not_a_crash():
    scores, labels, speakers = synthetic_trials([9.0, 1.0])  # the first separates every trial: EER 0
    v = from_trials(scores[1], scores[0], labels, speakers, better(), relative=True, draws=20)
    assert v["effect"] is None and v["outcome"] == "inconclusive" and "undefined" in verdicts.describe(v)
    w = from_seeds([0.1, 0.2], [0.0, 0.0], better(), higher_is_better=False, relative=True)
    assert w["effect"] is None and w["outcome"] == "inconclusive"
