"""Phoneme transcriptions of the corpus's clips, from the synthesizer that spoke them.

Every clip of the embedded corpus was spoken by eSpeak NG from a known text in a known accent (the clip's
``accent``, e.g. ``en-us`` or ``es-419``), so its phonemes need no forced aligner and no lexicon: eSpeak NG's
own ``espeak_TextToPhonemes`` gives the sequence it pronounced (:func:`kdlib.data.espeak.text_to_phonemes`).
These are the labels of the frame-level content task, phoneme recognition (SUPERB's PR: a CTC head on the
frozen representation, scored by phone error rate, :func:`kdlib.evaluation.metrics.phone_error_rate`).

A phoneme here is one of eSpeak NG's IPA phoneme names with its stress marks removed (``ˈɪ`` and ``ɪ`` are one
phoneme); diphthongs and r-coloured vowels that eSpeak treats as one phoneme (``aɪ``, ``ɑːɹ``) stay one unit.
Word boundaries are dropped, as in SUPERB's PR.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

STRESS_MARKS = "ˈˌ"
SEPARATOR = "_"


def phonemes(text: str, accent: str) -> list[str]:
    """The phonemes eSpeak NG speaks for ``text`` in ``accent``: ``phonemes("Yes.", "en-us") == ["j", "ɛ", "s"]``."""
    from kdlib.data.espeak import text_to_phonemes

    if not text or not text.strip():
        raise ValueError(f"no text to transcribe (accent {accent!r})")
    unstressed = str.maketrans("", "", STRESS_MARKS)
    return [unit for clause in text_to_phonemes(text, accent, SEPARATOR) for word in clause.split()
            for unit in word.translate(unstressed).split(SEPARATOR) if unit]


def clip_phonemes(rows: Iterable[dict]) -> list[list[str]]:
    """The phonemes of each manifest row (its ``text`` in its ``accent``); each distinct text and accent is
    transcribed once. A row without text (silence) is refused by name."""
    cache: dict[tuple[str, str], list[str]] = {}
    out = []
    for row in rows:
        if not row.get("text") or not row.get("accent"):
            raise ValueError(f"{row.get('path', row)}: a clip needs its text and accent to be transcribed "
                             f"(kind {row.get('kind')!r})")
        key = (row["text"], row["accent"])
        if key not in cache:
            cache[key] = phonemes(*key)
        out.append(cache[key])
    return out


class PhoneSet:
    """The phoneme inventory of a set of transcriptions, as CTC's classes: index 0 is the blank, the phonemes
    follow in sorted order. ``encode`` maps a phoneme sequence to indices (a phoneme outside the inventory is
    refused by name, or mapped to ``None`` and dropped with ``unknown="drop"``); ``decode`` maps back."""

    BLANK = 0

    def __init__(self, phones: Iterable[str]):
        self.phones = sorted(set(phones))
        if not self.phones:
            raise ValueError("a phone set needs at least one phoneme")
        self.index = {p: i + 1 for i, p in enumerate(self.phones)}

    @classmethod
    def of(cls, transcriptions: Iterable[Sequence[str]]) -> PhoneSet:
        return cls(p for seq in transcriptions for p in seq)

    def __len__(self) -> int:
        """The number of CTC classes: the phonemes and the blank."""
        return len(self.phones) + 1

    def encode(self, seq: Sequence[str], unknown: str = "raise") -> torch.Tensor:
        missing = [p for p in seq if p not in self.index]
        if missing and unknown == "raise":
            raise KeyError(f"phonemes outside the inventory of {len(self.phones)}: {sorted(set(missing))}")
        return torch.tensor([self.index[p] for p in seq if p in self.index], dtype=torch.long)

    def decode(self, indices: Iterable[int]) -> list[str]:
        return [self.phones[i - 1] for i in indices if i != self.BLANK]
