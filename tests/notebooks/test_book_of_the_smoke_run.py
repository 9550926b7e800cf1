"""The course book, built from this test session's executed notebooks (kept by the repository's ``conftest.py``):
every chapter has its page, with every figure its executed notebook holds, and nothing is fetched from outside.
These run after the notebooks of the session, and only in a session that runs them (``make test``)."""

import re

import nbformat
import pytest

from kdlib.course import book, screenshots
from kdlib.runtime import results_dir

pytestmark = pytest.mark.after_notebooks


def test_the_book_of_this_smoke_run_has_every_chapter_and_its_figures(session_start):
    executed = results_dir() / "executed"
    copies = {name: executed / f"{name}.ipynb" for name in book.CHAPTERS}
    stale = [name for name, path in copies.items() if not path.is_file() or path.stat().st_mtime < session_start]
    assert not stale, (
        f"{executed}: {stale} did not run in this session; run the notebooks with this test "
        "(make test, or pytest tests notebooks --nbmake)"
    )
    index = book.build(executed, results_dir() / "book")
    landing = index.read_text()
    for name in book.CHAPTERS:
        nb = nbformat.read(copies[name], as_version=4)
        figures = sum(
            "image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
        )
        page = (index.parent / f"{name}.html").read_text()
        assert f"href='{name}.html'" in landing, name
        assert figures > 0, f"{name}: the smoke run drew no figure"
        assert page.count('src="data:image/png;base64,') == figures, name
        assert not re.search(r'<script[^>]+src="https?://', page), f"{name} fetches a script from outside"


def test_the_smoke_runs_tables_show_no_nan_and_no_long_decimals(session_start):
    """Every table of every notebook and solutions notebook executed in this session reads cleanly: no "NaN"
    checkerboard of merged tables, no six-decimal numbers (``kdlib.course.report.tidy`` shows them)."""
    copies = [
        path for path in sorted((results_dir() / "executed").glob("*.ipynb")) if path.stat().st_mtime >= session_start
    ]
    assert len(copies) >= 2 * len(book.CHAPTERS), f"{results_dir() / 'executed'}: not every notebook ran"
    problems = [
        line for path in copies for line in screenshots.table_problems(nbformat.read(path, as_version=4), path.name)
    ]
    assert not problems, "\n".join(problems)
