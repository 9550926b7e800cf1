"""Screenshots of executed notebooks as a browser draws them: ``python -m kdlib.course.screenshots``.

Each executed notebook (default: ``results/executed/*.ipynb``, written by ``python -m kdlib.course.runner run``) is
converted to HTML with JupyterLab's look (nbconvert's ``lab`` template) and drawn by headless Chromium into
PNGs under ``results/screenshots/``: one or more pages per notebook, cut between cells, so that a reviewer can
check figures, legends and tables without opening JupyterLab. Needs a Chromium (Debian:
``apt-get install chromium``); nothing else is installed.
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from kdlib.runtime import results_dir

WIDTH = 1280
"""Browser window width in CSS pixels: JupyterLab's content width on a laptop screen."""
PAGE_HEIGHT = 12_000
"""Most pixels per screenshot (Chromium draws at most 16,384)."""
LINE_PX, CELL_PX, IMAGE_WIDTH = 17, 40, 1180


def find_chromium() -> str:
    """The first Chromium (or Chrome) on the PATH; a clear error that says how to get one otherwise."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no Chromium found on the PATH; install one (Debian/Ubuntu: apt-get install chromium)")


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG from its header (IHDR)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


def cell_height(cell) -> int:
    """A generous estimate of a cell's drawn height in pixels: its source and text outputs by lines, its
    images by their size scaled to the page width (a page is cut between cells, never inside one)."""
    height = CELL_PX + LINE_PX * (cell.source.count("\n") + 1)
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        if "image/png" in data:
            w, h = _png_size(base64.b64decode(data["image/png"]))
            height += int(h * min(1.0, IMAGE_WIDTH / w)) + CELL_PX
        elif "text/html" in data:  # tables: one row per line of their text form
            height += LINE_PX * 1.6 * (str(data.get("text/plain", "")).count("\n") + 2)
        else:
            text = out.get("text") or data.get("text/markdown") or data.get("text/plain") or ""
            height += LINE_PX * (str(text).count("\n") + 1)
    return int(height)


def pages(nb, page_height: int = PAGE_HEIGHT) -> list[list[int]]:
    """Cell indices grouped into pages of at most ``page_height`` estimated pixels (a taller cell gets a page
    of its own)."""
    groups, current, used = [], [], 0
    for i, cell in enumerate(nb.cells):
        h = cell_height(cell)
        if current and used + h > page_height:
            groups.append(current)
            current, used = [], 0
        current.append(i)
        used += h
    if current:
        groups.append(current)
    return groups


def to_html(nb) -> str:
    """The notebook as JupyterLab draws it (nbconvert's ``lab`` template, outputs as they were saved; equations
    typeset by the installed MathJax, so that no network is needed)."""
    from nbconvert import HTMLExporter

    from kdlib.course.typeset import local_mathjax_url, with_mathjax

    page = HTMLExporter(template_name="lab").from_notebook_node(nb)[0]
    mathjax = local_mathjax_url()
    return with_mathjax(page, mathjax) if mathjax else page


def screenshot(html_path: Path, png_path: Path, height: int, browser: str | None = None) -> Path:
    """Draw ``html_path`` in headless Chromium, ``WIDTH × height`` pixels, into ``png_path``."""
    browser = browser or find_chromium()
    cmd = [
        browser,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--hide-scrollbars",
        "--allow-file-access-from-files",
        f"--window-size={WIDTH},{height}",
        f"--screenshot={png_path}",
        "--virtual-time-budget=5000",
        html_path.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if done.returncode != 0 or not png_path.exists():
        raise RuntimeError(f"{browser} could not draw {html_path}: {done.stderr.strip()[-500:]}")
    return png_path


def rendered_dom(html_path: Path, browser: str | None = None, budget_ms: int = 10_000) -> str:
    """The DOM of ``html_path`` after headless Chromium has run its scripts for ``budget_ms`` of virtual time
    (MathJax's typesetting included): what a reader's browser shows, as HTML text."""
    browser = browser or find_chromium()
    cmd = [
        browser,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--allow-file-access-from-files",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--virtual-time-budget={budget_ms}",
        "--dump-dom",
        html_path.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if done.returncode != 0 or "<body" not in done.stdout:
        raise RuntimeError(f"{browser} could not draw {html_path}: {done.stderr.strip()[-500:]}")
    return done.stdout


_TABLE_CELL = re.compile(r"<td[^>]*>\s*(.*?)\s*</td>", re.S)
_LONG_DECIMAL = re.compile(r"-?\d+\.\d{5,}")


def table_problems(nb, name: str = "notebook") -> list[str]:
    """What a reader should not meet in an executed notebook's tables (pandas' HTML outputs): empty cells shown as
    "NaN" or "None" (a merged table or a missing value; show "–", see ``kdlib.course.report.tidy``), and numbers printed
    with five or more decimals. One line per table, naming the cell."""
    problems = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            page = out.get("data", {}).get("text/html", "")
            if "<table" not in page:
                continue
            cells = _TABLE_CELL.findall(page)
            empty = sum(text in ("NaN", "None", "nan", "<NA>") for text in cells)
            long = [text for text in cells if _LONG_DECIMAL.fullmatch(text)]
            if empty or long:
                problems.append(
                    f"{name}, cell {index}: {empty} empty cells shown as NaN/None, {len(long)} numbers "
                    f"with 5+ decimals{' (' + long[0] + ')' if long else ''}"
                )
    return problems


def read_executed(notebook: Path, use: str):
    """An executed notebook, refused with its path when unreadable or without outputs (``use``: what needs it)."""
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as err:
        raise ValueError(f"{notebook}: not a readable notebook ({err})") from err
    if not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
        raise ValueError(f"{notebook}: has no outputs; {use} an executed copy (results/executed/)")
    return nb


def notebook_screenshots(notebook: Path, out_dir: Path, browser: str | None = None) -> list[Path]:
    """PNG pages of one executed notebook: ``<out_dir>/<name>-<page>.png``."""
    import nbformat

    nb = read_executed(notebook, "screenshot")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for number, cells in enumerate(pages(nb), start=1):
            part = nbformat.v4.new_notebook(metadata=nb.metadata)
            part.cells = [nb.cells[i] for i in cells]
            html = Path(tmp) / f"{notebook.stem}-{number}.html"
            html.write_text(to_html(part), encoding="utf-8")
            height = min(16_000, sum(cell_height(nb.cells[i]) for i in cells) + 200)
            written.append(screenshot(html, out_dir / f"{notebook.stem}-{number}.png", height, browser))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kdlib.course.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="executed notebooks (default: results/executed/*.ipynb)"
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: results/screenshots)")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((results_dir() / "executed").glob("*.ipynb"))
    if not notebooks:
        raise SystemExit("no executed notebooks: run `python -m kdlib.course.runner run` first, or name some")
    out = args.out or results_dir() / "screenshots"
    browser = find_chromium()
    for notebook in notebooks:
        for png in notebook_screenshots(notebook, out, browser):
            print(png)


if __name__ == "__main__":
    main()
