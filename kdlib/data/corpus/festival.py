"""Synthetic speech whose timbre comes from real people: Festival's diphone, cluster-unit and HTS voices.

Each Festival voice that Debian ships was made from the recordings of one real speaker (a diphone voice
concatenates that speaker's recorded diphones; an HTS voice is a statistical model of one speaker). So, unlike
eSpeak NG's formant voices, they carry real vocal tracts, if few of them. :func:`synthesize` reads sentences with
every voice of :data:`VOICES` at random speaking rates and runs each clip through the corpus's recording
sessions (:func:`kdlib.data.augment.session`), for training speakers beside the eSpeak NG ones
(``python -m experiments.real_voice_transfer festival``).

The packages come with ``apt-get download`` (Debian main) and are unpacked with ``dpkg -x`` under
``data/cache/festival``; nothing is installed. The Czech voices (their paths are fixed to /usr/share) and the
Hindi one (a missing phone set) do not run unpacked and are left out.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import numpy as np

from kdlib.data.audio import SAMPLE_RATE, resample
from kdlib.runtime import data_dir

VOICES = {
    "kal_diphone": ("festvox-kallpc16k", "American English", "male"),
    "ked_diphone": ("festvox-kdlpc16k", "American English", "male"),
    "cmu_us_slt_arctic_hts": ("festvox-us-slt-hts", "American English", "female"),
    "lp_diphone": ("festvox-italp16k", "Italian", "female"),
    "pc_diphone": ("festvox-itapc16k", "Italian", "male"),
    "suo_fi_lj_diphone": ("festvox-suopuhe-lj", "Finnish", "female"),
    "hy_fi_mv_diphone": ("festvox-suopuhe-mv", "Finnish", "male"),
    "msu_ru_nsh_clunits": ("festvox-ru", "Russian", "male"),
    "upc_ca_ona_hts": ("festvox-ca-ona-hts", "Catalan", "female"),
}
"""Festival voices that run unpacked: voice name -> (Debian package, language of its recordings, speaker's sex)."""

SUPPORT = ("festival", "libestools2.5", "festlex-cmu", "festlex-poslex", "festlex-ifd", "festival-ca",
           "festvox-suopuhe-common")
"""What the voices need besides themselves: the synthesizer, its library, lexicons and language support."""

LIBRARIES = ("libpulse0", "libsndfile1", "libasyncns0", "libflac12", "libvorbis0a", "libvorbisenc2", "libopus0",
             "libogg0", "libmpg123-0", "libmp3lame0")
"""Shared libraries Festival's binary links against (through PulseAudio's client) that a minimal system lacks."""


def root() -> Path:
    return data_dir() / "cache" / "festival"


def unpack(dest: Path | None = None) -> Path:
    """Download (``apt-get download``) and unpack (``dpkg -x``) Festival, :data:`LIBRARIES` and :data:`VOICES`
    under ``dest``; return the unpacked tree. Done once; a tree that holds every package is reused."""
    from kdlib.data.corpus import real

    dest = dest or root()
    tree = dest / "tree"
    packages = [*SUPPORT, *LIBRARIES, *(package for package, _, _ in VOICES.values())]
    marker = tree / ".complete"
    if marker.exists() and {line.split()[0] for line in marker.read_text().splitlines()} >= set(packages):
        return tree
    if shutil.which("dpkg") is None:
        raise RuntimeError("dpkg not found: Festival's packages are unpacked with 'dpkg -x' (Debian or Ubuntu)")
    debs = real.fetch(packages, dest / "debs")
    for deb in debs.values():
        done = subprocess.run(["dpkg", "-x", str(deb), str(tree)], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"dpkg -x {deb} failed: {done.stderr.strip()}")
    marker.write_text("\n".join(f"{p} {real.package_version(d)}" for p, d in sorted(debs.items())))
    return tree


def _say(tree: Path, voice: str, jobs: list[tuple[str, float, Path]]) -> None:
    """Synthesize ``(text, duration stretch, wav path)`` jobs with one Festival process."""
    share = tree / "usr" / "share" / "festival"
    quote = lambda text: '"' + text.replace("\\", " ").replace('"', " ") + '"'  # noqa: E731
    lines = [f"(voice_{voice})"] + [
        f"(Parameter.set 'Duration_Stretch {stretch:.3f}) "
        f"(utt.save.wave (utt.synth (Utterance Text {quote(text)})) {quote(str(path))} 'riff)"
        for text, stretch, path in jobs]
    script = jobs[0][2].parent / f"{voice}.scm"
    script.write_text("\n".join(lines) + "\n")
    lib = tree / "usr" / "lib" / "x86_64-linux-gnu"
    env = {"LD_LIBRARY_PATH": f"{lib}:{lib / 'pulseaudio'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(tree / "usr" / "bin" / "festival"), "--libdir", f"{share}/", "--datadir", f"{share}/",
                           "-b", str(script)], capture_output=True, text=True, env=env, timeout=1800)
    missing = [str(path) for _, _, path in jobs if not path.exists()]
    if done.returncode or missing:
        raise RuntimeError(f"Festival voice {voice} failed ({len(missing)} clips missing): {done.stderr[-500:]}")


WARPS = (0.84, 0.89, 0.94, 1.0, 1.06, 1.12, 1.19)
"""Frequency-warp factors that turn one Festival voice into seven pseudo-speakers (about 6 % apart)."""


def synthesize(per_voice: int = 80, seed: int = 0, stretch: tuple[float, float] = (0.85, 1.2),
               voices: tuple[str, ...] | None = None, warps: tuple[float, ...] = ()
               ) -> tuple[list[np.ndarray], list[str]]:
    """``per_voice`` sentences (:func:`kdlib.data.sentences.sentence`, English whatever the voice's language: the
    timbre is what counts) read by each voice at a random duration stretch, resampled to 16 kHz, each through a
    random recording session like the corpus's clips; returns the waveforms and their voice names.

    With ``warps`` (e.g. :data:`WARPS`), each clip is also frequency-warped by a factor α drawn from them before
    its session: played back α times faster (resampled as if recorded at α · its rate), which scales pitch and
    formants by α, as a vocal tract about 1/α as long would, and duration by 1/α. Each (voice, α) is then its
    own pseudo-speaker, named ``"<voice>*<α>"`` (speed perturbation as speaker augmentation: Yamamoto et al.,
    "Speaker augmentation and bandwidth extension for deep speaker embedding", Interspeech 2019)."""
    import soundfile as sf

    from kdlib.data import augment
    from kdlib.data.sentences import sentence

    tree = unpack()
    rng, text_rng = np.random.default_rng(seed), random.Random(seed)
    work = root() / "clips"
    work.mkdir(parents=True, exist_ok=True)
    waves, names = [], []
    for voice in voices or tuple(VOICES):
        jobs = [(sentence(text_rng), float(rng.uniform(*stretch)), work / f"{voice}-{i:03d}.wav")
                for i in range(per_voice)]
        for _, _, path in jobs:
            path.unlink(missing_ok=True)
        _say(tree, voice, jobs)
        for _, _, path in jobs:
            x, sr = sf.read(str(path), dtype="float32")
            alpha = float(rng.choice(warps)) if warps else 1.0
            x = resample(x if x.ndim == 1 else x.mean(1), sr * alpha, SAMPLE_RATE)
            x = x / max(1e-6, float(np.abs(x).max())) * 0.5
            waves.append(augment.session(x, rng, SAMPLE_RATE).astype(np.float32))
            names.append(f"{voice}*{alpha:.2f}" if warps else voice)
    return waves, names
