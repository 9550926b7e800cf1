"""Where speech data lives: a root folder, manifest rows and SV trial lists (no torch here).

Every source, the embedded corpus or a real dataset on disk, offers the same rows: ``path`` (relative to
``root``), ``speaker``, ``split`` (``train``/``test``/``validation``/``other``), ``kind`` (``sentence``,
``keyword``, ``unknown``, ``silence``), ``label`` (the KWS class or None) and ``language``. Datasets and
notebooks only see that interface, so swapping the synthetic corpus for VoxCeleb or Speech Commands is a
one-line change in a knobs cell.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Iterator

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
"""The ten command words of Google Speech Commands' 12-class task (Warden, arXiv 1804.03209)."""

KWS_LABELS = (*KEYWORDS, "_unknown_", "_silence_")
"""The 12 classes of the Speech Commands v1 task: 10 keywords, ``_unknown_`` and ``_silence_``."""


class Source:
    """A folder of audio with its manifest rows and named trial lists (``name -> file``).

    ``manifest`` is a list of rows or a function that makes it: a large dataset is then scanned on first use
    of :attr:`manifest` (training), not when it is opened (evaluation reads only its trial lists)."""

    def __init__(self, root: str | Path, manifest: list[dict] | Callable[[], list[dict]],
                 trial_files: dict[str, Path] | None = None, name: str = "source"):
        self.root, self._manifest = Path(root), manifest
        self.trial_files = dict(trial_files or {})
        self.name = name
        self.info = {"name": name}  # what results record of the data; a built corpus adds its build record

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, trial lists: {sorted(self.trial_files)})"

    @property
    def manifest(self) -> list[dict]:
        """Every row of the source (scanned once, on first use, when the source was given a function)."""
        if callable(self._manifest):
            self._manifest = self._manifest()
        return self._manifest

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

    def _trial_file(self, which: str) -> Path:
        if which not in self.trial_files:
            raise KeyError(f"{self.name} has no trial list {which!r}; it has {sorted(self.trial_files)}")
        return self.trial_files[which]

    def trials(self, which: str = "trials") -> list[tuple[int, str, str]]:
        """The trial list ``which`` as ``(label, path1, path2)`` tuples."""
        return list(self.iter_trials(which))

    def iter_trials(self, which: str = "trials") -> Iterator[tuple[int, str, str]]:
        """The trial list ``which``, streamed line by line (VoxCeleb1-E and -H hold over half a million)."""
        return iter_trials(self._trial_file(which))


def make_trials(rows: list[dict], n_trials: int, seed: int) -> list[tuple[int, str, str]]:
    """Half target, half non-target pairs among ``rows`` (distinct pairs, deterministic in ``seed``)."""
    rng = random.Random(seed)
    by_speaker: dict[str, list[str]] = {}
    for row in rows:
        by_speaker.setdefault(row["speaker"], []).append(row["path"])
    speakers = sorted(by_speaker)
    if len(speakers) < 2:
        raise ValueError("trials need at least two speakers")
    target_pool = [(a, b) for s in speakers for i, a in enumerate(by_speaker[s]) for b in by_speaker[s][i + 1:]]
    n_target = n_trials // 2
    if n_target > len(target_pool):
        raise ValueError(f"asked for {n_target} target trials; only {len(target_pool)} pairs exist")
    trials = [(1, a, b) for a, b in rng.sample(target_pool, n_target)]
    seen = set()
    while len(seen) < n_trials - n_target:
        s1, s2 = rng.sample(speakers, 2)
        pair = (rng.choice(by_speaker[s1]), rng.choice(by_speaker[s2]))
        seen.add(pair)
    trials += [(0, a, b) for a, b in sorted(seen)]
    rng.shuffle(trials)
    return trials


def iter_trials(path: str | Path) -> Iterator[tuple[int, str, str]]:
    """Stream a VoxCeleb1-style trial list (``label path1 path2`` per line, label 1 = same speaker); a bad
    line raises with the file and line number when it is reached."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: trial list not found")
    any_trial = False
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 3 or parts[0] not in {"0", "1"}:
                raise ValueError(f"{path}, line {number}: expected 'label path1 path2' with label 0 or 1, "
                                 f"got {line.rstrip()!r}")
            any_trial = True
            yield int(parts[0]), parts[1], parts[2]
    if not any_trial:
        raise ValueError(f"{path}: trial list is empty")


def read_trials(path: str | Path) -> list[tuple[int, str, str]]:
    """Read a whole VoxCeleb1-style trial list (``label path1 path2`` per line, label 1 = same speaker)."""
    return list(iter_trials(path))


VOXCELEB1_TRIALS = {
    "O": "veri_test.txt", "O-cleaned": "veri_test2.txt",
    "E": "list_test_all.txt", "E-cleaned": "list_test_all2.txt",
    "H": "list_test_hard.txt", "H-cleaned": "list_test_hard2.txt",
}
"""VoxCeleb1's official trial lists by protocol (Nagrani et al. 2017; Chung et al. 2018): VoxCeleb1-O (40 test
speakers, 37,720 trials; cleaned 37,611), -E (all 1,251 speakers, 581,480; cleaned 579,818) and -H (same
nationality and gender, 552,536; cleaned 550,894). The cleaned lists drop trials with wrong identities."""


VOXCELEB1_META = "vox1_meta.csv"
"""VoxCeleb1's speaker metadata, tab-separated: ``VoxCeleb1 ID, VGGFace1 ID, Gender (m/f), Nationality, Set``."""


def voxceleb1_meta(path: str | Path) -> dict[str, dict[str, str]]:
    """``{speaker: {"gender": "male" or "female", "nationality": ...}}`` from VoxCeleb1's ``vox1_meta.csv``
    (one header line, then ``id10001<TAB>A.J._Buckley<TAB>m<TAB>Ireland<TAB>dev``); a malformed line raises with
    the file and line number."""
    path = Path(path)
    meta = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = [f.strip() for f in line.split("\t")]
        if not line.strip() or (number == 1 and fields[0].lower().startswith("voxceleb1 id")):
            continue
        if len(fields) < 4 or not fields[0].startswith("id") or fields[2].lower() not in {"m", "f"}:
            raise ValueError(f"{path}, line {number}: expected '<idXXXXX> <name> <m or f> <nationality> <set>' "
                             f"separated by tabs, got {line!r}")
        meta[fields[0]] = {"gender": "male" if fields[2].lower() == "m" else "female", "nationality": fields[3]}
    return meta


def voxceleb1(root: str | Path, trial_list: str = "veri_test2.txt") -> Source:
    """VoxCeleb1 in its published layout: ``root/wav/idXXXXX/<video>/<n>.wav`` and its trial lists.

    Opening reads no audio and walks no folders: the trial lists are streamed when used, and the manifest
    (for training) is scanned on first use. ``trial_list`` (default: VoxCeleb1-O cleaned) becomes the source's
    ``"trials"``; every official list in ``root`` is also offered under its protocol name
    (:data:`VOXCELEB1_TRIALS`: ``"O"``, ``"O-cleaned"``, ``"E"``, ...). Trial paths are relative to ``wav/``
    (``id10270/5r0dWxy17C8/00001.wav``). Speakers of ``trial_list`` form the ``test`` split, all others
    ``train`` (VoxCeleb1-O: id10270 to id10309; with -E or -H every speaker is a test speaker, so train on
    VoxCeleb2). With :data:`VOXCELEB1_META` in ``root``, each row also names its speaker's ``gender`` and
    ``nationality`` (what notebook 05 probes).
    """
    root = Path(root)
    wav = root / "wav"
    if not wav.is_dir():
        raise FileNotFoundError(f"{wav}: not found; expected VoxCeleb1 as {root}/wav/idXXXXX/<video>/<n>.wav")
    if not any(p.name.startswith("id") and p.is_dir() for p in wav.iterdir()):
        raise FileNotFoundError(f"{wav}: no idXXXXX speaker folders found")
    trial_files = {name: root / fname for name, fname in VOXCELEB1_TRIALS.items() if (root / fname).exists()}
    if (root / trial_list).exists():
        trial_files["trials"] = root / trial_list
    elif trial_list != "veri_test2.txt":  # asked for by name; without the default list the source has none
        raise FileNotFoundError(f"{root / trial_list}: trial list not found (the official lists are "
                                f"{', '.join(VOXCELEB1_TRIALS.values())})")

    def scan() -> list[dict]:
        test_speakers = ({p.split("/")[0] for _, a, b in iter_trials(trial_files["trials"]) for p in (a, b)}
                         if "trials" in trial_files else set())
        meta = voxceleb1_meta(root / VOXCELEB1_META) if (root / VOXCELEB1_META).exists() else {}
        rows = []
        for f in sorted(wav.glob("id*/*/*.wav")):
            rel = f.relative_to(wav).as_posix()
            speaker = rel.split("/")[0]
            rows.append({"path": rel, "speaker": speaker, "split": "test" if speaker in test_speakers else "train",
                         "kind": "sentence", "label": None, "language": "en", **meta.get(speaker, {})})
        if not rows:
            raise FileNotFoundError(f"{wav}: no idXXXXX/<video>/<n>.wav files found")
        return rows

    return Source(wav, scan, trial_files, name=f"VoxCeleb1 at {root}")


def _listed_clips(root: Path, list_file: Path) -> Iterator[str]:
    """The clips a Speech Commands split list names (``<word>/<speaker>_nohash_<n>.wav`` per line), each
    checked to exist; a malformed line or a missing clip raises with the list file and line number."""
    with list_file.open() as lines:
        for number, line in enumerate(lines, start=1):
            rel = line.strip()
            if not rel:
                continue
            parts = rel.split("/")
            if len(parts) != 2 or not parts[1].endswith(".wav") or "_nohash_" not in parts[1]:
                raise ValueError(f"{list_file}, line {number}: expected '<word>/<speaker>_nohash_<n>.wav', "
                                 f"got {rel!r}")
            if not (root / rel).is_file():
                raise FileNotFoundError(f"{list_file}, line {number}: {rel} is listed but {root / rel} does not "
                                        "exist (an incomplete download?)")
            yield rel


def speech_commands(root: str | Path) -> Source:
    """Google Speech Commands v1 or v2: ``root/<word>/<speaker>_nohash_<n>.wav`` with
    ``validation_list.txt`` and ``testing_list.txt``, which put each listed clip in the ``validation`` or
    ``test`` split (every other clip is ``train``, as in Warden's split); the 12-class task (10 keywords,
    ``_unknown_``, and ``_silence_`` cut from ``_background_noise_`` at load time)."""
    root = Path(root)
    lists = {}
    for split, fname in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        if not (root / fname).exists():
            raise FileNotFoundError(f"{root / fname}: not found; is {root} a Speech Commands folder?")
        lists.update({rel: split for rel in _listed_clips(root, root / fname)})
    rows = []
    for f in sorted(root.glob("*/*.wav")):
        word = f.parent.name
        rel = f.relative_to(root).as_posix()
        if word == "_background_noise_":
            rows.append({"path": rel, "speaker": "noise", "split": "train", "kind": "silence", "label": "_silence_",
                         "text": "", "language": "en"})  # no words, as the embedded corpus's silence clips
            continue
        is_kw = word in KEYWORDS
        rows.append({"path": rel, "speaker": f.name.split("_nohash_")[0], "split": lists.get(rel, "train"),
                     "kind": "keyword" if is_kw else "unknown", "label": word if is_kw else "_unknown_",
                     "text": word, "language": "en"})
    if not any(r["kind"] == "keyword" for r in rows):
        raise FileNotFoundError(f"{root}: no keyword folders (yes, no, ...) with .wav files found")
    return Source(root, rows, name=f"Speech Commands at {root}")


class CNCelebSource(Source):
    """CN-Celeb's evaluation part (Fan et al. 2020, arXiv 1911.01799; Li et al. 2022, arXiv 2012.12468):
    ``eval/enroll/<speaker>-enroll.<ext>``, ``eval/test/<speaker>-<genre>-<session>-<n>.<ext>`` and the lists
    in ``eval/lists``. Its ``trials.lst`` pairs an enrolment id with a test clip (``id00800-enroll
    test/id00800-singing-01-001.wav 1``); this source streams it as ``(label, eval/enroll/...,
    eval/test/...)``, each path mapped to the audio on disk (the FLAC release keeps ``.wav`` in its lists)."""

    def __init__(self, root: Path, split: str, trial_name: str, language: str):
        self.eval_dir, self.lists = root / "eval", root / "eval" / "lists"
        self.split, self.language = split, language
        self._enroll: dict[str, str] | None = None
        self._suffix: str | None = None
        super().__init__(root, self._scan, {trial_name: self.lists / "trials.lst"}, name=f"CN-Celeb at {root}")

    def _on_disk(self, rel: str) -> str:
        """``rel`` (relative to ``eval/``) with the suffix the audio files have."""
        if self._suffix is None:
            found = next((f for f in (self.eval_dir / "test").glob("*.*") if f.suffix in (".flac", ".wav")), None)
            if found is None:
                raise FileNotFoundError(f"{self.eval_dir / 'test'}: no .flac or .wav files found")
            self._suffix = found.suffix
        return f"eval/{Path(rel).with_suffix(self._suffix).as_posix()}"

    def _enrolment(self) -> dict[str, str]:
        """Enrolment id -> its audio's path, from ``enroll.lst`` (``id00800-enroll enroll/id00800-enroll.wav``)
        or, without one, ``enroll/<id>``."""
        if self._enroll is None:
            listed = self.lists / "enroll.lst"
            self._enroll = {}
            if listed.exists():
                for number, line in enumerate(listed.read_text().splitlines(), start=1):
                    parts = line.split()
                    if parts and len(parts) != 2:
                        raise ValueError(f"{listed}, line {number}: expected '<enroll id> <path>', got {line!r}")
                    if parts:
                        self._enroll[parts[0]] = self._on_disk(parts[1])
        return self._enroll

    def iter_trials(self, which: str = "trials") -> Iterator[tuple[int, str, str]]:
        path = self._trial_file(which)
        if not path.exists():
            raise FileNotFoundError(f"{path}: trial list not found")
        enroll = self._enrolment()
        with path.open() as lines:
            for number, line in enumerate(lines, start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 3 or parts[2] not in {"0", "1"}:
                    raise ValueError(f"{path}, line {number}: expected '<enroll id> <test path> <0 or 1>', "
                                     f"got {line.rstrip()!r}")
                first = enroll.get(parts[0]) or self._on_disk(f"enroll/{parts[0]}")
                yield int(parts[2]), first, self._on_disk(parts[1])

    def _listed_tests(self) -> list[str] | None:
        """The test clips ``test.lst`` names (``test/id00800-singing-01-001.wav`` per line), or None without one."""
        listed = self.lists / "test.lst"
        if not listed.exists():
            return None
        paths = []
        for number, line in enumerate(listed.read_text().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 1 or not parts[0].startswith("test/"):
                raise ValueError(f"{listed}, line {number}: expected 'test/<clip>', got {line!r}")
            paths.append(self._on_disk(parts[0]))
        return paths

    def _scan(self) -> list[dict]:
        """One row per enrolment and test clip, each checked to exist; the speaker is the file name's first field
        (``id00800``). The clips come from ``enroll.lst`` and ``test.lst`` where both exist (CN-Celeb1's 196
        enrolments and 17,777 test clips), otherwise from the trial list, streamed (196 × 17,777 = 3,484,292 lines)."""
        which = next(iter(self.trial_files))
        tests = self._listed_tests() if (self.lists / "enroll.lst").exists() else None
        if tests is not None:
            paths, named_by = sorted({*self._enrolment().values(), *tests}), self.lists / "test.lst"
        else:
            paths = sorted({p for _, a, b in self.iter_trials(which) for p in (a, b)})
            named_by = self.trial_files[which]
        missing = [p for p in paths if not (self.root / p).is_file()]
        if missing:
            raise FileNotFoundError(f"{named_by} names {len(missing)} clips that are not under "
                                    f"{self.root}, e.g. {missing[0]} (an incomplete download?)")
        return [{"path": p, "speaker": Path(p).name.split("-")[0], "split": self.split, "kind": "sentence",
                 "label": None, "language": self.language} for p in paths]


def cnceleb(root: str | Path, split: str = "test", trial_name: str = "trials",
            language: str = "zh") -> CNCelebSource:
    """CN-Celeb1's evaluation set (``root/eval/{enroll,test,lists}``) as a source: its rows (split ``split``, by default
    ``test``) and its official trial list under ``trial_name``. Joined to VoxCeleb1 for notebook 05's language mismatch,
    it is ``split="other"``, ``trial_name="trials_other"`` (what ``open_folder`` does with
    ``/data/voxceleb1+/data/CN-Celeb``). Opening reads nothing; the trial list is streamed when used and the rows are
    made (and every clip checked to exist) on first use. The development speakers (``data/``, ``dev/dev.lst``) are not
    read: kdlib trains on VoxCeleb."""
    root = Path(root)
    if not (root / "eval" / "lists" / "trials.lst").exists():
        raise FileNotFoundError(f"{root / 'eval' / 'lists' / 'trials.lst'}: not found; expected CN-Celeb as "
                                f"{root}/eval/{{enroll,test,lists}}")
    return CNCelebSource(root, split, trial_name, language)


class JoinedSource(Source):
    """Sources read as one, each row's path prefixed by its part's name (``sv/id10270/...``, ``kws/yes/...``): what
    notebooks 03 to 05 need at full scale, speakers and SV trials from one dataset and keywords or another language's
    speakers from others. Trial lists of every part are offered with prefixed paths (``trials`` and the protocol names
    from the SV part, ``trials_other`` from CN-Celeb); ``trials_keywords`` (SV trials on the keyword part's test
    keywords, half same-speaker) is drawn on first use, deterministically in ``seed``."""

    def __init__(self, parts: dict[str, Source], keyword_trials: int = 10_000, seed: int = 0):
        if len(parts) < 2 or any("/" in name or not name for name in parts):
            raise ValueError(f"a joined source needs two or more parts named without '/', got {list(parts)}")
        self.parts, self.n_keyword_trials, self.seed = dict(parts), keyword_trials, seed
        self._keyword_trials: list[tuple[int, str, str]] | None = None
        self._origin: dict[str, str] = {}
        for name, part in self.parts.items():
            for which in part.trial_files:
                if which in self._origin:
                    raise ValueError(f"trial list {which!r} is offered by both {self._origin[which]!r} and "
                                     f"{name!r}; join sources whose trial lists have distinct names")
                self._origin[which] = name
        trial_files = {which: self.parts[name].trial_files[which] for which, name in self._origin.items()}
        super().__init__(Path("/"), self._joined_rows, trial_files,
                         name=" + ".join(f"{name}: {part.name}" for name, part in self.parts.items()))
        self.info = {"name": self.name, "parts": {name: part.info for name, part in self.parts.items()}}

    def _joined_rows(self) -> list[dict]:
        return [{**row, "path": f"{name}/{row['path']}"} for name, part in self.parts.items()
                for row in part.manifest]

    def path(self, rel: str) -> Path:
        name, _, inner = rel.partition("/")
        if name not in self.parts:
            raise KeyError(f"{rel}: not a path of {self.name} (it starts with none of {sorted(self.parts)})")
        return self.parts[name].path(inner)

    def iter_trials(self, which: str = "trials") -> Iterator[tuple[int, str, str]]:
        if which == "trials_keywords" and which not in self._origin:
            return iter(self._keywords())
        name = self._origin.get(which)
        if name is None:
            raise KeyError(f"{self.name} has no trial list {which!r}; it has "
                           f"{sorted([*self._origin, 'trials_keywords'])}")
        return ((label, f"{name}/{a}", f"{name}/{b}") for label, a, b in self.parts[name].iter_trials(which))

    def _keywords(self) -> list[tuple[int, str, str]]:
        if self._keyword_trials is None:
            rows = self.select("test", "keyword")
            if len({r["speaker"] for r in rows}) < 2:
                raise ValueError(f"{self.name}: keyword trials need test keywords of two or more speakers; "
                                 f"found {len(rows)} clips")
            same = sum(n * (n - 1) // 2 for n in map(len, self.by_speaker("test", "keyword").values()))
            self._keyword_trials = make_trials(rows, min(self.n_keyword_trials, 2 * same), self.seed)
        return self._keyword_trials


def joined(sv: Source, kws: Source, keyword_trials: int = 10_000, seed: int = 0) -> JoinedSource:
    """VoxCeleb (speakers, SV trials) and Speech Commands (keywords) as one source for the multi-task
    notebooks: rows under ``sv/`` and ``kws/``, the SV part's trial lists, and ``trials_keywords`` drawn from
    the keyword part's test split (Speech Commands names each clip's speaker: ``<speaker>_nohash_<n>.wav``)."""
    return JoinedSource({"sv": sv, "kws": kws}, keyword_trials=keyword_trials, seed=seed)


def open_folder(root: str | Path) -> Source:
    """A real dataset by its folder, its layout telling which: VoxCeleb1 (``wav/idXXXXX/...``) or Speech Commands
    (``validation_list.txt``) or CN-Celeb (``eval/lists/trials.lst``); folders joined by ``+`` (VoxCeleb1 with Speech
    Commands and/or CN-Celeb, in any order) open as one :class:`JoinedSource`. What a notebook's ``CORPUS`` knob does
    with a path, so that ``python -m kdlib.course.runner run -p CORPUS /data/voxceleb1`` runs a notebook on it."""
    if "+" in str(root) and not Path(root).expanduser().exists():  # "/data/voxceleb1+/data/speech_commands"
        return _join_folders(str(root))
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (a dataset folder, or a built corpus's name)")
    if (root / "wav").is_dir():
        return voxceleb1(root)
    if (root / "eval" / "lists" / "trials.lst").exists():
        return cnceleb(root)
    if (root / "validation_list.txt").exists() or (root / "testing_list.txt").exists():
        return speech_commands(root)
    raise ValueError(f"{root}: not a dataset layout kdlib reads; expected VoxCeleb1 ({root}/wav/idXXXXX/<video>/"
                     f"<n>.wav with veri_test2.txt), Speech Commands ({root}/<word>/*.wav with "
                     f"validation_list.txt and testing_list.txt) or CN-Celeb ({root}/eval/lists/trials.lst)")


def _join_folders(spec: str) -> JoinedSource:
    """``A+B[+C]``: a VoxCeleb1 folder (part ``sv``) joined with a Speech Commands folder (``kws``) and/or a
    CN-Celeb folder (``other``: its speakers in the ``other`` split, its trials as ``trials_other``)."""
    parts: dict[str, Source] = {}
    for folder in spec.split("+"):
        path = Path(folder).expanduser()
        if (path / "eval" / "lists" / "trials.lst").exists():
            name, source = "other", cnceleb(path, split="other", trial_name="trials_other")
        else:
            source = open_folder(path)
            name = "sv" if "trials" in source.trial_files else "kws"
        if name in parts:
            raise ValueError(f"{spec}: two {name!r} folders ({parts[name].name}; {source.name})")
        parts[name] = source
    if "sv" not in parts or len(parts) < 2:
        raise ValueError(f"{spec}: joins a folder with speakers and a trial list (VoxCeleb1) with Speech Commands "
                         "and/or CN-Celeb, as '/data/voxceleb1+/data/speech_commands' or "
                         "'/data/voxceleb1+/data/CN-Celeb'")
    return JoinedSource({name: parts[name] for name in ("sv", "kws", "other") if name in parts})
