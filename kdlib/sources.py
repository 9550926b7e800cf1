"""Where speech data lives: a root folder, manifest rows and SV trial lists (no torch here).

Every source, the embedded corpus or a real dataset on disk, offers the same rows: ``path`` (relative to
``root``), ``speaker``, ``split`` (``train``/``test``/``validation``/``other``), ``kind`` (``sentence``,
``keyword``, ``unknown``, ``silence``), ``label`` (the KWS class or None) and ``language``. Datasets and
notebooks only see that interface, so swapping the synthetic corpus for VoxCeleb or Speech Commands is a
one-line change in a knobs cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
"""The ten command words of Google Speech Commands' 12-class task (Warden, arXiv 1804.03209)."""

KWS_LABELS = (*KEYWORDS, "_unknown_", "_silence_")
"""The 12 classes of the Speech Commands v1 task: 10 keywords, ``_unknown_`` and ``_silence_``."""


@dataclass
class Source:
    """A folder of audio with its manifest rows and named trial lists (``name -> file``)."""

    root: Path
    manifest: list[dict]
    trial_files: dict[str, Path] = field(default_factory=dict)
    name: str = "source"

    def select(self, split: str | None = None, kind: str | tuple[str, ...] | None = None) -> list[dict]:
        """Manifest rows of one split and kind(s)."""
        kinds = (kind,) if isinstance(kind, str) else kind
        return [r for r in self.manifest
                if (split is None or r["split"] == split) and (kinds is None or r["kind"] in kinds)]

    def by_speaker(self, split: str | None = None, kind: str | tuple[str, ...] | None = None) -> dict[str, list[dict]]:
        """:meth:`select`'s rows grouped by speaker, speakers and rows in manifest order."""
        groups: dict[str, list[dict]] = {}
        for row in self.select(split, kind):
            groups.setdefault(row["speaker"], []).append(row)
        return groups

    def path(self, rel: str) -> Path:
        return self.root / rel

    def trials(self, which: str = "trials") -> list[tuple[int, str, str]]:
        """The trial list ``which`` as ``(label, path1, path2)`` tuples."""
        if which not in self.trial_files:
            raise KeyError(f"{self.name} has no trial list {which!r}; it has {sorted(self.trial_files)}")
        return read_trials(self.trial_files[which])


def read_trials(path: str | Path) -> list[tuple[int, str, str]]:
    """Read a VoxCeleb1-style trial list (``label path1 path2`` per line, label 1 = same speaker)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: trial list not found")
    trials = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or parts[0] not in {"0", "1"}:
            raise ValueError(f"{path}, line {number}: expected 'label path1 path2' with label 0 or 1, got {line!r}")
        trials.append((int(parts[0]), parts[1], parts[2]))
    if not trials:
        raise ValueError(f"{path}: trial list is empty")
    return trials


def voxceleb1(root: str | Path, trial_list: str = "veri_test2.txt") -> Source:
    """VoxCeleb1 in its published layout: ``root/wav/idXXXXX/<video>/<n>.wav`` and a trial list.

    Trial paths are relative to ``wav/`` (``id10270/5r0dWxy17C8/00001.wav``). Speakers that appear in the
    trial list form the ``test`` split, all others ``train`` (VoxCeleb1-O: id10270 to id10309).
    """
    root = Path(root)
    wav = root / "wav"
    if not wav.is_dir():
        raise FileNotFoundError(f"{wav}: not found; expected VoxCeleb1 as {root}/wav/idXXXXX/<video>/<n>.wav")
    trial_path = root / trial_list
    trials = read_trials(trial_path) if trial_path.exists() else []
    test_speakers = {p.split("/")[0] for _, a, b in trials for p in (a, b)}
    rows = []
    for f in sorted(wav.glob("id*/*/*.wav")):
        rel = f.relative_to(wav).as_posix()
        speaker = rel.split("/")[0]
        rows.append({"path": rel, "speaker": speaker, "split": "test" if speaker in test_speakers else "train",
                     "kind": "sentence", "label": None, "language": "en"})
    if not rows:
        raise FileNotFoundError(f"{wav}: no idXXXXX/<video>/<n>.wav files found")
    return Source(wav, rows, {"trials": trial_path} if trials else {}, name=f"VoxCeleb1 at {root}")


def speech_commands(root: str | Path) -> Source:
    """Google Speech Commands v1 or v2: ``root/<word>/<speaker>_nohash_<n>.wav`` with
    ``validation_list.txt`` and ``testing_list.txt``; the 12-class task (10 keywords, ``_unknown_``, and
    ``_silence_`` cut from ``_background_noise_`` at load time)."""
    root = Path(root)
    lists = {}
    for split, fname in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        if not (root / fname).exists():
            raise FileNotFoundError(f"{root / fname}: not found; is {root} a Speech Commands folder?")
        lists.update({line.strip(): split for line in (root / fname).read_text().splitlines() if line.strip()})
    rows = []
    for f in sorted(root.glob("*/*.wav")):
        word = f.parent.name
        rel = f.relative_to(root).as_posix()
        if word == "_background_noise_":
            rows.append({"path": rel, "speaker": "noise", "split": "train", "kind": "silence", "label": "_silence_",
                         "language": "en"})
            continue
        is_kw = word in KEYWORDS
        rows.append({"path": rel, "speaker": f.name.split("_nohash_")[0], "split": lists.get(rel, "train"),
                     "kind": "keyword" if is_kw else "unknown", "label": word if is_kw else "_unknown_",
                     "text": word, "language": "en"})
    if not any(r["kind"] == "keyword" for r in rows):
        raise FileNotFoundError(f"{root}: no keyword folders (yes, no, ...) with .wav files found")
    return Source(root, rows, name=f"Speech Commands at {root}")
