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


def mfcc_stats(wave: torch.Tensor, n_mfcc: int = 30, sample_rate: int = 16_000) -> torch.Tensor:
    """Mean and standard deviation over time of ``n_mfcc`` MFCCs: ``(batch, 2*n_mfcc)``, an utterance vector."""
    if wave.dim() == 1:
        wave = wave.unsqueeze(0)
    mfcc = torchaudio.transforms.MFCC(sample_rate=sample_rate, n_mfcc=n_mfcc,
                                      melkwargs={"n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 40})
    feats = mfcc.to(wave.device)(wave.float())
    return torch.cat([feats.mean(-1), feats.std(-1)], dim=-1)


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
