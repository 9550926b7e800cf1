"""The headless runner: a failure names the notebook, the cell and what to do; no cell time limit by default."""

import nbformat
import pytest

from kdlib import runner


def _notebook(tmp_path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t")]
                                  + [nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "99_t.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_failure_names_the_notebook_and_the_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_RESULTS", str(tmp_path / "results"))
    path = _notebook(tmp_path, "x = 1", "1 / 0\nprint('never')")
    [(name, _, status)] = runner.run([path])
    assert name == "99_t.ipynb"
    assert "FAILED" in status and "cell 2 (code cell 2: '1 / 0')" in status and "ZeroDivisionError" in status
    assert f"python -m kdlib.runner run --notebooks {path}" in status
    assert list((tmp_path / "results").rglob("99_t.ipynb"))  # the executed copy up to the failure is kept


def test_cell_timeout_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_RESULTS", str(tmp_path / "results"))
    path = _notebook(tmp_path, "import time\ntime.sleep(3)")
    assert runner.run([path])[0][2] == "ok"
    status = runner.run([path], cell_timeout=1)[0][2]
    assert "CellTimeoutError" in status and "--cell-timeout" in status


def test_reference_numerics_do_not_override_the_user(monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    in_force = runner.set_numerics("reference")
    assert in_force == {"MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                        "OMP_NUM_THREADS": "2"}
    with pytest.raises(ValueError, match="numerics"):
        runner.set_numerics("fast")
