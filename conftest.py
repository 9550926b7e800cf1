"""How ``pytest tests notebooks --nbmake`` (``make test``) runs the notebooks, as ``python -m kdlib.course.runner run``
does:

- with kdlib's reference numerics in each notebook's kernel (:func:`kdlib.course.runner.set_numerics`), so that a
  smoke run repeats bit for bit and the solutions notebooks can set their variants beside it; the test
  process's own environment is restored after each notebook;
- keeping each executed notebook under ``<results>/executed/`` (smoke mode: ``results/smoke/executed/``), so
  that the course book can be built from the smoke run. nbmake itself only offers to overwrite the committed
  notebooks with their outputs;
- running the tests marked ``after_notebooks`` (``tests/notebooks/``: the book of the smoke run, its tables) last,
  and only in a session that runs notebooks.

It sits at the repository's root so that learners do not meet test plumbing in ``notebooks/``.
"""

import os
import time
from pathlib import Path

import nbformat
import pytest
from nbmake.nb_run import NotebookRun

from kdlib.course.runner import set_numerics
from kdlib.runtime import results_dir

_execute = NotebookRun.execute


def _execute_as_the_runner_does(self, *args, **kwargs):
    saved = dict(os.environ)
    set_numerics("reference")  # the kernel nbmake starts inherits these
    os.environ["KDLIB_HEADLESS"] = "1"  # one progress line per loop in the saved copy
    try:
        result = _execute(self, *args, **kwargs)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    out = results_dir() / "executed"
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(result.nb, out / Path(self.filename).name)
    return result


NotebookRun.execute = _execute_as_the_runner_does

_SESSION_START = pytest.StashKey[float]()


def pytest_sessionstart(session):
    session.config.stash[_SESSION_START] = time.time()


@pytest.fixture
def session_start(pytestconfig) -> float:
    """When this test session started: executed copies older than that are from another run."""
    return pytestconfig.stash[_SESSION_START]


def pytest_collection_modifyitems(session, config, items):
    """Tests marked ``after_notebooks`` read what this session's notebooks wrote: run them after the notebooks, and
    leave them out (deselected, said in the summary) when the session runs no notebook."""
    later = [item for item in items if item.get_closest_marker("after_notebooks")]
    if not later:
        return
    first = [item for item in items if not item.get_closest_marker("after_notebooks")]
    if any(item.path.suffix == ".ipynb" for item in first):
        items[:] = first + later
    else:
        config.hook.pytest_deselected(items=later)
        items[:] = first
