import json

import pytest

from experiments.phoneme_head_noise import development_task, main, spread


def test_spread_summarises_seeds_in_percent():
    s = spread({0: 0.48, 1: 0.50, 2: 0.52})
    assert s["per_seed"] == {"0": 48.0, "1": 50.0, "2": 52.0}
    assert s["mean"] == pytest.approx(50.0) and s["std"] == pytest.approx(2.0) and s["range"] == [48.0, 52.0]
    with pytest.raises(ValueError, match="at least two seeds"):
        spread({0: 0.5})


def test_the_experiment_runs_on_the_smoke_corpus_and_writes_its_record(tmp_path):
    out = tmp_path / "noise.json"
    record = main(["--corpus", "smoke", "--steps", "5", "--seeds", "0", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == record
    budget = record["budgets"]["5"]
    assert set(budget["per_seed"]) == {"0", "1"} and budget["range"][0] <= budget["mean"] <= budget["range"][1]
    assert set(budget["train_loss"]) == {"0", "1"} and all(loss > 0 for loss in budget["train_loss"].values())


def test_the_development_split_scores_held_out_training_speakers_and_compares_schedules(tmp_path, smoke_corpus):
    task = development_task(smoke_corpus, train_clips=10, test_clips=6)
    fitted, scored = ({r["speaker"] for r in task.rows[k]} for k in ("train", "test"))
    assert not fitted & scored and {r["split"] for r in task.rows["test"]} == {"train"}  # no test speaker used
    record = main(
        [
            "--corpus",
            "smoke",
            "--split",
            "dev",
            "--schedules",
            "constant",
            "cosine",
            "--steps",
            "5",
            "--seeds",
            "0",
            "1",
            "--out",
            str(tmp_path / "dev.json"),
        ]
    )
    assert record["split"] == "dev" and set(record["budgets"]) == {"5", "5 cosine"}
    assert record["budgets"]["5 cosine"]["schedule"] == "cosine"
