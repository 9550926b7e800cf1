"""The paired re-judging of notebook 03's claims: it rebuilds the notebook's own verdicts, and pairs by seed."""

import json

import numpy as np
import pytest

from experiments.paired_verdicts import CLAIMS, compare, judge, main, per_seed_table
from kdlib.course import report

REFERENCE = str(report.reference_dir() / "03_ensemble_kd.json")
STUDENTS = (
    "single: a",
    "single: b",
    "ensemble: average",
    "ensemble: concat",
    "ensemble: multi-head",
    "ensemble: average, distorted input",
)


def test_the_welch_judgement_rebuilds_the_reference_runs_four_claims():
    both = compare(REFERENCE)  # raises if the rebuilt outcomes differ from the record's
    record = json.loads(open(REFERENCE).read())
    assert [c["outcome"] for c in both["welch"]] == [c["outcome"] for c in record["claims"]]
    # part by part: the notebook's first claim, average against concatenation, task by task
    assert [p["interval"] for p in both["welch"][0]["parts"]] == [
        p["interval"] for p in record["claims"][0]["verdict"]["parts"]
    ]
    assert all("paired" in p["method"] for p in both["paired"][0]["parts"])


def synthetic_record(shared_by_seed, own_noise, gap=0.01, seed=0):
    """Per-seed scores where seed i moves every student by ``shared_by_seed[i]``, each student has noise
    ``own_noise`` of its own, and every favoured student beats its comparison by ``gap``."""
    rng = np.random.default_rng(seed)
    better = {"ensemble: average": 1, "ensemble: multi-head": 2, "ensemble: average, distorted input": 2}
    rows = []
    for model in STUDENTS:
        for cond in ("clean", "harsh"):
            for metric, higher in (("SID acc", True), ("KWS acc", True), ("word acc", True), ("SV EER", False)):
                for s, shared in enumerate(shared_by_seed):
                    value = 0.5 + shared + own_noise * rng.normal() + (1 if higher else -1) * gap * better.get(model, 0)
                    rows.append({"model": model, "seed": s, "condition": cond, "metric": metric, "value": value})
    rows.append({"model": "teacher: a", "seed": float("nan"), "condition": "clean", "metric": "SID acc", "value": 0.9})
    return {"extra": {"per_seed": rows}}


def test_pairing_finds_a_gap_that_shared_seed_effects_hide_from_welch():
    table = per_seed_table(synthetic_record(shared_by_seed=[-0.05, 0.0, 0.05], own_noise=0.001))
    welch, paired = judge(table, "welch"), judge(table, "paired")
    assert [c["paper"] for c in paired] == [c[0] for c in CLAIMS]
    assert all(c["outcome"] == "inconclusive" for c in welch)
    assert all(c["outcome"] == "holds" for c in paired)
    assert paired[0]["parts"][0]["correlation"] > 0.99


def test_records_without_per_seed_scores_or_with_unmatched_seeds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no extra.per_seed"):
        per_seed_table({"extra": {}}, "old.json")
    record = synthetic_record([0.0, 0.01, 0.02], 0.01)
    record["extra"]["per_seed"] = [
        r for r in record["extra"]["per_seed"] if not (r["model"] == "ensemble: concat" and r["seed"] == 2)
    ]
    with pytest.raises(ValueError, match="different seeds"):
        judge(per_seed_table(record), "paired")


def test_main_writes_both_judgements(tmp_path):
    out = tmp_path / "paired.json"
    record = main([REFERENCE, "--out", str(out)])
    assert json.loads(out.read_text()) == record
    assert set(record["records"][REFERENCE]) >= {"welch", "paired", "steps", "numerics"}
