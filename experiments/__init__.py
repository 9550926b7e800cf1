"""Experiments kept with their results; not part of kdlib (see README.md here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_record(record: dict, path: str | Path) -> Path:
    """Write an experiment's record as indented JSON to ``path`` (its folder made if needed) and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}")
    return path


def speaker_split(rows: list[dict], share: float, seed: int) -> np.ndarray:
    """A boolean mask over ``rows``: True for the rows of a random ``share`` of their speakers (the held-out set)."""
    speakers = sorted({r["speaker"] for r in rows})
    n = max(1, round(share * len(speakers)))
    if n >= len(speakers):
        raise ValueError(f"holding out {n} of {len(speakers)} speakers leaves none to train on")
    held = set(np.random.default_rng(seed).choice(speakers, n, replace=False).tolist())
    return np.array([r["speaker"] in held for r in rows])
