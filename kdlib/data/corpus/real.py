"""A real-speech evaluation set: recorded telephone voice prompts of professional voice talents.

The embedded corpus is synthetic; this set checks whether what a model learns there carries over to human
voices. No multi-speaker corpus ships in a package, but Debian ships the voice prompts of the Asterisk PBX,
each language recorded by one named voice talent (``debian/copyright`` of every package credits them):

============================  ============  ====================  ====================
package                       folder        voice (speaker)       licence
============================  ============  ====================  ====================
asterisk-core-sounds-en-wav   en_US         Allison Smith         CC-BY-SA-3.0
asterisk-core-sounds-es-wav   es_MX         Allison Smith         CC-BY-SA-3.0
asterisk-core-sounds-fr-wav   fr_CA         June Wallack          CC-BY-SA-3.0
asterisk-core-sounds-it-wav   it_IT         Carlo Flora           CC-BY-3.0
asterisk-core-sounds-ru-wav   ru_RU         IVRvoice.ru voice     CC-BY-3.0
asterisk-prompt-it-menardi    it_IT         Paola Dal Zot         CC-BY-SA-3.0 (it)
asterisk-prompt-fr-armelle    fr            Armelle Desjardins    BSD-style
asterisk-prompt-es-co         es            July E. Jimenez       GPL-2
============================  ============  ====================  ====================

Speakers are grouped by the credited voice, so Allison Smith's English and Spanish prompts are one speaker
(7 speakers, 6 women and 1 man). All prompts are 8 kHz telephone recordings (two packages as GSM 6.10),
upsampled here to 16 kHz; every model therefore meets a telephone channel it may not have been trained on.

``python -m kdlib.data.corpus real build`` also fetches the reference speaker encoder trained on real speech
(:mod:`kdlib.models.ge2e`, from a PyPI wheel). It downloads the packages with ``apt-get download`` (the system's package
client; no root needed) into ``data/cache/debs/``, unpacks them in Python (a ``.deb`` is an ``ar`` archive
holding ``data.tar.*``), keeps ``per_speaker`` prompts of 2 to 10 s per speaker (a seeded choice) and writes
``data/real/prompts-v1/``: ``audio/<speaker>/<clip>.flac``, ``manifest.jsonl``, ``sources.json`` (package,
version, sha256, licence and credit of every source), the packages' ``copyright`` files under
``licences/``, and ``trials.txt``, every pair of clips in VoxCeleb1 format. On a machine without
``apt-get``, download the ``.deb`` files by hand and pass ``--debs DIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import shutil
import subprocess
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kdlib.data.audio import SAMPLE_RATE, resample, trim_silence, write_audio
from kdlib.runtime import data_dir, provenance
from kdlib.data.sources import Source

VERSION = 1
NAME = "prompts"


@dataclass(frozen=True)
class Voice:
    """One package's prompts by one credited voice talent."""

    package: str
    folder: str  # inside the package
    speaker: str
    credit: str
    language: str
    licence: str
    codec: str = "wav"  # or "gsm": headerless GSM 6.10 at 8 kHz


_SOUNDS = "usr/share/asterisk/sounds"
VOICES = (
    Voice("asterisk-core-sounds-en-wav", f"{_SOUNDS}/en_US_f_Allison", "allison_smith", "Allison Smith", "en-US",
          "CC-BY-SA-3.0"),
    Voice("asterisk-core-sounds-es-wav", f"{_SOUNDS}/es_MX_f_Allison", "allison_smith", "Allison Smith", "es-MX",
          "CC-BY-SA-3.0"),
    Voice("asterisk-core-sounds-fr-wav", f"{_SOUNDS}/fr_CA_f_June", "june_wallack", "June Wallack", "fr-CA",
          "CC-BY-SA-3.0"),
    Voice("asterisk-core-sounds-it-wav", f"{_SOUNDS}/it_IT_m_Carlo", "carlo_flora", "Carlo Flora", "it-IT",
          "CC-BY-3.0"),
    Voice("asterisk-core-sounds-ru-wav", f"{_SOUNDS}/ru_RU_f_IvrvoiceRU", "ivrvoice_ru",
          "the IVRvoice.ru voice (provided by Maxim Topal)", "ru-RU", "CC-BY-3.0"),
    Voice("asterisk-prompt-it-menardi-wav", f"{_SOUNDS}/it_IT_f_Menardi", "paola_dal_zot", "Paola Dal Zot", "it-IT",
          "CC-BY-SA-3.0 (Italian)"),
    Voice("asterisk-prompt-fr-armelle", f"{_SOUNDS}/fr", "armelle_desjardins", "Armelle Desjardins", "fr-FR",
          "BSD-style (redistribution with notice)", codec="gsm"),
    Voice("asterisk-prompt-es-co", f"{_SOUNDS}/es", "july_jimenez", "July E. Jimenez", "es-CO", "GPL-2",
          codec="gsm"),
)


def real_root(name: str = NAME) -> Path:
    return data_dir() / "real" / f"{name}-v{VERSION}"


def debs_dir() -> Path:
    return data_dir() / "cache" / "debs"


# ------------------------------------------------------------------------------------------- packages

def fetch(packages: list[str], dest: Path) -> dict[str, Path]:
    """``{package: .deb path}``, downloading with ``apt-get download`` what ``dest`` does not hold yet."""
    dest.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(dest.glob(f"{p}_*.deb"))]
    if missing:
        if shutil.which("apt-get") is None:
            raise RuntimeError(f"apt-get not found; download these Debian packages by hand into {dest} (or pass "
                               f"--debs DIR): {' '.join(missing)}")
        done = subprocess.run(["apt-get", "download", *missing], cwd=dest, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"apt-get download failed in {dest}:\n{done.stderr.strip()}")
    found = {}
    for p in packages:
        debs = sorted(dest.glob(f"{p}_*.deb"))
        if not debs:
            raise FileNotFoundError(f"{dest}: no {p}_*.deb")
        found[p] = debs[-1]
    return found


def deb_members(path: Path) -> dict[str, bytes]:
    """The members of a ``.deb`` (an ``ar`` archive: ``debian-binary``, ``control.tar.*``, ``data.tar.*``)."""
    blob = Path(path).read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise ValueError(f"{path}: not a Debian package (no ar archive header)")
    members, pos = {}, 8
    while pos + 60 <= len(blob):
        header = blob[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members[name] = blob[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def deb_files(path: Path, prefix: str | tuple[str, ...]) -> dict[str, bytes]:
    """``{path inside the package: bytes}`` of the regular files under ``prefix`` (or any of several) in the
    package's data."""
    data = [v for k, v in deb_members(path).items() if k.startswith("data.tar")]
    if not data:
        raise ValueError(f"{path}: no data.tar member")
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data[0])) as tar:  # compression (xz, gz, zst not) detected by tarfile
        for m in tar.getmembers():
            name = m.name.removeprefix("./")
            if m.isfile() and name.startswith(prefix):
                out[name] = tar.extractfile(m).read()
    return out


def package_version(path: Path) -> str:
    return Path(path).name.split("_")[1].replace("%3a", ":")


# ------------------------------------------------------------------------------------------- building

def decode(blob: bytes, name: str, codec: str = "auto") -> np.ndarray:
    """Mono 16 kHz audio from the bytes of one file in a package: ``codec="gsm"`` for headerless GSM 6.10 at
    8 kHz, otherwise any format soundfile reads from its header (WAV, Ogg Vorbis, ...). ``name`` is named
    in the error if the bytes cannot be decoded."""
    import soundfile as sf

    try:
        if codec == "gsm":
            x, sr = sf.read(io.BytesIO(blob), format="RAW", subtype="GSM610", samplerate=8000, channels=1,
                            dtype="float32")
        else:
            x, sr = sf.read(io.BytesIO(blob), dtype="float32")
    except Exception as err:
        raise ValueError(f"{name}: cannot decode as {codec} ({err})") from err
    return resample(x if x.ndim == 1 else x.mean(1), sr, SAMPLE_RATE)


def all_pair_trials(rows: list[dict]) -> list[tuple[int, str, str]]:
    """Every pair of rows as ``(same speaker, path_a, path_b)``, in manifest order."""
    return [(int(a["speaker"] == b["speaker"]), a["path"], b["path"]) for a, b in itertools.combinations(rows, 2)]


def build(debs: str | Path | None = None, per_speaker: int = 30, min_seconds: float = 2.0,
          max_seconds: float = 10.0, seed: int = 0, root: str | Path | None = None,
          voices: tuple[Voice, ...] = VOICES, progress: bool = True) -> Path:
    """Build the set (idempotent: a complete set is left as it is). ``debs``: a folder of ``.deb`` files to
    use (missing ones are downloaded into it); default ``data/cache/debs``."""
    root = Path(root) if root else real_root()
    if (root / "corpus.json").exists():
        return root
    packages = sorted({v.package for v in voices})
    found = fetch(packages, Path(debs) if debs else debs_dir())
    rng = np.random.default_rng(seed)
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "licences").mkdir(parents=True)
    sources, candidates = [], {}
    for voice in voices:
        deb = found[voice.package]
        copyright_path = f"usr/share/doc/{voice.package}/copyright"
        files = deb_files(deb, (voice.folder + "/", copyright_path))  # one pass over the package
        if copyright_path in files:
            (tmp / "licences" / f"{voice.package}.copyright").write_bytes(files[copyright_path])
        kept = 0
        for name in sorted(files):
            if not name.endswith(f".{voice.codec}"):
                continue
            x = decode(files[name], f"{deb.name}:{name}", voice.codec)
            x = trim_silence(x) if x.size else x
            if min_seconds <= len(x) / SAMPLE_RATE <= max_seconds:
                candidates.setdefault(voice.speaker, []).append((voice, name, x))
                kept += 1
        if kept == 0:
            raise ValueError(f"{deb}: no {voice.codec} prompt of {min_seconds}-{max_seconds} s under {voice.folder}")
        sources.append({**asdict(voice), "deb": deb.name, "version": package_version(deb),
                        "sha256": hashlib.sha256(deb.read_bytes()).hexdigest(), "prompts_in_range": kept})
        if progress:
            print(f"{voice.package}: {kept} prompts of {min_seconds:g}-{max_seconds:g} s ({voice.credit})")
    rows = []
    for speaker in sorted(candidates):
        pool = candidates[speaker]
        if len(pool) < per_speaker:
            raise ValueError(f"speaker {speaker}: only {len(pool)} prompts in range, {per_speaker} asked for")
        for i in sorted(rng.choice(len(pool), per_speaker, replace=False)):
            voice, name, x = pool[i]
            inner = Path(name).relative_to(voice.folder).with_suffix("").as_posix().replace("/", "-")
            rel = f"audio/{speaker}/{voice.language}_{inner}.flac"
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            write_audio(tmp / rel, x)
            rows.append({"path": rel, "speaker": speaker, "split": "test", "kind": "sentence", "label": None,
                         "language": voice.language, "package": voice.package, "source_path": name,
                         "duration": round(len(x) / SAMPLE_RATE, 3),
                         "sha256": hashlib.sha256((tmp / rel).read_bytes()).hexdigest()})
    trials = all_pair_trials(rows)
    (tmp / "trials.txt").write_text("".join(f"{t} {a} {b}\n" for t, a, b in trials))
    with open(tmp / "manifest.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    (tmp / "sources.json").write_text(json.dumps(sources, indent=1))
    info = {"name": NAME, "version": VERSION, "per_speaker": per_speaker, "seconds": [min_seconds, max_seconds],
            "seed": seed, "speakers": len(candidates), "clips": len(rows), "trials": len(trials),
            "target_trials": sum(t for t, _, _ in trials), "hours": round(sum(r["duration"] for r in rows) / 3600, 3),
            "grouping": "one speaker per credited voice talent (debian/copyright); Allison Smith's en-US and "
                        "es-MX prompts are one speaker", "provenance": provenance()}
    (tmp / "corpus.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    if progress:
        print(f"{root}: {len(rows)} clips of {len(candidates)} speakers, {len(trials)} trials")
    return root


def load(root: str | Path | None = None) -> Source:
    """The built set as a :class:`kdlib.data.sources.Source` (split ``test``, trial list ``trials``); if it is
    missing, the error names the command that builds it."""
    root = Path(root) if root else real_root()
    if not (root / "corpus.json").exists():
        raise FileNotFoundError(f"the real-speech set is not built at {root}. Build it with:\n"
                                f"    python -m kdlib.data.corpus real build")
    with open(root / "manifest.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    source = Source(root, rows, {"trials": root / "trials.txt"}, name=f"real voice prompts at {root}")
    source.info = json.loads((root / "corpus.json").read_text())
    return source


def available(root: str | Path | None = None) -> bool:
    return ((Path(root) if root else real_root()) / "corpus.json").exists()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdlib.data.corpus real", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="download the voice-prompt packages and build the set (idempotent)")
    b.add_argument("--debs", default=None, help="folder of .deb files to use (missing ones are downloaded)")
    b.add_argument("--per-speaker", type=int, default=30)
    args = parser.parse_args(argv)
    build(args.debs, per_speaker=args.per_speaker)
    from kdlib.models.ge2e import fetch_weights

    print(f"reference speaker encoder (GE2E, trained on real speech): {fetch_weights()}")
    return 0
