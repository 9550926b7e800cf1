"""kdlib.course.book: the course book is built offline from executed notebooks, one page per chapter with its
figures."""

import base64
import io
import json
import re

import nbformat
import pytest

from kdlib.course import book


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
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            f"# {name}\n\nThe loss: $L = 1 - \\cos(e_S, e_T)$, and\n"
            "$$\\mathcal{L} = \\sum_{l} \\lVert \\hat{h}_l - h_l \\rVert_1$$\n\n"
            "[how to switch](../docs/running.md#smoke-or-full)"
        ),
        nbformat.v4.new_code_cell(
            "plot()",
            outputs=[
                nbformat.v4.new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"}),
                nbformat.v4.new_output("stream", text="EER 2.70 %\n"),
            ],
        ),
    ]
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
        assert '<script defer src="_static/mathjax/tex-chtml-full.js">' in page and "MathJax.Hub" not in page
    assert "<td>60 s</td>" in landing and "<td>7.0 min</td>" in landing  # this run's wall times, from the results files
    assert (out / "_static" / "mathjax" / "tex-chtml-full.js").is_file()
    fonts = out / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert (fonts / "MathJax_Math-Italic.woff").is_file()
    first, last = list(book.CHAPTERS)[0], list(book.CHAPTERS)[-1]
    assert "←" not in (out / f"{first}.html").read_text().split("</nav>")[0]
    assert "→" not in (out / f"{last}.html").read_text().split("</nav>")[0]


def test_the_notebooks_links_to_the_docs_reach_the_repositorys_docs(run_folder):
    from kdlib.runtime import REPO_ROOT

    index = book.build(run_folder / "executed", run_folder / "nested" / "book")
    page = (index.parent / f"{list(book.CHAPTERS)[0]}.html").read_text()
    href = re.search(r'href="([^"]*running\.md)#smoke-or-full"', page).group(1)
    assert (index.parent / href).resolve() == REPO_ROOT / "docs" / "running.md"


FONT_PROBE = """<script>
window.addEventListener('load', () => MathJax.startup.promise
  .then(() => new Promise(done => setTimeout(done, 500))).then(() => document.fonts.ready).then(() => {
    const faces = [...document.fonts].filter(f => f.family.replace(/"/g, '').startsWith('MJX'));
    document.body.setAttribute('data-fonts', faces.map(f => f.family.replace(/"/g, '') + ':' + f.status).join(' '));
  }));
</script>"""


def test_the_books_equations_are_drawn_with_tex_fonts_in_a_browser(run_folder):
    """Headless Chromium opens a chapter from disk: MathJax typesets every equation, and the TeX fonts it draws
    them with (math italic for variables, calligraphic, the display-size sum) load from the book's own folder;
    none fails to load (a missing font makes the browser fall back to system fonts)."""
    from kdlib.course import screenshots

    out = book.build(run_folder / "executed", run_folder / "book").parent
    probe = out / "probe.html"
    probe.write_text((out / "03_ensemble_kd.html").read_text().replace("</body>", FONT_PROBE + "</body>"))
    dom = screenshots.rendered_dom(probe)
    assert len(re.findall(r'<mjx-container [^>]*jax="CHTML"', dom)) == 2, "both equations typeset"
    assert "<mjx-merror" not in dom and "$$" not in dom.split("<body", 1)[1]
    fonts = dict(entry.split(":") for entry in re.search(r'data-fonts="([^"]*)"', dom).group(1).split())
    assert {fonts.get(family) for family in ("MJXTEX-I", "MJXTEX-C", "MJXTEX-S2")} == {"loaded"}, fonts
    assert "error" not in fonts.values(), fonts


def test_a_book_made_from_smoke_runs_says_so_on_every_page(run_folder):
    """Smoke numbers mean nothing: every page of a book built from smoke-mode records carries the banner; a full
    run's book carries none."""
    full = book.build(run_folder / "executed", run_folder / "book-full").parent
    assert not any("kdlib-smoke" in p.read_text() for p in full.glob("*.html"))
    for name in book.CHAPTERS:
        (run_folder / f"{name}.json").write_text(json.dumps({"wall_time_s": 5.0, "mode": "smoke"}))
    smoke = book.build(run_folder / "executed", run_folder / "book-smoke").parent
    pages = sorted(smoke.glob("*.html"))
    assert len(pages) == len(book.CHAPTERS) + 1
    for page in pages:
        text = page.read_text()
        assert text.count('class="kdlib-smoke"') == 1 and "Built from a smoke run" in text, page.name


def test_a_missing_chapter_is_named_with_the_command(run_folder):
    (run_folder / "executed" / "03_ensemble_kd.ipynb").unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"03_ensemble_kd.*python -m kdlib.course.runner run --notebooks "
        r"notebooks/03_ensemble_kd.ipynb",
    ):
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
    assert sorted(p.name for p in index.parent.glob("*.html")) == [
        "00_data_and_teachers.html",
        "02_iml_kd.html",
        "index.html",
    ]
    with pytest.raises(ValueError, match="unknown chapters"):
        book.build(run_folder / "executed", run_folder / "x", chapters=["07_nothing"])
