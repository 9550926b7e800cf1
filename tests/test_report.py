"""kdlib.course.report: reading every notebook's results, the Pareto front, and the generated sections of
docs/results.md and the README."""

import json

import pytest

from kdlib.course import report
from kdlib.course.results import claim
from kdlib.evaluation.verdicts import better, from_value
from kdlib.runtime import REPO_ROOT


def _record(notebook: str, mode: str = "full") -> dict:
    models = {
        key: {
            "params": 1_000_000 * (i + 1),
            "bytes": 4_000_000 * (i + 1),
            "latency_ms": 10.0 * (i + 1),
            "eer": 0.1 / (i + 1),
            "accuracy": None,
        }
        for i, key in enumerate(report.HEADLINE[notebook])
    }
    return {
        "notebook": notebook,
        "mode": mode,
        "seed": 0,
        "wall_time_s": 600.0,
        "device": "cpu",
        "provenance": {"hardware": "test CPU"},
        "models": models,
        "claims": [
            claim("c", "p", "o", from_value(1.0, better(), "points")),
            claim("d", "p", "o", from_value(-1.0, better(), "points")),
        ],
    }


@pytest.fixture
def results(tmp_path):
    for notebook in report.NOTEBOOKS:
        (tmp_path / f"{notebook}.json").write_text(json.dumps(_record(notebook)))
    return tmp_path


def test_load_reads_every_notebook_in_course_order(results):
    records = report.load(results)
    assert list(records) == list(report.NOTEBOOKS)
    table = report.models_table(records)
    assert len(table) == sum(len(h) for h in report.HEADLINE.values())
    assert table["EER (%)"].iloc[0] == pytest.approx(10.0) and table["KWS accuracy (%)"].isna().all()
    claims = report.claims_table(records)
    assert len(claims) == 2 * len(report.NOTEBOOKS)
    assert (claims.outcome == "holds").sum() == (claims.outcome == "contradicted").sum() == len(report.NOTEBOOKS)
    assert claims["effect [95 % interval]"].iloc[0] == "+1.00 points (measured)"


def test_load_names_the_missing_notebook_and_the_command(results):
    (results / "03_ensemble_kd.json").unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"03_ensemble_kd.*python -m kdlib.course.runner run --notebooks "
        r"notebooks/03_ensemble_kd.ipynb",
    ):
        report.load(results)


def test_load_refuses_a_smoke_run_and_a_broken_file(results):
    (results / "02_iml_kd.json").write_text(json.dumps(_record("02_iml_kd", mode="smoke")))
    with pytest.raises(ValueError, match=r"02_iml_kd.json: a smoke run"):
        report.load(results)
    assert len(report.load(results, mode=None)) == len(report.NOTEBOOKS)
    (results / "02_iml_kd.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"02_iml_kd.json: not a readable results file"):
        report.load(results)
    (results / "02_iml_kd.json").write_text(json.dumps({"notebook": "02_iml_kd"}))
    with pytest.raises(ValueError, match=r"02_iml_kd.json: not a kdlib results file"):
        report.load(results)


def test_pareto_front_golden():
    size = [1.0, 2.0, 2.0, 3.0, 0.5, None, 4.0]
    eer = [10.0, 5.0, 6.0, 5.0, 20.0, 1.0, 1.0]
    # (2, 6) loses to (2, 5); (3, 5) loses to (2, 5); None is never on the front
    assert report.pareto_front(size, eer) == [True, True, False, False, True, False, True]
    assert report.pareto_front([1.0, 1.0], [2.0, 2.0]) == [True, True]  # ties dominate neither


def test_mean_and_spread_over_seeds_golden():
    """Sample std (n - 1) over the seeds, NaN left out, the mean alone for one seed, a dash for none."""
    assert report.mean_and_spread([0.10, 0.12, 0.14]) == "12.0 ± 2.0"
    assert report.mean_and_spread([0.5, float("nan")], scale=1, digits=3) == "0.500"
    assert report.mean_and_spread([float("nan")]) == "–" and report.mean_and_spread([]) == "–"


def test_results_section_and_rewrite(results, tmp_path):
    records = report.load(results)
    section = report.results_section(records, "somewhere/")
    assert section.startswith(report.BEGIN) and section.endswith(report.END)
    assert "`somewhere/`" in section and "60.0 min of notebooks" in section
    assert section.count("| 1 holds, 1 contradicted, 0 inconclusive |") == len(report.NOTEBOOKS)
    assert "| 01 | (e) OS-KDFT, 2 layers | 4.00 M | 16.00 MB | 40.0 ms | 2.50 % | – |" in section
    assert "| 01 | d | **contradicted** | -1.00 points (measured) |" in section  # every claim, with its effect
    readme = tmp_path / "results.md"
    readme.write_text(f"# title\n\n{report.BEGIN}\nold\n{report.END}\n\n## after\n")
    assert not report.section_matches(section, readme)
    assert report.rewrite_section(section, readme)
    assert report.section_matches(section, readme)
    assert readme.read_text().startswith("# title\n\n") and readme.read_text().endswith("\n\n## after\n")
    assert not report.rewrite_section(section, readme)  # a second run changes nothing
    (tmp_path / "bare.md").write_text("# no markers\n")
    with pytest.raises(ValueError, match="bare.md: needs exactly one"):
        report.rewrite_section(section, tmp_path / "bare.md")
    assert (tmp_path / "bare.md").read_text() == "# no markers\n"


def test_the_processor_column_names_the_generation_behind_the_name():
    cpu = {"cpu family": "25", "model": "17", "stepping": "1", "features": ["avx2", "fma", "avx512f"]}
    assert (
        report.processor({"hardware": "AMD EPYC, 2 cores", "cpu": cpu})
        == "AMD EPYC, 2 cores (family 25, model 17, AVX-512)"
    )
    assert report.processor({"hardware": "AMD EPYC, 2 cores", "cpu": {**cpu, "features": ["avx2"]}}).endswith(
        "model 17, AVX2)"
    )
    assert report.processor({"hardware": "Intel Xeon", "cpu": {**cpu, "features": ["avx512f", "amx_tile"]}}).endswith(
        "AVX-512 and AMX)"
    )
    assert report.processor({"hardware": "test CPU"}) == "test CPU"  # records made before kdlib recorded it
    assert report.processor({}) == "?"


def test_results_section_names_a_headline_model_the_results_lack(results):
    record = _record("05_quantization")
    del record["models"]["ecapa_fp32"]
    (results / "05_quantization.json").write_text(json.dumps(record))
    with pytest.raises(KeyError, match="05_quantization: no model 'ecapa_fp32'"):
        report.results_section(report.load(results))


def test_docs_check_command(results, tmp_path, capsys):
    page, readme, exercises = tmp_path / "results.md", tmp_path / "README.md", tmp_path / "exercises.md"
    page.write_text(f"{report.BEGIN}\n{report.END}\n")
    readme.write_text(f"# kdlib\n{report.GLANCE_BEGIN}\n{report.GLANCE_END}\n")
    exercises.write_text(f"{report.ANSWERS_BEGIN}\n{report.ANSWERS_END}\n")
    answer = results / "variants" / "02_iml_kd" / "fitted" / "02_iml_kd.json"
    answer.parent.mkdir(parents=True)
    answer.write_text(
        json.dumps(
            {
                **_record("02_iml_kd"),
                "parameters": {"TEACHER_HEAD": "fitted"},
                "wall_time_s": 960.0,
                "provenance": {"created": "2026-12-04T05:00:00"},
            }
        )
    )
    command = [
        "docs",
        "--results",
        str(results),
        "--page",
        str(page),
        "--readme",
        str(readme),
        "--exercises",
        str(exercises),
    ]
    assert report.main([*command, "--check"]) == 1
    assert report.main(command) == 0
    assert report.main([*command, "--check"]) == 0
    assert "| 02 | [`02_iml_kd`](notebooks/02_iml_kd.ipynb) | IML-KD" in readme.read_text()
    assert "claims: 1 holds, 1 contradicted, 0 inconclusive; " in readme.read_text()
    assert "| 02_iml_kd | fitted | `TEACHER_HEAD = fitted` | 2026-12-04 | 16.0 min |" in exercises.read_text()


def test_docs_and_readme_show_the_committed_reference_results():
    """docs/results.md's tables and the README's notebook table are generated: they must equal what the committed
    reference run gives."""
    reference = report.reference_dir()
    records, times = report.load(reference), report.load_times(reference)
    assert report.section_matches(report.results_section(records, times=times)), (
        "docs/results.md's section differs from results/reference/; run python -m kdlib.course.report docs"
    )
    assert report.section_matches(
        report.glance_section(records, times), report.README, report.GLANCE_BEGIN, report.GLANCE_END
    ), "README.md's notebook table differs; run python -m kdlib.course.report docs"
    assert report.section_matches(
        report.answers_section(), report.EXERCISES_PAGE, report.ANSWERS_BEGIN, report.ANSWERS_END
    ), "docs/exercises.md's answers differ; run python -m kdlib.course.report docs"


def test_reference_results_are_full_runs_of_every_notebook():
    records = report.load(report.reference_dir())  # refuses a smoke run or a missing notebook
    assert report.reference_dir() == REPO_ROOT / "results" / "reference"
    assert all(r["wall_time_s"] > 60 and r["claims"] and r["models"] for r in records.values())


def _leaves(verdict: dict) -> list[dict]:
    return (
        [leaf for part in verdict.get("parts", [verdict]) for leaf in _leaves(part)]
        if "parts" in verdict
        else [verdict]
    )


def test_every_reference_claim_is_judged_by_the_one_verdict_rule():
    from kdlib.evaluation.verdicts import OUTCOMES, Region, outcome

    for notebook, record in report.load(report.reference_dir()).items():
        for judged in record["claims"]:
            where = (notebook, judged["claim"])
            assert judged["outcome"] == judged["verdict"]["outcome"] in OUTCOMES, where
            assert judged["holds"] == (judged["outcome"] == "holds"), where
            for leaf in _leaves(judged["verdict"]):
                assert leaf["method"] and leaf["unit"] and len(leaf["interval"]) == 2, where
                low, high = leaf["interval"]
                if low is not None and high is not None and leaf["region"].startswith("effect > "):
                    edge = float(leaf["region"].removeprefix("effect > "))
                    assert outcome(low, high, Region(edge, float("inf"), "")) == leaf["outcome"], where


def test_promote_copies_a_complete_full_run_and_refuses_anything_less(results, tmp_path):
    reference = tmp_path / "reference"
    written = report.promote(results, reference)
    assert sorted(p.name for p in written) == sorted(f"{n}.json" for n in report.NOTEBOOKS)
    assert report.load(reference) == report.load(results)
    before = {p.name: p.read_bytes() for p in reference.iterdir()}
    (results / "04_joint_kd_multitask.json").unlink()
    with pytest.raises(FileNotFoundError, match="04_joint_kd_multitask"):
        report.promote(results, reference)
    assert {p.name: p.read_bytes() for p in reference.iterdir()} == before  # nothing overwritten


@pytest.mark.parametrize(
    "notebook, key, name",
    [
        ("05_quantization", "ecapa_ptq-pot_4b", "ECAPA-TDNN 4-bit PTQ, powers of two"),
        ("05_quantization", "resnet34_int8_torch_ao", "ResNet-34 int8 (torch.ao)"),
        ("02_iml_kd", "student_c32_iml_kd_b_seed0", "student + IML-KD (b)"),
        ("02_iml_kd", "student_c128_multilevel_kd", "student + multi-level KD"),
        ("01_os_kdft", "e_oskdft_L2", "(e) OS-KDFT, 2 layers"),
        ("03_ensemble_kd", "random_twin_HubertModel", "random twin HubertModel"),
    ],
)
def test_models_get_readable_names(notebook, key, name):
    assert report.name_of(notebook, key) == name


def test_each_model_is_compared_with_its_own_reference():
    assert report.reference_of("05_quantization", "resnet34_ptq-uniform_4b") == "resnet34_fp32"
    assert (
        report.reference_of("04_joint_kd_multitask", "distilled_Whisper_tiny_en_frozen_kws_sv")
        == "Whisper_tiny_en_teacher_fine_tuned_kws_sv"
    )
    assert (
        report.reference_of("04_joint_kd_multitask", "distilled_HuBERT_fine_tuned_kws")
        == "HuBERT_teacher_fine_tuned_kws_sv"
    )
    assert report.reference_of("unknown", "x") is None


def _times(notebooks, mode="full"):
    return {
        "notebooks": {
            n: {
                "seconds": 600.0 + i,
                "status": "ok",
                "mode": mode,
                "hardware": "test CPU",
                "sections": [
                    {"section": "1. Data", "seconds": 20.0},
                    {"section": "2. Training", "seconds": 500.0 + i},
                    {"section": "3. Evaluation", "seconds": 60.0},
                    {"section": "4. Results", "seconds": 1.0},
                ],
            }
            for i, n in enumerate(notebooks)
        }
    }


def test_the_section_says_where_each_notebooks_time_goes(results):
    (results / report.TIMES_FILE).write_text(json.dumps(_times([*report.NOTEBOOKS, "06_compare"])))
    times = report.load_times(results)
    section = report.results_section(report.load(results), "somewhere/", times)
    assert "all 7 notebooks: **70.3 min**" in section  # (7 × 600 + 0 + 1 + ... + 6) s = 4,221 s
    assert "| 06_compare | 10.1 min | 2. Training 506 s; 3. Evaluation 60 s; 1. Data 20 s |" in section
    assert "4. Results" not in section  # only the three longest sections
    assert report.load_times(results / "nowhere") is None
    (results / report.TIMES_FILE).write_text('{"notebooks": {"00": {"seconds": "x"}}}')
    with pytest.raises(ValueError, match="run_times.json: not a run-times file"):
        report.load_times(results)


def test_promote_copies_the_run_times_only_when_every_notebook_ran_in_full(results, tmp_path):
    (results / report.TIMES_FILE).write_text(json.dumps(_times(report.NOTEBOOKS)))  # 06 lacking
    with pytest.raises(ValueError, match="no full-mode time of 06_compare"):
        report.promote(results, tmp_path / "reference")
    (results / report.TIMES_FILE).write_text(json.dumps(_times([*report.NOTEBOOKS, "06_compare"])))
    written = report.promote(results, tmp_path / "reference")
    assert report.load_times(tmp_path / "reference") == report.load_times(results)
    assert len(written) == len(report.NOTEBOOKS) + 1


def test_outcome_agreement_sets_each_claim_beside_the_reference():
    verdict = lambda effect: {
        "effect": effect,
        "interval": [effect - 1, effect + 1],
        "unit": "points",
        "relative": False,
        "region": [0.0, None],
        "method": "bootstrap",
        "detectable": 2.0,
    }
    claim = lambda name, outcome, effect: {"claim": name, "outcome": outcome, "verdict": verdict(effect)}
    reference = {"01_os_kdft": {"claims": [claim("a", "holds", 3.0), claim("b", "inconclusive", 0.5)]}}
    other = {
        "01_os_kdft": {"claims": [claim("a", "holds", 2.5), claim("b", "contradicted", -1.5), claim("c", "holds", 4.0)]}
    }
    table = report.outcome_agreement(reference, other)
    assert table.claim.tolist() == ["a", "b", "c"]
    assert table.agree.tolist() == [True, False, False]
    assert table["reference"].tolist() == ["holds", "inconclusive", "–"]
    assert table["other run"].tolist() == ["holds", "contradicted", "holds"]


def test_the_notebook_table_names_a_notebook_timed_on_another_machine(results):
    times = _times([*report.NOTEBOOKS, "06_compare"])
    times["notebooks"]["03_ensemble_kd"]["hardware"] = "other CPU"
    glance = report.glance_section(report.load(results), times)
    row = next(line for line in glance.splitlines() if line.startswith("| 03 |"))
    assert row.endswith("| 10.1 min (other CPU) |")  # 603 s
    assert "(test CPU)" not in glance and "where no other machine is named" in glance
