import io
import os
import tarfile

import pytest

WHERE_AND_HOW = (
    "KDLIB_RESULTS",
    "KDLIB_DATA",
    "KDLIB_ZOO",
    "KDLIB_SMOKE",
    "KDLIB_PARAMETERS",
    "KDLIB_HEADLESS",
    "KDLIB_PRECISION",
    "OMP_NUM_THREADS",
    "MKL_CBWR",
    "ONEDNN_MAX_CPU_ISA",
    "ATEN_CPU_CAPABILITY",
    "NPY_DISABLE_CPU_FEATURES",
    "OPENBLAS_CORETYPE",
)
"""The variables that decide where kdlib writes, which mode the notebooks run in and how they compute (the
numerics: a ``KDLIB_PRECISION=bf16`` left behind by one test makes every later ``train.fit`` train in bfloat16)."""


@pytest.fixture(autouse=True)
def environment_is_left_as_found():
    """Fail a test that leaves any of :data:`WHERE_AND_HOW` changed: every later test (and the notebooks that
    ``make test`` runs after them) would write elsewhere. ``runner.main(["run", "--results", ...])`` sets
    ``KDLIB_RESULTS`` for its process, so a test that calls it must restore it (``monkeypatch``)."""
    before = {key: os.environ.get(key) for key in WHERE_AND_HOW}
    yield
    after = {key: os.environ.get(key) for key in WHERE_AND_HOW}
    changed = {key: (before[key], after[key]) for key in WHERE_AND_HOW if before[key] != after[key]}
    assert not changed, f"the test left the environment changed (before, after): {changed}"


@pytest.fixture
def unset(monkeypatch):
    """``unset(*names)``: remove environment variables for this test only. ``monkeypatch.delenv`` alone records
    nothing to restore when a variable was absent, so a value that the code under test sets afterwards would
    outlive the test; setting each first makes monkeypatch remove it again at the end."""

    def _unset(*names):
        for name in names:
            monkeypatch.setenv(name, "")
            monkeypatch.delenv(name)

    return _unset


@pytest.fixture(scope="session")
def smoke_corpus():
    """The CI corpus (built once, about 5 s, idempotent)."""
    from kdlib.data import corpus

    corpus.build("smoke", progress=False)
    return corpus.load("smoke")


def _make_deb(path, files: dict):
    """A minimal Debian package: an ar archive with debian-binary and data.tar.gz holding ``files``."""
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    out = b"!<arch>\n"
    for name, blob in (("debian-binary", b"2.0\n"), ("data.tar.gz", tar_buf.getvalue())):
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(blob):<10}`\n".encode() + blob
        out += b"\n" if len(blob) % 2 else b""
    path.write_bytes(out)


@pytest.fixture
def make_deb():
    """Write a minimal Debian package (``make_deb(path, {inner path: bytes})``)."""
    return _make_deb
