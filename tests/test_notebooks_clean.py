"""Notebooks are committed without outputs, install nothing, and have one knobs cell driven by KDLIB_SMOKE."""

import json
import re

import pytest

from kdlib.runtime import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert any(p.name.startswith("00_") for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") for c in code), f"{path.name} is committed with outputs"
    assert all(c.get("execution_count") is None for c in code), f"{path.name} has execution counts"
    source = "\n".join("".join(c["source"]) for c in code)
    assert not re.search(r"^\s*[!%]\s*pip\s+install", source, re.M), f"{path.name} installs packages"
    knobs = [c for c in code if "kdlib.runtime.SMOKE" in "".join(c["source"])]
    assert len(knobs) == 1, f"{path.name} needs exactly one knobs cell reading kdlib.runtime.SMOKE"
    assert "results.save(" in source, f"{path.name} does not write its results file"


SOLUTIONS = sorted((REPO_ROOT / "notebooks" / "solutions").glob("*.ipynb"))


def test_every_solutions_notebook_answers_a_notebook():
    assert SOLUTIONS, "no solutions notebooks"
    names = {p.name for p in NOTEBOOKS}
    for path in SOLUTIONS:
        assert path.name.replace("_solutions", "") in names, f"{path.name} answers no notebook"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_notebook_is_clean(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{path.name} has outputs"
    source = "\n".join("".join(c["source"]) for c in code)
    assert not re.search(r"^\s*[!%]\s*pip\s+install", source, re.M), f"{path.name} installs packages"
    assert sum("kdlib.runtime.SMOKE" in "".join(c["source"]) for c in code) == 1, f"{path.name}: one knobs cell"


def exercises(path) -> dict[int, str]:
    """A notebook's numbered exercises (its "## Exercises" cell), or a solutions notebook's "## Exercise N" sections:
    {N: the item's text, or the section's heading}."""
    found = {}
    for cell in json.loads(path.read_text())["cells"]:
        text = "".join(cell["source"]) if cell["cell_type"] == "markdown" else ""
        if text.startswith("## Exercises"):
            for item in re.split(r"\n(?=\d+\. )", text.split("\n", 1)[1]):
                if re.match(r"\d+\. ", item):
                    found[int(item.split(".", 1)[0])] = item
        found.update({int(n): head for n, head in re.findall(r"^## Exercise (\d+) · (.*)$", text, re.M)})
    return found


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_answer_the_exercises_their_notebook_sets(path):
    """Same exercises, same numbers; a knob a solution's heading names (`KNOB = ...`) is one its exercise names."""
    asked, answered = exercises(REPO_ROOT / "notebooks" / path.name.replace("_solutions", "")), exercises(path)
    if not answered:
        return  # solutions written as one walk-through (notebook 00's), not exercise by exercise
    assert sorted(answered) == sorted(asked), (
        f"{path.name}: answers {sorted(answered)}, the notebook asks {sorted(asked)}"
    )
    for n, heading in answered.items():
        knobs = set(re.findall(r"`([A-Z][A-Z0-9_]+)\b", heading))
        assert not knobs or any(k in asked[n] for k in knobs), f"{path.name} exercise {n}: {heading!r} vs {asked[n]!r}"


def test_what_a_notebook_takes_comes_from_the_reference_run():
    """The times a notebook announces are measured, not typed: kdlib.env_report(name) reads the reference run's
    run_times.json, and the notebooks whose reference time is current call it with their name."""
    import json

    from kdlib.runtime import REPO_ROOT, duration, expected_times

    times = json.loads((REPO_ROOT / "results" / "reference" / "run_times.json").read_text())["notebooks"]
    for name in ("01_os_kdft", "02_iml_kd", "03_ensemble_kd", "04_joint_kd_multitask", "05_quantization", "06_compare"):
        assert expected_times(name)["cpu, full"].startswith(f"{duration(times[name]['seconds'])} on ")
        source = (REPO_ROOT / "notebooks" / f"{name}.ipynb").read_text()
        assert f'kdlib.env_report(\\"{name}\\")' in source, name
        what_you_need = source.split("## What you need", 1)[1].split('"cell_type"', 1)[0]
        assert "| full" not in what_you_need and "(measured " not in what_you_need, name  # no typed time table
    assert all("gpu, full" not in expected_times(n) for n in times)  # no committed GPU run: no GPU time claimed


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS, ids=lambda p: p.name)
def test_every_cell_has_its_own_id(path):
    """nbformat 4.5 cell ids: present and unique (a copied cell keeps its id, and Jupyter then rewrites it)."""
    ids = [c.get("id") for c in json.loads(path.read_text())["cells"]]
    assert None not in ids, f"{path.name}: cell {ids.index(None)} has no id"
    assert len(set(ids)) == len(ids), f"{path.name}: repeated ids {sorted({i for i in ids if ids.count(i) > 1})}"


CELL_LINES = 18
"""The longest code cell allowed: one idea per cell, about 15 lines (the imports and the knobs cells excepted)."""


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS, ids=lambda p: p.name)
def test_code_cells_stay_short(path):
    """A cell of bookkeeping belongs in kdlib; a long method cell reads better split into its steps."""
    too_long = []
    for number, cell in enumerate(json.loads(path.read_text())["cells"]):
        source = "".join(cell["source"])
        exempt = "kdlib.env_report(" in source or "kdlib.runtime.SMOKE" in source  # imports, knobs
        if cell["cell_type"] == "code" and not exempt and len(source.splitlines()) > CELL_LINES:
            too_long.append(f"cell {number} ({cell.get('id')}): {len(source.splitlines())} lines")
    assert not too_long, f"{path.name}: code cells over {CELL_LINES} lines: {'; '.join(too_long)}"
