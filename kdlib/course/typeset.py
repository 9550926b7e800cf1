"""Equations in HTML pages typeset offline: MathJax 3 with its TeX fonts, from the ``django-static-mathjax`` wheel
(the course book copies it beside its pages; screenshots load it from the installed wheel)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

MATHJAX_FILES = ("es5/tex-chtml-full.js", "es5/output/chtml/fonts/woff-v2", "LICENSE")
"""What the book copies of MathJax: the TeX input and HTML output with all TeX extensions in one file, and the TeX
fonts it draws with (23 woff files; without them a browser falls back to system fonts: upright variables, accents
that float)."""
_MATHJAX_BLOCK = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)


def _mathjax_source() -> Path:
    """The MathJax distribution of the ``django-static-mathjax`` wheel (its ``es5/`` holds the browser files)."""
    try:
        import mathjax
    except ImportError as err:
        raise ImportError(
            "the course book needs MathJax for offline equations: pip install "
            "django-static-mathjax==3.2.2.1 (in requirements.txt)"
        ) from err
    return Path(mathjax.__file__).parent / "static" / "mathjax"


def local_mathjax_url() -> str | None:
    """A ``file://`` URL of the installed MathJax script, or None when the wheel is missing."""
    try:
        return (_mathjax_source() / MATHJAX_FILES[0]).as_uri()
    except ImportError:
        return None


def copy_mathjax(folder: Path) -> str:
    """Copy MathJax's script and TeX fonts into ``folder`` (kept if already there); returns the script's path
    relative to ``folder``'s parent, for the pages' ``<script src>``."""
    source = _mathjax_source()
    for name in MATHJAX_FILES:
        target = folder / Path(name).relative_to("es5") if name.startswith("es5/") else folder / name
        if (source / name).is_dir():
            shutil.copytree(source / name, target, dirs_exist_ok=True)
        elif not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, target)
    return f"{folder.name}/{Path(MATHJAX_FILES[0]).name}"


def mathjax_head(script_url: str) -> str:
    """The ``<head>`` lines that typeset a page's ``$...$`` and ``$$...$$`` with MathJax 3 (the settings
    JupyterLab uses: TeX delimiters, escaped dollars, AMS environments and numbering). MathJax finds its fonts
    beside its script (``output/chtml/fonts/woff-v2``)."""
    return (
        "<!-- MathJax 3: TeX input, HTML output with TeX fonts -->\n<script>\nwindow.MathJax = {\n"
        "  tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']],\n"
        "        processEscapes: true, processEnvironments: true, tags: 'ams'}\n};\n</script>\n"
        f'<script defer src="{script_url}"></script>'
    )


def with_mathjax(page_html: str, script_url: str) -> str:
    """``page_html`` (nbconvert's ``lab`` template) with its MathJax 2 block replaced by :func:`mathjax_head`."""
    page, found = _MATHJAX_BLOCK.subn(lambda _: mathjax_head(script_url), page_html, count=1)
    if not found:
        raise ValueError("nbconvert's page has no MathJax block to replace; has its template changed?")
    return page
