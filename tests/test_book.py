"""kdlib.book: the course book is built offline from executed notebooks, one page per chapter with its figures."""

import base64
import io
import json
import re

import nbformat
import pytest

from kdlib import book


def _png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _executed(folder, name, wall_time=None):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}\n\nThe loss: $L = 1 - \\cos(e_S, e_T)$"),
                nbformat.v4.new_code_cell("plot()", outputs=[
                    nbformat.v4.new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"}),
                    nbformat.v4.new_output("stream", text="EER 2.70 %\n")])]
    nbformat.write(nb, folder / "executed" / f"{name}.ipynb")
    if wall_time is not None:
        (folder / f"{name}.json").write_text(json.dumps({"wall_time_s": wall_time}))


@pytest.fixture
def run_folder(tmp_path):
    (tmp_path / "executed").mkdir()
    for i, name in enumerate(book.CHAPTERS):
        _executed(tmp_path, name, wall_time=60.0 * (i + 1))
    return tmp_path


def test_every_chapter_gets_a_page_with_its_figures_and_no_outside_script(run_folder):
    index = book.build(run_folder / "executed", run_folder / "book")
    out = index.parent
    landing = index.read_text()
    for i, name in enumerate(book.CHAPTERS):
        page = (out / f"{name}.html").read_text()
        assert f"href='{name}.html'" in landing and book.CHAPTERS[name][0] in landing
        assert page.count('src="data:image/png;base64,') == 1, name  # the figure, embedded
        assert "EER 2.70 %" in page and 'href="index.html"' in page
        assert not re.search(r'<script[^>]+src="https?://', page), f"{name} fetches a script from outside"
        assert "_static/mathjax/MathJax.js?config=" in page
    assert "<td>60 s</td>" in landing and "<td>7 min</td>" in landing  # this run's wall times, from the results files
    assert (out / "_static" / "mathjax" / "MathJax.js").is_file()
    first, last = list(book.CHAPTERS)[0], list(book.CHAPTERS)[-1]
    assert "←" not in (out / f"{first}.html").read_text().split("</nav>")[0]
    assert "→" not in (out / f"{last}.html").read_text().split("</nav>")[0]


def test_a_missing_chapter_is_named_with_the_command(run_folder):
    (run_folder / "executed" / "03_ensemble_kd.ipynb").unlink()
    with pytest.raises(FileNotFoundError, match=r"03_ensemble_kd.*python -m kdlib.runner run --notebooks "
                                                r"notebooks/03_ensemble_kd.ipynb"):
        book.build(run_folder / "executed", run_folder / "book")
    assert not (run_folder / "book" / "index.html").exists()


def test_an_unexecuted_or_broken_notebook_is_refused(run_folder):
    clean = nbformat.v4.new_notebook()
    clean.cells = [nbformat.v4.new_code_cell("1 + 1")]
    nbformat.write(clean, run_folder / "executed" / "02_iml_kd.ipynb")
    with pytest.raises(ValueError, match=r"02_iml_kd.ipynb: has no outputs"):
        book.build(run_folder / "executed", run_folder / "book")
    (run_folder / "executed" / "02_iml_kd.ipynb").write_text("{broken")
    with pytest.raises(ValueError, match=r"02_iml_kd.ipynb: not a readable notebook"):
        book.build(run_folder / "executed", run_folder / "book")


def test_a_subset_of_chapters_and_unknown_names(run_folder):
    index = book.build(run_folder / "executed", run_folder / "part", chapters=["00_data_and_teachers", "02_iml_kd"])
    assert sorted(p.name for p in index.parent.glob("*.html")) == ["00_data_and_teachers.html", "02_iml_kd.html",
                                                                    "index.html"]
    with pytest.raises(ValueError, match="unknown chapters"):
        book.build(run_folder / "executed", run_folder / "x", chapters=["07_nothing"])
