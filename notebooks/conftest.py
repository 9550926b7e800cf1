"""How ``pytest --nbmake`` runs the notebooks here, as ``python -m kdlib.runner run`` does:

- with kdlib's reference numerics in each notebook's kernel (:func:`kdlib.runner.set_numerics`), so that a
  smoke run repeats bit for bit and the solutions notebooks can set their variants beside it; the test
  process's own environment is restored after each notebook;
- keeping each executed notebook under ``<results>/executed/`` (smoke mode: ``results/smoke/executed/``), so
  that the course book can be built from the smoke run (``test_book_of_the_smoke_run.py``, collected after
  the notebooks). nbmake itself only offers to overwrite the committed notebooks with their outputs.
"""

import os
import time
from pathlib import Path

import nbformat
import pytest
from nbmake.nb_run import NotebookRun

from kdlib.config import results_dir
from kdlib.runner import set_numerics

_execute = NotebookRun.execute


def _execute_as_the_runner_does(self, *args, **kwargs):
    saved = dict(os.environ)
    set_numerics("reference")            # the kernel nbmake starts inherits these
    os.environ["KDLIB_HEADLESS"] = "1"   # one progress line per loop in the saved copy
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
