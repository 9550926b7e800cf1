"""A minimal ctypes binding to eSpeak NG, the library shipped in the ``espeakng-loader`` wheel.

Only the calls the corpus generator needs, from the documented C API in ``speak_lib.h``:
``espeak_Initialize`` (synchronous output), ``espeak_SetSynthCallback``, ``espeak_SetVoiceByName``,
``espeak_SetParameter``, ``espeak_Synth``, ``espeak_Synchronize`` and ``espeak_ng_SetRandSeed``.

eSpeak NG keeps global state, so one process holds one engine. For bit-exact output, create the engine in
a fresh process and set the random seed before every utterance (see ``kdlib.data.corpus``).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
ESPEAK_RATE, ESPEAK_VOLUME, ESPEAK_PITCH, ESPEAK_RANGE = 1, 2, 3, 4

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """One eSpeak NG engine in this process. ``synth(text, voice, ...)`` returns int16 samples."""

    _instance: "Espeak | None" = None

    def __new__(cls):
        # The C library is a process-wide singleton; so is this wrapper.
        if cls._instance is None:
            cls._instance = super().__new__(cls)
            cls._instance._init()
        return cls._instance

    def _init(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_dir = str(Path(espeakng_loader.get_data_path()).parent).encode()
        self.lib.espeak_Initialize.restype = ctypes.c_int
        rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_dir, 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {rate}); data path {data_dir!r}")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []

        def _collect(wav, n, _events):
            if n > 0 and wav:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = _SYNTH_CALLBACK(_collect)  # keep a reference: ctypes does not
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]

    def synth(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, seed: int) -> np.ndarray:
        """Speak ``text`` with ``voice`` (e.g. ``"en-us+m3"``); rate in words per minute, pitch and range 0..100."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r}")
        for param, value in ((ESPEAK_RATE, rate), (ESPEAK_PITCH, pitch), (ESPEAK_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self.lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        self._chunks = []
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        status = self.lib.espeak_Synth(buf, len(buf), 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status} for text {text!r}")
        self.lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def _phoneme_binding(lib) -> None:
    """Declare ``espeak_TextToPhonemes``'s signature: ``(const void **textptr, int textmode, int phonememode)``,
    returning the phonemes of one clause and advancing ``*textptr`` (NULL at the end of the text)."""
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]


PHONEMES_IPA = 0x02
"""``phonememode`` bit 1 of ``espeak_TextToPhonemes``: IPA characters rather than eSpeak's ASCII names; bits 8-23
hold the character written between phonemes."""


def text_to_phonemes(text: str, voice: str, separator: str = "_") -> list[str]:
    """The IPA phonemes eSpeak NG would speak for ``text`` in ``voice`` (its language decides the
    pronunciation), one string per clause: phonemes joined by ``separator``, words by spaces, stress marks kept,
    e.g. ``["ð_ə k_w_ˈɪ_k", ...]``. Uses the engine of this process (:class:`Espeak`)."""
    engine = Espeak()
    if not hasattr(engine, "_phonemes_declared"):
        _phoneme_binding(engine.lib)
        engine._phonemes_declared = True
    if engine.lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise ValueError(f"eSpeak NG has no voice {voice!r}")
    buf = ctypes.create_string_buffer(text.encode("utf-8"))
    pointer = ctypes.c_void_p(ctypes.addressof(buf))
    clauses = []
    while pointer.value:
        out = engine.lib.espeak_TextToPhonemes(ctypes.byref(pointer), ESPEAK_CHARS_UTF8,
                                               PHONEMES_IPA | (ord(separator) << 8))
        clauses.append((out or b"").decode("utf-8"))
    return clauses
