"""The teacher zoo: small teachers that kdlib pretrains on the embedded corpus and ships in ``data/zoo/``.

Each teacher is a folder ``data/zoo/<name>/`` with ``config.json`` and ``model.safetensors`` (fp16),
listed in ``data/zoo/MANIFEST.json`` with the sha256 of every file, its recipe and config, the corpus it
was trained on, where and how long it was built, and its evaluation metrics. Build one with
``python -m kdlib.zoo build NAME``; load one with :func:`load` (checksums verified first).

SSL teachers are stored in transformers' format and load through the same ``from_pretrained`` path that a
hub id or a user's local checkpoint directory takes (:func:`kdlib.models.ssl.load_ssl`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from torch import nn

from kdlib.config import REPO_ROOT

ZOO_DIR = REPO_ROOT / "data" / "zoo"
RECIPES = ("ecapa", "resnet34", "hubert-tiny", "wav2vec2-tiny", "wavlm-tiny", "hubert-tiny-robust")


def zoo_dir() -> Path:
    """The shipped zoo (``data/zoo`` in the repository), or ``$KDLIB_ZOO`` when set."""
    return Path(os.environ.get("KDLIB_ZOO") or ZOO_DIR)


def manifest() -> dict:
    path = zoo_dir() / "MANIFEST.json"
    return json.loads(path.read_text()) if path.exists() else {}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verify(name: str) -> Path:
    """Check every file of teacher ``name`` against the manifest; raise naming the first corrupt file."""
    entry = manifest().get(name)
    folder = zoo_dir() / name
    if entry is None:
        raise FileNotFoundError(f"teacher {name!r} is not in {zoo_dir() / 'MANIFEST.json'}; build it with:\n"
                                f"    python -m kdlib.zoo build {name}")
    for fname, digest in entry["files"].items():
        path = folder / fname
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; rebuild with python -m kdlib.zoo build {name}")
        if sha256(path) != digest:
            raise ValueError(f"{path}: sha256 differs from the manifest (corrupt or modified file)")
    return folder


def load(name: str) -> nn.Module:
    """Load a zoo teacher in eval mode, after verifying its checksums."""
    folder = verify(name)
    config = json.loads((folder / "config.json").read_text())
    if "model_type" in config:  # transformers format
        from kdlib.models.ssl import load_ssl

        return load_ssl(folder).float()
    from kdlib.zoo.sv import load_sv

    return load_sv(folder)


def provenance(data, started: float, device: str) -> dict:
    """The ``corpus`` and ``build`` parts of a manifest entry: what a teacher was trained on, where, how long."""
    import time

    import torch

    from kdlib.config import hardware

    return {"corpus": {"name": data.info["name"], "version": data.info["version"],
                       "content_hash": data.info["content_hash"]},
            "build": {"wall_time_s": round(time.time() - started, 1), "device": device, "hardware": hardware(),
                      "torch_threads": torch.get_num_threads()}}


def checkpoint_path(name: str) -> Path:
    """Where a build keeps its resumable training checkpoint: the git-ignored cache, never the zoo."""
    from kdlib.config import data_dir

    return data_dir() / "cache" / "zoo" / f"{name}.train.pt"


def register(name: str, folder: Path, entry: dict) -> None:
    """Add or replace ``name`` in the manifest with the sha256 of every file in ``folder``."""
    entry = {**entry, "files": {p.name: sha256(p) for p in sorted(Path(folder).iterdir()) if p.is_file()}}
    data = manifest()
    data[name] = entry
    path = zoo_dir() / "MANIFEST.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
