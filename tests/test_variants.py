"""Variants: a notebook run again with other knobs, in its own folder, its results beside the notebook's own."""

import json

import nbformat
import pytest

from kdlib.course import variants

SOURCE = (
    "import kdlib\nfrom kdlib import results\nfrom kdlib.evaluation import verdicts\n"
    "SMOKE = kdlib.runtime.SMOKE\nSTEPS = 3\n",
    "results.save('99_v', seed=0, wall_time_s=0.0, models={'m': results.entry(params=1, bytes=4, "
    "latency_ms=1.0, eer=STEPS / 100)}, claims=[results.claim('few steps', 'p', str(STEPS), "
    "verdicts.from_value(5 - STEPS, verdicts.better(), 'steps'))])",
)


@pytest.fixture
def notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_RESULTS", str(tmp_path / "results"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SOURCE[0]), nbformat.v4.new_code_cell(SOURCE[1])])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "99_v.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_variant_runs_with_its_knobs_in_its_own_folder_and_is_reused(notebook, tmp_path):
    record = variants.run(str(notebook), {"STEPS": 7}, "seven")
    assert record["parameters"] == {"STEPS": 7}
    assert record["models"]["m"]["eer"] == pytest.approx(0.07)
    assert record["claims"][0]["holds"] is False and record["claims"][0]["outcome"] == "contradicted"
    assert variants.folder(str(notebook), "seven") == tmp_path / "results" / "variants" / "99_v" / "seven"
    assert not list((tmp_path / "results").glob("*.json"))  # the notebook's own results are not touched
    again = variants.run(str(notebook), {"STEPS": 7}, "seven")  # read back, not run again
    assert again["provenance"]["created"] == record["provenance"]["created"]
    baseline = {**record, "models": {"m": {**record["models"]["m"], "eer": 0.03}}, "parameters": {}}
    baseline["models"]["m"]["eer_std"] = 0.005
    table = variants.table({"notebook": baseline, "STEPS = 7": record, "not run": None}, ("eer", "eer_std"))
    assert table.loc["m", ("notebook", "eer_std")] == pytest.approx(0.5)  # in percent, like the EER
    assert table.loc["m", ("notebook", "eer")] == pytest.approx(3.0)
    assert table.loc["m", ("STEPS = 7", "eer")] == pytest.approx(7.0)
    rates = {**baseline, "models": {"m": {"harsh_per": 0.38, "accuracy": 0.9, "sv_min_dcf": 0.5}}}
    shown = variants.table({"r": rates}, ("harsh_per", "accuracy", "sv_min_dcf")).loc["m"]
    assert list(shown) == pytest.approx([38.0, 90.0, 0.5])  # PER and accuracies in percent, minDCF as it is
    assert list(variants.claims({"STEPS = 7": record})["STEPS = 7"]) == ["contradicted"]
    older = {**record, "claims": [{"claim": "few steps", "paper": "p", "ours": "7", "holds": False}]}
    assert list(variants.claims({"old": older})["old"]) == ["did not hold (older rule)"]
    assert variants.ran({"STEPS = 7": record, "not run": None}) == {"STEPS = 7": record}
    assert variants.figures(str(notebook), "seven", "results.save") == []  # that cell draws nothing
    with pytest.raises(FileNotFoundError, match="'eight' has not run"):
        variants.figures(str(notebook), "eight", "results.save")
    assert variants.figures(str(notebook), "eight", "results.save", missing_ok=True) == []  # a committed answer
    as_committed = variants.baseline(str(notebook), run_missing=True)  # no own run yet: runs it as committed
    assert as_committed["parameters"] == {} and as_committed["models"]["m"]["eer"] == pytest.approx(0.03)


def test_a_wrong_knob_is_refused_before_running_and_a_failure_names_the_folder(notebook):
    with pytest.raises(ValueError, match="no knob named STEP; its knobs are SMOKE, STEPS"):
        variants.run(str(notebook), {"STEP": 7}, "typo")
    assert variants.run(str(notebook), {"STEPS": 7}, "checked", execute=False) is None
    with pytest.raises(RuntimeError, match="99_v with STEPS='x' failed; its executed copy is under"):
        variants.run(str(notebook), {"STEPS": "x"}, "bad")  # '/' on a string fails inside the notebook


def test_the_baseline_must_be_a_comparable_run_of_this_mode(tmp_path, monkeypatch, unset):
    from kdlib.runtime import REFERENCE_NUMERICS, git_commit

    monkeypatch.setenv("KDLIB_RESULTS", str(tmp_path / "results"))
    unset(*REFERENCE_NUMERICS, "OMP_NUM_THREADS")
    with pytest.raises(
        FileNotFoundError, match=("no comparable (smoke|full) run of 99_v.*python -m kdlib.course.runner run")
    ):
        variants.baseline("99_v")
    out = variants.results_dir()
    out.mkdir(parents=True)
    mode = "smoke" if variants.SMOKE else "full"
    numerics = {**REFERENCE_NUMERICS, "OMP_NUM_THREADS": "2"}
    record = {
        "mode": mode,
        "parameters": {},
        "models": {},
        "claims": [],
        "provenance": {"numerics": numerics, "git_commit": git_commit()},
    }
    (out / "99_v.json").write_text(json.dumps(record))
    assert variants.baseline("99_v")["mode"] == mode
    for spoiled in (
        {"parameters": {"STEPS": 7}},
        {"provenance": {"numerics": {"MKL_CBWR": None}, "git_commit": git_commit()}},
    ):
        (out / "99_v.json").write_text(json.dumps({**record, **spoiled}))  # changed knobs; pytest --nbmake's kernels
        with pytest.raises(FileNotFoundError, match="no comparable"):
            variants.baseline("99_v")


def test_committed_answers_are_shown_in_every_mode_and_reused_in_full_mode(notebook, tmp_path, monkeypatch):
    """An answer measured once in full mode and promoted beside the reference run is what the solutions show:
    execute=False returns it, a full-mode run with the same knobs and numerics reads it instead of running,
    other knobs are refused; a smoke record cannot be promoted."""
    from kdlib.runtime import REFERENCE_NUMERICS, git_commit

    monkeypatch.setattr(variants, "REFERENCE", tmp_path / "reference")
    for key, value in {**REFERENCE_NUMERICS, "OMP_NUM_THREADS": "2"}.items():
        monkeypatch.setenv(key, value)
    assert variants.run(str(notebook), {"STEPS": 7}, "seven", execute=False) is None  # nothing committed yet
    record = {
        "mode": "full",
        "parameters": {"STEPS": 7},
        "wall_time_s": 600.0,
        "models": {"m": {"eer": 0.07}},
        "claims": [],
        "provenance": {
            "numerics": {**REFERENCE_NUMERICS, "OMP_NUM_THREADS": "2"},
            "git_commit": git_commit(),
            "created": "2026-12-04T05:00:00",
        },
    }
    made = variants.folder(str(notebook), "seven")
    made.mkdir(parents=True)
    (made / "99_v.json").write_text(json.dumps({**record, "mode": "smoke"}))
    with pytest.raises(ValueError, match="not a full-mode run"):
        variants.promote(str(notebook), "seven")
    (made / "99_v.json").write_text(json.dumps(record))
    path = variants.promote(str(notebook), "seven")
    assert path == tmp_path / "reference" / "variants" / "99_v" / "seven" / "99_v.json"
    assert variants.run(str(notebook), {"STEPS": 7}, "seven", execute=False) == record
    monkeypatch.setattr(variants, "SMOKE", False)
    (made / "99_v.json").unlink()  # so that reading it back can only come from the committed answer
    assert variants.run(str(notebook), {"STEPS": 7}, "seven") == record
    with pytest.raises(ValueError, match=r"measured with \{'STEPS': 7\}, not \{'STEPS': 8\}"):
        variants.run(str(notebook), {"STEPS": 8}, "seven", execute=False)


def test_an_answer_measured_with_a_teacher_since_rebuilt_is_not_reused(tmp_path, monkeypatch):
    """Results list the zoo teachers they loaded with the sha256 of their weights; a record whose teacher the zoo no
    longer ships is not the same conditions (so a full-mode variant runs again), one without the list passes."""
    from kdlib import zoo
    from kdlib.course import results
    from kdlib.runtime import REFERENCE_NUMERICS

    for key, value in {**REFERENCE_NUMERICS, "OMP_NUM_THREADS": "2"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(variants, "SMOKE", False)
    monkeypatch.setattr(zoo, "_LOADED", {})  # this process may have loaded other zoos' teachers in earlier tests
    monkeypatch.delenv("KDLIB_ZOO", raising=False)
    shipped = zoo.weights_digest("ecapa")
    assert len(shipped) == 64
    zoo.load("ecapa")
    assert zoo.loaded()["ecapa"] == shipped
    path = results.save("99_t", seed=0, wall_time_s=1.0, models={}, out_dir=tmp_path)
    record = json.loads(path.read_text())
    assert record["teachers"]["ecapa"] == shipped
    record["provenance"]["numerics"] = {**REFERENCE_NUMERICS, "OMP_NUM_THREADS": "2"}
    mode = record["mode"]  # smoke under KDLIB_SMOKE=1, as the tests run in CI
    assert variants._same_conditions(record, same_commit=False, mode=mode)
    assert not variants._same_conditions({**record, "teachers": {"ecapa": "0" * 64}}, same_commit=False, mode=mode)
    assert variants._same_conditions({k: v for k, v in record.items() if k != "teachers"}, False, mode=mode)


def test_a_renamed_knob_is_read_under_its_new_name(notebook):
    """Records made before notebook 01's KD_SCALE became KD_WEIGHT keep the old name; the committed answer is found
    under the new one, and a caller still using the old name gets a warning, not a failure."""
    from kdlib.course import runner

    record = variants.committed("01_os_kdft", "kd_weight_100", {"KD_WEIGHT": 100})
    assert record["parameters"] == {"KD_SCALE": 100} and record["models"]  # the record as it was made
    with pytest.warns(FutureWarning, match="KD_SCALE is now KD_WEIGHT"):
        assert runner.current_knob_names({"KD_SCALE": 100, "STEPS": 3}) == {"KD_WEIGHT": 100, "STEPS": 3}
    with pytest.warns(FutureWarning):
        assert variants.run("01_os_kdft", {"KD_SCALE": 100}, "kd_weight_100", execute=False) == record
