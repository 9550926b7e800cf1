"""The embedded speech corpus: synthetic multi-speaker speech from eSpeak NG, deterministic and versioned.

A pseudo-speaker is an eSpeak accent and voice variant plus a base pitch, pitch range, speaking rate and a
"vocal tract" warp (audio rendered at 22050 Hz is resampled as if it had been recorded at 22050·alpha Hz).
Each utterance jitters those a little and passes through a random recording session (``kdlib.data.augment``).

Layout of a built corpus ``data/corpus/<name>-v<VERSION>/``::

    corpus.json        config, version, counts and the content hash (written last: its presence means complete)
    manifest.jsonl     one JSON object per clip: path, speaker, split, kind, text, label, duration, language, ...
    speakers.json      the voice parameters of every speaker
    trials.txt         SV trials among test speakers' sentences, VoxCeleb1 format ``label path1 path2``
    trials_keywords.txt  SV trials on 1-second keyword clips of test speakers
    trials_other.txt   SV trials among the other-language speakers (language mismatch)
    audio/<speaker>/<clip>.flac

Build with ``python -m kdlib.data.corpus build`` (``--config smoke`` for the tiny CI corpus). Determinism: each
speaker is synthesised in a fresh process with seeded eSpeak and NumPy generators, so the same config
gives bit-identical audio and manifest on every run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import multiprocessing as mp
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdlib.data import augment
from kdlib.data.audio import SAMPLE_RATE, resample, trim_silence, write_audio
from kdlib.runtime import data_dir, provenance
from kdlib.data.sentences import UNKNOWN_WORDS, sentence
from kdlib.data.sources import KEYWORDS, Source, make_trials, open_folder

VERSION = 1
EN_ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
              "en-us-nyc")
OTHER_ACCENTS = {"es": ("es", "es-419")}
_EXCLUDED_VARIANTS = ("whisper", "robo", "Robot", "Demonic", "croak", "Tweaky", "Storm", "UniRobot")


@dataclass(frozen=True)
class CorpusConfig:
    """What to synthesise. Two presets: ``default`` (the notebooks' corpus) and ``smoke`` (CI)."""

    name: str = "default"
    n_train_speakers: int = 200
    n_test_speakers: int = 40
    n_other_speakers: int = 20
    other_language: str = "es"
    sentences_per_speaker: int = 24
    keyword_repeats: int = 4
    unknown_per_speaker: int = 8
    silence_per_speaker: int = 2
    n_trials: int = 20_000
    n_keyword_trials: int = 10_000
    n_other_trials: int = 4_000
    augment: bool = True
    seed: int = 0

    def __post_init__(self):
        pairs = self.sentences_per_speaker * (self.sentences_per_speaker - 1) // 2
        for n_trials, speakers, what in ((self.n_trials, self.n_test_speakers, "n_trials"),
                                         (self.n_other_trials, self.n_other_speakers, "n_other_trials")):
            if n_trials // 2 > speakers * pairs:
                raise ValueError(f"{what}={n_trials} needs {n_trials // 2} target pairs but {speakers} speakers "
                                 f"with {self.sentences_per_speaker} sentences have only {speakers * pairs}")


PRESETS = {
    "default": CorpusConfig(),
    "smoke": CorpusConfig(name="smoke", n_train_speakers=12, n_test_speakers=6, n_other_speakers=4,
                          sentences_per_speaker=8, keyword_repeats=2, unknown_per_speaker=3, silence_per_speaker=1,
                          n_trials=300, n_keyword_trials=300, n_other_trials=200),
}


def corpus_root(name: str = "default") -> Path:
    """The folder of the built corpus ``name``."""
    return data_dir() / "corpus" / f"{name}-v{VERSION}"


# ----------------------------------------------------------------------------------------------- speakers

def _variants() -> dict[str, str]:
    """Usable eSpeak voice variants and their gender (robotic and whisper voices left out)."""
    import espeakng_loader

    out = {}
    for path in sorted((Path(espeakng_loader.get_data_path()) / "voices" / "!v").iterdir()):
        if any(bad in path.name for bad in _EXCLUDED_VARIANTS):
            continue
        gender = "unknown"
        for line in path.read_text(errors="ignore").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "gender":
                gender = parts[1]
        out[path.name] = gender
    return out


def make_speakers(cfg: CorpusConfig) -> list[dict]:
    """Draw every speaker's voice parameters from the config's seed (train, test, other-language)."""
    variants = _variants()
    names = sorted(variants)
    speakers = []
    plan = [("train", cfg.n_train_speakers, "en"), ("test", cfg.n_test_speakers, "en"),
            ("other", cfg.n_other_speakers, cfg.other_language)]
    for split, count, language in plan:
        accents = EN_ACCENTS if language == "en" else OTHER_ACCENTS[language]
        for i in range(count):
            rng = random.Random(f"{cfg.seed}/{split}/{i}")
            variant = rng.choice(names)
            prefix = "id" if language == "en" else language
            speakers.append({
                "speaker": f"{prefix}{len(speakers):04d}", "split": split, "language": language,
                "accent": rng.choice(accents), "variant": variant, "gender": variants[variant],
                "pitch": rng.randint(20, 80), "range": rng.randint(20, 90), "rate": rng.randint(140, 190),
                "alpha": round(rng.uniform(0.9, 1.1), 4), "index": len(speakers),
            })
    return speakers


def _utterance_plan(cfg: CorpusConfig, spk: dict) -> list[dict]:
    rng = random.Random(f"{cfg.seed}/text/{spk['speaker']}")
    plan = [{"kind": "sentence", "text": sentence(rng, spk["language"]), "label": None}
            for _ in range(cfg.sentences_per_speaker)]
    if spk["split"] != "other":
        plan += [{"kind": "keyword", "text": kw, "label": kw} for kw in KEYWORDS for _ in range(cfg.keyword_repeats)]
        plan += [{"kind": "unknown", "text": rng.choice(UNKNOWN_WORDS), "label": "_unknown_"}
                 for _ in range(cfg.unknown_per_speaker)]
        plan += [{"kind": "silence", "text": "", "label": "_silence_"} for _ in range(cfg.silence_per_speaker)]
    return plan


# ----------------------------------------------------------------------------------------------- synthesis

def _fit_one_second(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Place a word at a random offset in a 1-second clip (Speech Commands' clip length)."""
    x = x[:SAMPLE_RATE]
    out = np.zeros(SAMPLE_RATE, np.float32)
    start = int(rng.integers(0, SAMPLE_RATE - len(x) + 1))
    out[start:start + len(x)] = x
    return out


def _speak(engine, spk: dict, text: str, rng: np.random.Generator, seed: int) -> np.ndarray:
    rate = int(spk["rate"] * rng.uniform(0.9, 1.1))
    pitch = int(np.clip(spk["pitch"] + rng.integers(-8, 9), 0, 100))
    prange = int(np.clip(spk["range"] + rng.integers(-10, 11), 0, 100))
    alpha = spk["alpha"] * rng.uniform(0.985, 1.015)
    raw = engine.synth(text, f"{spk['accent']}+{spk['variant']}", rate, pitch, prange, seed)
    wave = raw.astype(np.float32) / 32768.0
    # Vocal-tract warp: pretend the samples were taken at sample_rate*alpha, then bring them to 16 kHz.
    return resample(trim_silence(wave), engine.sample_rate * alpha, SAMPLE_RATE)


def _build_speaker(job: tuple[dict, dict, str]) -> list[dict]:
    """Synthesise all clips of one speaker (runs in a fresh process) and return their manifest rows."""
    from kdlib.data.espeak import Espeak

    cfg_dict, spk, out_dir = job
    cfg = CorpusConfig(**cfg_dict)
    engine = Espeak()
    rows = []
    speaker_dir = Path(out_dir) / "audio" / spk["speaker"]
    speaker_dir.mkdir(parents=True, exist_ok=True)
    for j, utt in enumerate(_utterance_plan(cfg, spk)):
        rng = np.random.default_rng([cfg.seed, spk["index"], j])
        if utt["kind"] == "silence":
            wave = augment.noise(SAMPLE_RATE, rng, "white" if rng.random() < 0.5 else "brown")
            wave = (wave * 10 ** rng.uniform(-3.5, -1.5)).astype(np.float32)
        else:
            wave = _speak(engine, spk, utt["text"], rng, seed=int(rng.integers(1, 2**31 - 1)))
            if utt["kind"] != "sentence":
                wave = _fit_one_second(wave, rng)
            if cfg.augment:
                wave = augment.session(wave, rng, SAMPLE_RATE)
            else:
                wave = (wave / (np.max(np.abs(wave)) + 1e-9) * 0.5).astype(np.float32)
        stem = utt["kind"] if utt["kind"] != "keyword" else f"keyword_{utt['label']}"
        rel = f"audio/{spk['speaker']}/{stem}_{j:03d}.flac"
        write_audio(Path(out_dir) / rel, wave)
        rows.append({
            "path": rel, "speaker": spk["speaker"], "split": spk["split"], "kind": utt["kind"], "text": utt["text"],
            "label": utt["label"], "duration": round(len(wave) / SAMPLE_RATE, 4), "language": spk["language"],
            "accent": spk["accent"], "gender": spk["gender"],
            "sha256": hashlib.sha256((Path(out_dir) / rel).read_bytes()).hexdigest(),
        })
    return rows


# ----------------------------------------------------------------------------------------------- trials

def _write_trials(path: Path, trials: list[tuple[int, str, str]]) -> None:
    path.write_text("".join(f"{label} {a} {b}\n" for label, a, b in trials))


# ----------------------------------------------------------------------------------------------- build

def _is_complete(root: Path) -> bool:
    return (root / "corpus.json").exists() and (root / "manifest.jsonl").exists()


@contextlib.contextmanager
def _build_lock(root: Path):
    """One build of a corpus at a time: a second build waits, then finds the corpus complete. (Without it,
    the second build removed the first one's half-written folder as an interrupted leftover.)"""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"another process is building {root}; waiting for it ...", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(config: str | CorpusConfig = "default", workers: int | None = None, progress: bool = True) -> Path:
    """Build a corpus (atomically) and return its folder; a complete corpus with the same config is left as is.

    The build writes into a hidden ``.partial`` folder and renames it into place only when everything,
    ``corpus.json`` last, is written: an interrupted build never looks complete. Concurrent builds of one
    corpus take turns (a lock file beside it).
    """
    cfg = PRESETS[config] if isinstance(config, str) else config
    root = data_dir() / "corpus" / f"{cfg.name}-v{VERSION}"
    with _build_lock(root):
        return _build_locked(cfg, root, workers, progress)


def _build_locked(cfg: CorpusConfig, root: Path, workers: int | None, progress: bool) -> Path:
    if _is_complete(root):
        info = json.loads((root / "corpus.json").read_text())
        if info["config"] != dataclasses.asdict(cfg):
            raise FileExistsError(f"{root} holds a corpus built with another config; move it away or pick another "
                                  f"name (it is never overwritten)")
        print(f"corpus '{cfg.name}' already built at {root} (hash {info['content_hash'][:12]})")
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    for stale in root.parent.glob(f".{root.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)  # leftovers of an interrupted build
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}"
    tmp.mkdir()
    start = time.time()
    speakers = make_speakers(cfg)
    jobs = [(dataclasses.asdict(cfg), spk, str(tmp)) for spk in speakers]
    workers = workers or os.cpu_count() or 1
    # One fresh process per speaker: eSpeak NG carries state between calls, which breaks repeatability.
    # A fork server imports NumPy/SciPy once and forks a clean child per speaker (spawn would re-import).
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["kdlib.data.corpus", "kdlib.data.augment", "scipy.signal", "soundfile"])
    rows: list[dict] = []
    from kdlib.progress import bar

    with ctx.Pool(workers, maxtasksperchild=1) as pool:
        for part in bar(pool.imap_unordered(_build_speaker, jobs), total=len(jobs), disable=not progress,
                         desc=f"synthesising {cfg.name} corpus", unit="speaker"):
            rows.extend(part)
    rows.sort(key=lambda r: r["path"])
    manifest = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    (tmp / "manifest.jsonl").write_text(manifest, encoding="utf-8")
    (tmp / "speakers.json").write_text(json.dumps(speakers, indent=1))

    def pick(split, kinds):
        return [r for r in rows if r["split"] == split and r["kind"] in kinds]

    trial_sets = {
        "trials.txt": make_trials(pick("test", {"sentence"}), cfg.n_trials, cfg.seed),
        "trials_keywords.txt": make_trials(pick("test", {"keyword"}), cfg.n_keyword_trials, cfg.seed + 1),
        "trials_other.txt": make_trials(pick("other", {"sentence"}), cfg.n_other_trials, cfg.seed + 2),
    }
    digest = hashlib.sha256(manifest.encode())
    for fname, trials in trial_sets.items():
        _write_trials(tmp / fname, trials)
        digest.update((tmp / fname).read_bytes())
    info = {
        "name": cfg.name, "version": VERSION, "config": dataclasses.asdict(cfg), "content_hash": digest.hexdigest(),
        "counts": _counts(rows, trial_sets), "hours": round(sum(r["duration"] for r in rows) / 3600, 3),
        "build_seconds": round(time.time() - start, 1), "workers": workers, "provenance": provenance(),
    }
    (tmp / "corpus.json").write_text(json.dumps(info, indent=1))
    os.replace(tmp, root)
    print(f"built corpus '{cfg.name}' in {info['build_seconds']} s: {len(rows)} clips, {info['hours']} h -> {root}")
    return root


def _counts(rows: list[dict], trial_sets: dict) -> dict:
    counts: dict = {"clips": len(rows)}
    for split in ("train", "test", "other"):
        sub = [r for r in rows if r["split"] == split]
        counts[f"{split}_speakers"] = len({r["speaker"] for r in sub})
        for kind in ("sentence", "keyword", "unknown", "silence"):
            counts[f"{split}_{kind}"] = sum(r["kind"] == kind for r in sub)
    for fname, trials in trial_sets.items():
        counts[fname] = {"trials": len(trials), "target": sum(t[0] for t in trials)}
    return counts


# ----------------------------------------------------------------------------------------------- loading

class Corpus(Source):
    """A built corpus: a :class:`kdlib.data.sources.Source` plus its build info and speakers' voice parameters."""

    def __init__(self, root: Path):
        root = Path(root)
        info = json.loads((root / "corpus.json").read_text())
        with open(root / "manifest.jsonl", encoding="utf-8") as f:
            manifest = [json.loads(line) for line in f]
        trial_files = {p.stem: p for p in sorted(root.glob("trials*.txt"))}
        super().__init__(root, manifest, trial_files, name=f"corpus '{info['name']}'")
        self.info = info
        self.speakers = json.loads((root / "speakers.json").read_text())

    def __repr__(self) -> str:
        c = self.info["counts"]
        return (f"Corpus('{self.info['name']}', v{self.info['version']}, {c['clips']} clips, {self.info['hours']} h, "
                f"{c['train_speakers']}/{c['test_speakers']}/{c['other_speakers']} train/test/other speakers)")


def load(name: str = "default") -> Source:
    """Open a built corpus by name; if it is missing, the error names the command that builds it. A path
    (with a ``/``) opens a real dataset's folder instead (:func:`kdlib.data.sources.open_folder`: VoxCeleb1 or
    Speech Commands)."""
    if "/" in str(name) or os.sep in str(name):
        return open_folder(name)
    root = corpus_root(name)
    if not _is_complete(root):
        raise FileNotFoundError(f"corpus '{name}' is not built at {root}. Build it with:\n"
                                f"    python -m kdlib.data.corpus build --config {name}")
    return Corpus(root)


def verify(name: str = "default") -> list[str]:
    """Re-hash every clip; return the paths whose bytes differ from the manifest (empty when intact)."""
    corpus = load(name)
    return [r["path"] for r in corpus.manifest
            if not corpus.path(r["path"]).exists()
            or hashlib.sha256(corpus.path(r["path"]).read_bytes()).hexdigest() != r["sha256"]]


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["real"]:  # the real-speech evaluation set: python -m kdlib.data.corpus real build
        from kdlib.data.corpus import real

        return real.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m kdlib.data.corpus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build a corpus (idempotent)")
    b.add_argument("--config", default="default", choices=sorted(PRESETS))
    b.add_argument("--workers", type=int, default=None)
    v = sub.add_parser("verify", help="check every clip against the manifest's sha256")
    v.add_argument("--config", default="default", choices=sorted(PRESETS))
    sub.add_parser("real", help="the real-speech evaluation set (python -m kdlib.data.corpus real build)")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.config, workers=args.workers)
        return 0
    bad = verify(args.config)
    print(f"{len(bad)} corrupt or missing clips" + "".join(f"\n  {p}" for p in bad[:20]))
    return 1 if bad else 0

