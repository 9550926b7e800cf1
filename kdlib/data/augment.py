"""Session augmentation for the synthetic corpus (channel tilt, reverberation, noise and gain), and a telephone
channel for fine-tuning towards 8 kHz speech.

Clean eSpeak speech makes speaker verification too easy (MFCC-statistics cosine EER 2.5 % on clean vs
20 % with these distortions, measured on a 48-speaker pilot corpus while kdlib was designed), so the corpus
applies them by default, with a generator seeded per utterance so that builds repeat bit for bit.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve, lfilter


def channel_tilt(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A first-order filter y[n] = x[n] + a·x[n-1] with a in [-0.9, 0.6]: a random spectral tilt."""
    a = rng.uniform(-0.9, 0.6)
    return lfilter([1.0, a], [1.0], x)


def reverb(x: np.ndarray, rng: np.random.Generator, sr: int, rt60: tuple[float, float] = (0.1, 0.6)) -> np.ndarray:
    """Convolve with a synthetic room response: noise under an exponential decay with the drawn RT60."""
    t60 = rng.uniform(*rt60)
    n = int(t60 * sr)
    t = np.arange(n) / sr
    rir = rng.standard_normal(n) * np.exp(-6.9078 * t / t60)  # -60 dB at t = RT60
    rir[0] = 1.0
    rir /= np.sqrt(np.sum(rir**2))
    return fftconvolve(x, rir)[: len(x)]


def noise(n: int, rng: np.random.Generator, color: str) -> np.ndarray:
    """White or brown (integrated white, high-passed) noise of unit power."""
    w = rng.standard_normal(n)
    if color == "brown":
        w = lfilter([1.0, -1.0], [1.0, -0.995], np.cumsum(w) / np.sqrt(n))
    return w / (np.sqrt(np.mean(w**2)) + 1e-12)


def add_noise(x: np.ndarray, rng: np.random.Generator, snr_db: tuple[float, float] = (5.0, 30.0)) -> np.ndarray:
    """Add white or brown noise at an SNR drawn from ``snr_db``."""
    snr = rng.uniform(*snr_db)
    power = np.mean(x**2) + 1e-12
    color = "white" if rng.random() < 0.5 else "brown"
    return x + noise(len(x), rng, color) * np.sqrt(power / 10 ** (snr / 10))


def session(x: np.ndarray, rng: np.random.Generator, sr: int, p_reverb: float = 0.7,
            snr_db: tuple[float, float] = (5.0, 30.0), rt60: tuple[float, float] = (0.1, 0.6)) -> np.ndarray:
    """One recording session: tilt, reverb (probability ``p_reverb``, RT60 drawn from ``rt60`` seconds), noise
    at an SNR drawn from ``snr_db``, then a random peak level."""
    y = channel_tilt(x, rng)
    if rng.random() < p_reverb:
        y = reverb(y, rng, sr, rt60)
    y = add_noise(y, rng, snr_db)
    peak = np.max(np.abs(y)) + 1e-9
    return (y / peak * rng.uniform(0.1, 0.9)).astype(np.float32)


def distort_crops(waves, p: float = 0.6, seed: int = 0, sr: int = 16_000, **session_kwargs):
    """A distorted copy of a ``(n, samples)`` tensor of crops: each crop, with probability ``p``, goes through
    :func:`session` (tilt, reverb, noise, level), drawn from ``seed`` so that the copy repeats bit for bit;
    the others are kept clean. Used where a student hears distorted audio and its teacher the clean crop."""
    import torch

    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability, got {p}")
    rng = np.random.default_rng(seed)
    out = waves.clone()
    for i, wave in enumerate(waves.numpy()):
        if rng.random() < p:
            out[i] = torch.from_numpy(session(wave.astype(np.float64), rng, sr, **session_kwargs))
    return out


def telephone(x: np.ndarray, rng: np.random.Generator, sr: int = 16_000, p_codec: float = 0.5) -> np.ndarray:
    """A telephone channel: down to 8 kHz sampling (nothing above 4 kHz survives), with probability ``p_codec``
    through the GSM 6.10 full-rate codec (13 kbit/s, ETSI GSM 06.10; libsndfile's), and back to ``sr``. The same
    length comes back, as float32. The real-speech evaluation set is 8 kHz telephone audio, two of its speakers
    GSM-coded; the synthetic corpus is wide-band."""
    import io

    import soundfile as sf

    from kdlib.data.audio import resample

    narrow = resample(np.asarray(x, dtype=np.float32), sr, 8000)
    if rng.random() < p_codec:
        peak = float(np.abs(narrow).max()) + 1e-9
        coded = io.BytesIO()
        sf.write(coded, narrow / peak * 0.9, 8000, format="RAW", subtype="GSM610")
        decoded, _ = sf.read(io.BytesIO(coded.getvalue()), format="RAW", subtype="GSM610", samplerate=8000,
                             channels=1, dtype="float32")
        narrow = decoded[: len(narrow)] * peak / 0.9
    wide = resample(narrow, 8000, sr)
    out = np.zeros(len(x), dtype=np.float32)
    out[: min(len(x), len(wide))] = wide[: len(x)]
    return out


HARSH = {"snr_db": (-5.0, 5.0), "p_reverb": 1.0, "rt60": (0.6, 1.2)}
"""A heavier session than the corpus's own (SNR 5 to 30 dB, reverberation 70 % of the time, RT60 0.1 to 0.6 s)
and than the robust teacher's training (SNR 0 to 10 dB): SNR −5 to 5 dB and always a long room response."""
