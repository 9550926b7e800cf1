"""Audio reading, writing, resampling, validation and crops (NumPy and soundfile only, no torch).

Every loader goes through :func:`read_audio`, so bad files fail the same way everywhere: a ``ValueError``
naming the file and what was wrong.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
MIN_SECONDS = 0.1


def resample(x: np.ndarray, orig_sr: float, new_sr: int) -> np.ndarray:
    """Polyphase resampling from ``orig_sr`` to ``new_sr`` (the ratio is approximated to 1/1000)."""
    from scipy.signal import resample_poly

    if orig_sr == new_sr:
        return x
    ratio = Fraction(new_sr / orig_sr).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=0).astype(np.float32)


def validate(x: np.ndarray, name: str, sr: int = SAMPLE_RATE, min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """Raise ``ValueError`` naming ``name`` if ``x`` is empty, too short, or holds NaN/inf."""
    if x.size == 0:
        raise ValueError(f"{name}: audio is empty (0 samples)")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: audio contains NaN or infinite samples")
    if x.shape[0] < min_seconds * sr:
        raise ValueError(f"{name}: audio is too short ({x.shape[0] / sr:.3f} s < {min_seconds} s)")
    return x


def read_audio(path: str | Path, sr: int = SAMPLE_RATE, on_rate_mismatch: str = "resample",
               on_multichannel: str = "downmix", min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """Read a mono float32 waveform at ``sr`` Hz from a WAV/FLAC file.

    ``on_rate_mismatch``: "resample" (with a warning naming the rate) or "error".
    ``on_multichannel``: "downmix" (average channels, with a warning) or "error".
    """
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such audio file")
    try:
        x, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises its own LibsndfileError
        raise ValueError(f"{path}: not a readable audio file ({err})") from err
    if x.shape[1] > 1:
        if on_multichannel == "error":
            raise ValueError(f"{path}: has {x.shape[1]} channels; expected mono")
        warnings.warn(f"{path}: {x.shape[1]} channels downmixed to mono", stacklevel=2)
    x = x.mean(axis=1)
    if file_sr != sr:
        if on_rate_mismatch == "error":
            raise ValueError(f"{path}: sample rate is {file_sr} Hz; expected {sr} Hz")
        warnings.warn(f"{path}: sample rate {file_sr} Hz resampled to {sr} Hz", stacklevel=2)
        x = validate(x, str(path), file_sr, min_seconds)
        x = resample(x, file_sr, sr)
    return validate(x.astype(np.float32), str(path), sr, min_seconds)


def write_audio(path: str | Path, x: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write a mono waveform as 16-bit FLAC or WAV (by the file's suffix)."""
    import soundfile as sf

    path = Path(path)
    fmt = {".flac": "FLAC", ".wav": "WAV"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported suffix; use .flac or .wav")
    sf.write(str(path), np.clip(x, -1.0, 1.0), sr, format=fmt, subtype="PCM_16")


def crop(x: np.ndarray, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """A window of ``n`` samples: random start with ``rng``, centred without; shorter input is wrap-padded."""
    if x.shape[0] < n:
        x = np.pad(x, (0, n - x.shape[0]), mode="wrap")
    start = (x.shape[0] - n) // 2 if rng is None else int(rng.integers(0, x.shape[0] - n + 1))
    return x[start:start + n]


def fixed_crops(x: np.ndarray, n: int, count: int) -> np.ndarray:
    """``count`` windows of ``n`` samples at evenly spaced starts (for segment-level scoring)."""
    if x.shape[0] < n:
        x = np.pad(x, (0, n - x.shape[0]), mode="wrap")
    starts = np.linspace(0, x.shape[0] - n, count).astype(int)
    return np.stack([x[s:s + n] for s in starts])


def trim_silence(x: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """``x`` without its leading and trailing quiet samples: those below ``threshold`` times its peak."""
    loud = np.flatnonzero(np.abs(x) > threshold * (np.max(np.abs(x)) + 1e-9))
    return x[loud[0]: loud[-1] + 1] if loud.size else x
