"""Screenshots of executed notebooks: page cutting, size estimates, the browser call and bad input."""

import base64
import io
import os
import stat

import nbformat
import pytest

from kdlib.course import screenshots


def _png(width, height):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def _executed(n_cells=3, image=(1180, 400)):
    nb = nbformat.v4.new_notebook()
    for i in range(n_cells):
        cell = nbformat.v4.new_code_cell(f"x = {i}\nx")
        cell.outputs = [
            nbformat.v4.new_output(
                "display_data", data={"image/png": base64.b64encode(_png(*image)).decode(), "text/plain": "<Figure>"}
            )
        ]
        nb.cells.append(cell)
    return nb


def test_png_size_reads_the_header():
    assert screenshots._png_size(_png(321, 123)) == (321, 123)
    with pytest.raises(ValueError, match="not a PNG"):
        screenshots._png_size(b"GIF89a" + bytes(30))


def test_cell_height_golden_value():
    cell = _executed(1, image=(2360, 800)).cells[0]  # drawn at half size: 400 px
    lines = 2
    expected = screenshots.CELL_PX + screenshots.LINE_PX * lines + 400 + screenshots.CELL_PX
    assert screenshots.cell_height(cell) == expected


def test_pages_cut_between_cells_and_keep_every_cell_once():
    nb = _executed(10, image=(1180, 3000))
    groups = screenshots.pages(nb, page_height=7000)
    assert [i for g in groups for i in g] == list(range(10))
    assert all(sum(screenshots.cell_height(nb.cells[i]) for i in g) <= 7000 for g in groups)
    assert len(groups) == 5  # two 3,114-px cells per 7,000-px page


def test_a_cell_taller_than_a_page_gets_its_own_page():
    nb = _executed(3, image=(1180, 9000))
    assert screenshots.pages(nb, page_height=5000) == [[0], [1], [2]]


def _fake_browser(tmp_path, succeed=True):
    """A stand-in for Chromium that records its arguments and writes the PNG it is asked for."""
    script = tmp_path / "fake-chromium"
    log = tmp_path / "args.txt"
    body = (
        f'for a in "$@"; do echo "$a" >> {log}; case "$a" in --screenshot=*) out="${{a#--screenshot=}}";; esac; done\n'
    )
    body += 'printf "\\x89PNG" > "$out"\n' if succeed else 'echo "cannot open display" >&2; exit 3\n'
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), log


def test_notebook_screenshots_draw_each_page(tmp_path):
    path = tmp_path / "demo.ipynb"
    nbformat.write(_executed(4, image=(1180, 5000)), path)
    browser, log = _fake_browser(tmp_path)
    pngs = screenshots.notebook_screenshots(path, tmp_path / "shots", browser)
    assert [p.name for p in pngs] == ["demo-1.png", "demo-2.png"]
    args = log.read_text().splitlines()
    height = 2 * screenshots.cell_height(nbformat.read(path, 4).cells[0]) + 200  # two cells a page + margin
    assert "--headless" in args and f"--window-size={screenshots.WIDTH},{height}" in args
    assert any(a.startswith("file://") and a.endswith("demo-1.html") for a in args)


def test_a_failing_browser_is_reported(tmp_path):
    path = tmp_path / "demo.ipynb"
    nbformat.write(_executed(1), path)
    browser, _ = _fake_browser(tmp_path, succeed=False)
    with pytest.raises(RuntimeError, match="could not draw .*demo-1.html: cannot open display"):
        screenshots.notebook_screenshots(path, tmp_path / "shots", browser)


def test_bad_input_is_named(tmp_path):
    clean = tmp_path / "clean.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), clean)
    with pytest.raises(ValueError, match="clean.ipynb: has no outputs"):
        screenshots.notebook_screenshots(clean, tmp_path / "shots", "unused")
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.ipynb: not a readable notebook"):
        screenshots.notebook_screenshots(broken, tmp_path / "shots", "unused")


def test_missing_browser_says_how_to_get_one(monkeypatch):
    monkeypatch.setenv("PATH", os.devnull)
    with pytest.raises(FileNotFoundError, match="apt-get install chromium"):
        screenshots.find_chromium()


def test_table_problems_names_nan_checkerboards_and_long_decimals():
    import numpy as np
    import pandas as pd

    from kdlib.course import report

    merged = pd.DataFrame({"RMS": [3.1, np.nan], "cosine": [np.nan, 0.93]}, index=["a", "a vs b"])
    sizes = pd.DataFrame({"params (M)": [1.926592]})
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("text")]
        + [
            nbformat.v4.new_code_cell(
                "t",
                outputs=[
                    nbformat.v4.new_output(
                        "execute_result", data={"text/html": frame.to_html(), "text/plain": "t"}, execution_count=1
                    )
                ],
            )
            for frame in (merged, sizes, report.tidy(merged), report.tidy(sizes, 2))
        ]
    )
    assert screenshots.table_problems(nb, "03") == [
        "03, cell 1: 2 empty cells shown as NaN/None, 0 numbers with 5+ decimals",
        "03, cell 2: 0 empty cells shown as NaN/None, 1 numbers with 5+ decimals (1.926592)",
    ]
