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


def results_dir() -> Path:
    """Where notebooks write their results: ``$KDLIB_RESULTS`` or ``<repo>/results``; smoke runs use its
    ``smoke/`` subfolder so that CI never overwrites the results of a full run."""
    root = Path(os.environ.get("KDLIB_RESULTS") or REPO_ROOT / "results").resolve()
    return root / "smoke" if SMOKE else root


def device() -> "str":
    """``$KDLIB_DEVICE`` if set, else ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    return os.environ.get("KDLIB_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so that a run repeats."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def env_report(expected: dict[str, str] | None = None) -> dict:
    """Print and return what this run has: versions, device, threads, smoke mode, data folder.

    ``expected`` maps a setting ("cpu, full") to an expected wall time so the reader knows up front.
    Warns when a full run is about to start on the CPU.
    """
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
        warnings.warn("Full mode on the CPU: see the expected wall time above; set KDLIB_SMOKE=1 for a quick pass.",
                      stacklevel=2)
    return report


def hardware() -> str:
    """The CPU model and core count (and the GPU, if one is visible), for build and results records."""
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return text


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
