"""Real speech without speaker labels, for distillation only (never for evaluation): words and letters that
volunteers recorded for KDE's children's games, in many languages, fetched from Debian packages like the
real-speech evaluation prompts (:mod:`kdlib.data.corpus.real`), whose voices are not among them."""

from __future__ import annotations

import numpy as np

from kdlib.data.audio import SAMPLE_RATE

UNLABELLED = {
    "ktuberling-data": {"prefix": "usr/share/ktuberling/sounds/", "licence": "GPL-2+",
                        "what": "object names read by volunteers, about 25 languages"},
    "klettres-data": {"prefix": "usr/share/klettres/", "licence": "GPL-2+",
                      "what": "letters and syllables read by volunteers, about 20 languages"},
}
"""Real speech without speaker labels, for distillation only (never for evaluation)."""


def unlabelled_real_speech(debs=None, min_seconds: float = 0.4, progress: bool = True,
                           with_languages: bool = False):
    """The waveforms (16 kHz) of every ``.ogg``/``.wav`` clip of at least ``min_seconds`` in the packages
    of :data:`UNLABELLED`, downloaded with ``apt-get download`` like the evaluation set's. With
    ``with_languages``, also each clip's language folder (``fr``, ``en_GB``, ``sr`` for every Serbian script):
    the closest thing to a speaker label these packages record (see :func:`language_voices`)."""
    from kdlib.data.corpus import real

    found = real.fetch(sorted(UNLABELLED), real.debs_dir() if debs is None else debs)
    waves, languages = [], []
    for package, spec in UNLABELLED.items():
        files = real.deb_files(found[package], spec["prefix"])
        kept = 0
        for name in sorted(files):
            if not name.endswith((".ogg", ".wav")):
                continue
            x = real.decode(files[name], f"{found[package].name}:{name}")
            if len(x) >= min_seconds * SAMPLE_RATE and np.abs(x).max() > 1e-3:
                waves.append(x)
                languages.append(name[len(spec["prefix"]):].split("/")[0].split("@")[0])
                kept += 1
        if progress:
            print(f"{package}: {kept} clips ({spec['what']}; {spec['licence']})")
    return (waves, languages) if with_languages else waves


def language_voices(waves: list[np.ndarray], languages: list[str], min_clips: int = 40):
    """Pseudo-speaker labels for the KDE clips: one class per language folder with at least ``min_clips`` clips
    (both packages' folders of a language merged). A guess: each language was read by one or a few volunteers,
    and the packages do not say who. Returns ``(waves, labels, names)`` of the kept clips."""
    counts = {lang: languages.count(lang) for lang in sorted(set(languages))}
    names = [lang for lang, n in counts.items() if n >= min_clips]
    index = {lang: i for i, lang in enumerate(names)}
    kept = [(w, index[lang]) for w, lang in zip(waves, languages) if lang in index]
    return [w for w, _ in kept], [label for _, label in kept], names


def same_language_trials(source) -> np.ndarray:
    """Which trials of a real-speech set's ``"trials"`` pair two clips of one language (en, es, fr, ...)."""
    lang = {r["path"]: r["language"][:2] for r in source.manifest}
    return np.array([lang[a] == lang[b] for _, a, b in source.trials("trials")])
