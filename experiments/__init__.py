"""Experiments kept with their results; not part of kdlib (see README.md here)."""

from __future__ import annotations

import json
from pathlib import Path


def write_record(record: dict, path: str | Path) -> Path:
    """Write an experiment's record as indented JSON to ``path`` (its folder made if needed) and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}")
    return path
