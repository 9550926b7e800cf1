"""Paths, smoke mode, device, seeding and an environment report.

Paths resolve from the repository root (or ``KDLIB_DATA`` / ``KDLIB_RESULTS``), never from the current
directory: nbmake runs every notebook from its own folder.
"""

from __future__ import annotations

import os
import platform
import random
import warnings
from pathlib import Path


def _find_repo_root() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent, *here.parents):
        if (candidate / "pyproject.toml").exists() and (candidate / "kdlib").is_dir():
            return candidate
    return Path.cwd()


REPO_ROOT = _find_repo_root()
SMOKE = os.environ.get("KDLIB_SMOKE", "").strip().lower() in {"1", "true", "yes", "on"}
"""True when ``KDLIB_SMOKE=1``: notebooks pick their tiny smoke settings (CI)."""


def data_dir() -> Path:
    """Where corpora, caches and the teacher zoo live: ``$KDLIB_DATA`` or ``<repo>/data``."""
    return Path(os.environ.get("KDLIB_DATA") or REPO_ROOT / "data").resolve()


def results_root() -> Path:
    """``$KDLIB_RESULTS`` or ``<repo>/results``, whatever the mode."""
    return Path(os.environ.get("KDLIB_RESULTS") or REPO_ROOT / "results").resolve()


def results_dir() -> Path:
    """Where notebooks write their results: :func:`results_root`; smoke runs use its ``smoke/`` subfolder so
    that CI never overwrites the results of a full run."""
    return results_root() / "smoke" if SMOKE else results_root()


_DEVICE: str | None = None
_USED: set[str] = set()


def device() -> str:
    """The configured device: :func:`use_device`'s choice, else ``$KDLIB_DEVICE``, else ``"cuda"`` when a GPU
    is visible, else ``"cpu"``."""
    import torch

    return _DEVICE or os.environ.get("KDLIB_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


def use_device(name: str | None = "auto") -> str:
    """Set the device every kdlib call falls back to (a notebook's knobs cell does this once); ``"auto"`` or
    ``None`` restores the default rule of :func:`device`. Returns the device now in force."""
    global _DEVICE
    _DEVICE = None if name in (None, "auto") else str(name)
    return device()


def resolve_device(model=None, device_: str | None = None) -> str:
    """kdlib's one device rule for running a model: an explicit ``device_``; else the accelerator the model's
    parameters or buffers already sit on; else :func:`device`. The answer is remembered, so that results
    record the devices a run actually used (:func:`devices_used`)."""
    chosen = device_
    if chosen is None and model is not None and hasattr(model, "parameters"):
        import itertools

        for tensor in itertools.chain(model.parameters(), model.buffers()):
            if tensor.device.type != "cpu":
                chosen = str(tensor.device)
                break
    chosen = str(chosen or device())
    _USED.add(chosen)
    return chosen


def devices_used() -> list[str]:
    """The devices kdlib ran models on in this process (empty before the first)."""
    return sorted(_USED)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so that a run repeats."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


TIMES_FILE = "run_times.json"
"""The runner's record of each notebook's wall time and seconds per section, beside the results files."""


def load_times(folder: str | Path) -> dict | None:
    """The runner's ``run_times.json`` of a results folder (each notebook's wall time and seconds per section),
    or None when the folder has none. Refuses a file that is not one, naming it."""
    import json

    path = Path(folder) / TIMES_FILE
    if not path.is_file():
        return None
    try:
        times = json.loads(path.read_text())
        for entry in times["notebooks"].values():  # every time a number, or the file is not one of ours
            [float(entry["seconds"]), *(float(s["seconds"]) for s in entry["sections"])]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{path}: not a run-times file written by python -m kdlib.course.runner run ({err!r})"
        ) from None
    return times


def duration(seconds: float) -> str:
    """A wall time for people: ``"45 s"`` below 90 s, else minutes to one decimal (``"11.0 min"``)."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def expected_times(notebook: str) -> dict[str, str]:
    """What a run of ``notebook`` takes, from measurements, never typed by hand: its full-mode wall time in the
    committed reference run (``results/reference/run_times.json``, with the machine it ran on) and smoke mode's
    order of magnitude. No GPU time is given: no GPU run is committed."""
    times = {}
    folder = REPO_ROOT / "results" / "reference"
    entry = (load_times(folder) or {"notebooks": {}})["notebooks"].get(notebook)
    if entry:
        times["cpu, full"] = (
            f"{duration(entry['seconds'])} on {entry.get('hardware', 'the reference machine')} "
            f"(the reference run, {(folder / TIMES_FILE).relative_to(REPO_ROOT)})"
        )
    times["cpu, smoke"] = "1 to 2 min: tiny data, numbers that only prove the code runs"
    return times


def env_report(expected: str | dict[str, str] | None = None) -> dict:
    """Print and return what this run has: versions, device, threads, smoke mode, data folder.

    ``expected``: a notebook's name (its measured times are printed, see :func:`expected_times`), or a mapping
    from a setting ("cpu, full") to an expected wall time, so the reader knows up front. Warns when a full run is
    about to start on the CPU.
    """
    if isinstance(expected, str):
        expected = expected_times(expected)
    import numpy as np
    import torch

    dev = device()
    report = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": dev if dev == "cpu" else f"{dev} ({torch.cuda.get_device_name(0)})",
        "cpu_threads": torch.get_num_threads(),
        "mode": "smoke" if SMOKE else "full",
        "data_dir": str(data_dir()),
        "results_dir": str(results_dir()),
    }
    for key, value in report.items():
        print(f"{key:>12}: {value}")
    for setting, wall in (expected or {}).items():
        print(f"{'expected':>12}: {wall} ({setting})")
    if dev == "cpu" and not SMOKE:
        warnings.warn(
            "Full mode on the CPU: see the expected wall time above; set KDLIB_SMOKE=1 for a quick pass.", stacklevel=2
        )
    return report


def _first_processor() -> dict[str, str]:
    """``/proc/cpuinfo``'s fields for the first processor (``model name``, ``cpu family``, ``flags``, ...); empty
    where there is no such file (not Linux)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                if fields:
                    break  # the first processor's block has ended
                continue
            key, _, value = (part.strip() for part in line.partition(":"))
            fields.setdefault(key, value)
    except OSError:
        pass
    return fields


def hardware() -> str:
    """The CPU model and core count (and the GPU, if one is visible), for build and results records."""
    text = f"{_first_processor().get('model name', platform.machine())}, {os.cpu_count()} cores"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return text


CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
"""Instruction-set extensions that decide which kernels the libraries may pick (recorded, not required)."""


def cpu() -> dict:
    """The processor beyond its name: vendor family, model and stepping, and which of :data:`CPU_FEATURES` it
    has. Two machines sold under one name ("AMD EPYC") can be different generations with different kernels."""
    fields = _first_processor()
    info: dict = {key: fields[key] for key in ("cpu family", "model", "stepping") if key in fields}
    if "flags" in fields:
        flags = set(fields["flags"].split())
        info["features"] = [f for f in CPU_FEATURES if f in flags]
    return info


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on, for the results file."""
    from importlib import metadata

    names = ["torch", "torchaudio", "transformers", "captum", "numpy", "scikit-learn", "espeakng-loader"]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


REFERENCE_NUMERICS = {
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "OPENBLAS_CORETYPE": "Haswell",
}
"""Environment for bit-reproducible CPU runs across x86 machines (checked across two AMD generations; an Intel
Xeon still differs in trained models, see docs/reproducibility.md). Every numerical library picks its code path,
and so its rounding, by the processor's instruction set; capping each at AVX2 makes an AVX-512 machine compute
what an AVX2 one does: MKL (in its conditional-numerical-reproducibility mode: deterministic reductions, static
scheduling), oneDNN and PyTorch's own vectorised kernels (ATen) for torch; NumPy's SIMD dispatch (its AVX-512
targets disabled: its float64 ``exp`` and ``power`` round differently there) and OpenBLAS (NumPy's and SciPy's
BLAS, Haswell kernels, which its Zen kernels equal) for the rest. The thread count matters too (reductions are
split per thread), so reference runs also fix it (``python -m kdlib.course.runner run --numerics reference``:
2 threads).
Measured on 2-core machines: 40 training steps of a small ECAPA-TDNN give different weights with 1 or 2 threads,
with oneDNN capped at AVX, or with MKL in another mode, and identical weights run to run; with the torch
settings alone, an AVX-512 machine (AMD Zen 4) and an AVX2 one gave notebook 01 different results through
NumPy's ``exp`` in the reverberation of the distorted crops (8 samples of 76.8 million differed by one float32
step), and the same results once NumPy was capped as well."""


def numerics() -> dict:
    """What decides a run's floating-point results: threads, the kernel-library settings in force and the
    training precision (``KDLIB_PRECISION``, :func:`kdlib.train.fit`'s default; None: fp32)."""
    import sys

    torch = sys.modules.get("torch")  # the corpus builder never imports torch; don't make it
    return {
        "torch_threads": torch.get_num_threads() if torch else None,
        "cpu_capability": torch.backends.cpu.get_cpu_capability() if torch else None,
        **{key: os.environ.get(key) for key in (*REFERENCE_NUMERICS, "OMP_NUM_THREADS", "KDLIB_PRECISION")},
    }


def git_commit() -> str | None:
    """The repository's commit (``+dirty`` when tracked files changed), or None outside a git checkout."""
    import subprocess

    try:
        run = lambda *args: subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        head = run("rev-parse", "HEAD")
        if head.returncode:
            return None
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance() -> dict:
    """One record of where and with what a result, a teacher or a corpus was made: package versions, hardware (with the
    processor's generation and extensions), numerics, git commit and the time (UTC). Results files, the zoo manifest and
    corpus.json all carry it."""
    import datetime

    return {
        "versions": versions(),
        "hardware": hardware(),
        "cpu": cpu(),
        "numerics": numerics(),
        "git_commit": git_commit(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
