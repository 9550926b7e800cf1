"""Progress bars that read well both live and in saved notebooks.

In JupyterLab or a terminal, :func:`bar` is ``tqdm.auto``: a live bar. In a headless run (``KDLIB_HEADLESS=1``,
which ``python -m kdlib.course.runner run`` sets for its kernels) a widget bar would be saved frozen at 0 %, so no bar
is drawn and one line is printed when the loop ends: ``<label>: <n>/<total> <unit> in <time>``.
"""

from __future__ import annotations

import os

from tqdm.std import tqdm as _std_tqdm


def headless() -> bool:
    """True in a run whose output is saved rather than watched (``KDLIB_HEADLESS=1``)."""
    return os.environ.get("KDLIB_HEADLESS", "").strip().lower() in {"1", "true", "yes", "on"}


class _OneLine(_std_tqdm):
    """A tqdm that draws nothing and prints one summary line when closed."""

    def __init__(self, *args, **kwargs):
        kwargs["file"] = open(os.devnull, "w")
        self._devnull, self._reported = kwargs["file"], False
        super().__init__(*args, **kwargs)

    def close(self):
        if not self.disable and not self._reported:
            self._reported = True
            total = f"/{self.total}" if self.total else ""
            elapsed = self.format_interval(self.format_dict["elapsed"])
            print(f"{self.desc or 'progress'}: {self.n}{total} {self.unit} in {elapsed}", flush=True)
        super().close()
        self._devnull.close()


def bar(
    iterable=None, *, desc: str, total: int | None = None, unit: str = "it", disable: bool = False, leave: bool = False
):
    """A labelled progress bar over ``iterable`` (or a manual one with ``total``): live in a session, one line
    at the end in a headless run."""
    if headless():
        return _OneLine(iterable, desc=desc, total=total, unit=unit, disable=disable)
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, leave=leave)
