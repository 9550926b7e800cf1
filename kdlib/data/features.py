"""Acoustic features: log-mel filterbanks (the SV models' input) and MFCC statistics (a classic baseline)."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn


class Fbank(nn.Module):
    """Log-mel filterbank energies, 25 ms windows every 10 ms, mean-normalised over time per utterance.

    Input ``(batch, samples)`` at 16 kHz; output ``(batch, n_mels, frames)``.
    """

    def __init__(self, n_mels: int = 80, sample_rate: int = 16_000, n_fft: int = 512, win_length: int = 400,
                 hop_length: int = 160, f_min: float = 20.0, f_max: float = 7600.0, cmn: bool = True):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=hop_length, f_min=f_min,
            f_max=f_max, n_mels=n_mels, window_fn=torch.hamming_window)
        self.cmn = cmn

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        with torch.autocast(wave.device.type, enabled=False):
            feats = torch.log(self.mel(wave.float()) + 1e-6)
        return feats - feats.mean(dim=-1, keepdim=True) if self.cmn else feats


def stats_pool(x: torch.Tensor, dim: int = -1, unbiased: bool = False, floor: float = 1e-5) -> torch.Tensor:
    """Statistics pooling, kdlib's one mean+std pooling: the mean and standard deviation over ``dim``
    (time), concatenated; ``floor`` bounds the variance from below (0 for the exact standard deviation),
    ``unbiased`` divides by n − 1 instead of n."""
    var = x.var(dim, unbiased=unbiased)
    return torch.cat([x.mean(dim), torch.sqrt(var.clamp(min=floor) if floor else var)], dim=-1)


def _mfcc(n_mfcc: int, hop: int, n_mels: int, center: bool = True, sample_rate: int = 16_000):
    """The MFCC transform behind both MFCC features: 25 ms windows (400 samples) every ``hop`` samples."""
    return torchaudio.transforms.MFCC(sample_rate=sample_rate, n_mfcc=n_mfcc, melkwargs={
        "n_fft": 512 if center else 400, "win_length": 400, "hop_length": hop, "n_mels": n_mels, "center": center})


def mfcc_stats(wave: torch.Tensor, n_mfcc: int = 30, sample_rate: int = 16_000) -> torch.Tensor:
    """Mean and (unbiased) standard deviation over time of ``n_mfcc`` MFCCs every 10 ms: ``(batch, 2*n_mfcc)``,
    an utterance vector."""
    if wave.dim() == 1:
        wave = wave.unsqueeze(0)
    feats = _mfcc(n_mfcc, 160, 40, sample_rate=sample_rate).to(wave.device)(wave.float())
    return stats_pool(feats, unbiased=True, floor=0.0)


def mfcc_frames(wave: torch.Tensor, sample_rate: int = 16_000, cmvn: bool = True) -> torch.Tensor:
    """13 MFCCs with deltas and delta-deltas at the SSL frame rate (25 ms windows every 20 ms):
    ``(batch, frames, 39)``. Frame i covers samples [320·i, 320·i + 400), the same as a wav2vec 2.0 / HuBERT
    CNN output frame (HuBERT's first-iteration k-means targets, and the probes' MFCC reference). ``cmvn``
    normalises each utterance's mean and variance (for k-means targets); leave it off for probes, whose
    mean+std pooling would otherwise see only zeros and ones."""
    m = _mfcc(13, 320, 40, center=False, sample_rate=sample_rate).to(wave.device)(wave.float())
    deltas = torchaudio.functional.compute_deltas(m)
    feats = torch.cat([m, deltas, torchaudio.functional.compute_deltas(deltas)], dim=1)
    if cmvn:
        feats = (feats - feats.mean(-1, keepdim=True)) / (feats.std(-1, keepdim=True) + 1e-5)
    return feats.transpose(1, 2)


class MFCCStats(nn.Module):
    """The classic baseline as a module: MFCC mean and std per utterance, z-scored with statistics of a
    training set (``fit``). Without z-scoring, the energy-like coefficients dominate the cosine score."""

    def __init__(self, n_mfcc: int = 30):
        super().__init__()
        self.n_mfcc = n_mfcc
        self.register_buffer("mean", torch.zeros(2 * n_mfcc))
        self.register_buffer("std", torch.ones(2 * n_mfcc))

    @torch.no_grad()
    def fit(self, waves) -> "MFCCStats":
        """Estimate the z-scoring statistics from an iterable of 1-D training waveforms."""
        feats = torch.cat([mfcc_stats(torch.as_tensor(w), self.n_mfcc) for w in waves])
        self.mean.copy_(feats.mean(0))
        self.std.copy_(feats.std(0).clamp(min=1e-5))
        return self

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return (mfcc_stats(wave, self.n_mfcc) - self.mean) / self.std


def mfcc_baseline(source, max_utterances: int = 400) -> MFCCStats:
    """The MFCC-statistics baseline of a source: :class:`MFCCStats` z-scored on about ``max_utterances``
    training sentences, evenly spread over the split."""
    from kdlib.data.datasets import AudioCache

    rows = source.select("train", "sentence")
    if not rows:
        raise ValueError(f"{source.name}: no training sentences to fit the MFCC baseline on")
    audio = AudioCache(source)
    return MFCCStats().fit(audio(r["path"]) for r in rows[:: max(1, len(rows) // max_utterances)])
