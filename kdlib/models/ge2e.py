"""A speaker encoder pretrained on real speech that a PyPI wheel ships: GE2E (Wan et al., ICASSP 2018,
arXiv 1710.10467) as packaged by Resemblyzer (Resemble AI, Apache-2.0, https://github.com/resemble-ai/Resemblyzer).

The wheel ``Resemblyzer==0.1.4`` holds ``resemblyzer/pretrained.pt``: a 3-layer LSTM (256 units) over 40-band
mel power spectrograms (25 ms windows, 10 ms hop, 16 kHz), a linear layer and a ReLU, trained with the
generalised end-to-end loss on real speakers (LibriSpeech, VoxCeleb 1 and 2, per its authors). An utterance
is cut into 1.6 s partials (160 frames) every 77 frames (1.3 per second, the last one kept when 75 % full),
each partial's L2-normalised embedding is averaged, and the mean is normalised again.

This module re-implements that inference from the published description and loads only the weights (so the
package and its ``librosa``/``webrtcvad`` dependencies are not needed). One departure: Resemblyzer trims long
silences with a voice-activity detector before embedding; here only the volume is normalised (to -30 dBFS,
raising quiet clips only); on the real prompts the two agree to a cosine of 0.9999999 (checked against the
package's own code). ``python -m kdlib.data.corpus real build`` (or :func:`fetch_weights`) gets the wheel with
``pip download`` into ``data/cache/wheels/``.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import torch
from torch import nn

from kdlib.runtime import data_dir

WHEEL = "Resemblyzer==0.1.4"
WEIGHTS_IN_WHEEL = "resemblyzer/pretrained.pt"
PARTIAL_FRAMES, PARTIAL_STEP, MIN_COVERAGE = 160, 77, 0.75
HOP = 160


def fetch_weights(dest: str | Path | None = None) -> Path:
    """The path of ``pretrained.pt`` taken out of the wheel, downloading the wheel with ``pip download`` into
    ``dest`` (default ``data/cache/wheels``) when it is not there yet."""
    dest = Path(dest) if dest else data_dir() / "cache" / "wheels"
    weights = dest / "resemblyzer-0.1.4-pretrained.pt"
    if weights.exists():
        return weights
    dest.mkdir(parents=True, exist_ok=True)
    wheels = sorted(dest.glob("[Rr]esemblyzer-0.1.4-*.whl"))
    if not wheels:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), WHEEL],
            capture_output=True,
            text=True,
        )
        wheels = sorted(dest.glob("[Rr]esemblyzer-0.1.4-*.whl"))
        if done.returncode != 0 or not wheels:
            raise RuntimeError(f"pip download {WHEEL} into {dest} failed:\n{done.stderr.strip()[-2000:]}")
    with zipfile.ZipFile(wheels[0]) as whl:
        if WEIGHTS_IN_WHEEL not in whl.namelist():
            raise ValueError(f"{wheels[0]}: no {WEIGHTS_IN_WHEEL} inside")
        weights.write_bytes(whl.read(WEIGHTS_IN_WHEEL))
    return weights


class GE2EEncoder(nn.Module):
    """Waveform ``(batch, samples)`` at 16 kHz -> L2-normalised 256-d speaker embedding ``(batch, 256)``."""

    def __init__(self, hidden: int = 256, layers: int = 3, n_mels: int = 40):
        super().__init__()
        import torchaudio

        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=16_000,
            n_fft=400,
            hop_length=HOP,
            n_mels=n_mels,
            power=2.0,
            norm="slaney",
            mel_scale="slaney",
            pad_mode="constant",
        )
        self.lstm = nn.LSTM(n_mels, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, hidden)

    @staticmethod
    def partial_starts(samples: int) -> list[int]:
        """First frames of the 1.6 s partials of a ``samples``-long clip (Resemblyzer's slicing)."""
        frames = -(-(samples + 1) // HOP)
        starts = list(range(0, max(1, frames - PARTIAL_FRAMES + PARTIAL_STEP + 1), PARTIAL_STEP))
        if len(starts) > 1 and (samples - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP) < MIN_COVERAGE:
            starts = starts[:-1]
        return starts

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        wave = (wave.unsqueeze(0) if wave.dim() == 1 else wave).float()
        rms = wave.pow(2).mean(1, keepdim=True).sqrt().clamp(min=1e-8)
        wave = wave * (10 ** (-30 / 20) / rms).clamp(min=1.0)  # to -30 dBFS, quiet clips raised only
        starts = self.partial_starts(wave.shape[1])
        wave = nn.functional.pad(wave, (0, max(0, (starts[-1] + PARTIAL_FRAMES) * HOP - wave.shape[1])))
        mels = self.mel(wave).transpose(1, 2)  # (batch, frames, bands)
        parts = torch.stack([mels[:, s : s + PARTIAL_FRAMES] for s in starts], 1)  # (batch, partials, 160, bands)
        _, (h, _) = self.lstm(parts.flatten(0, 1))
        emb = nn.functional.normalize(torch.relu(self.linear(h[-1])), dim=1).unflatten(0, parts.shape[:2])
        return nn.functional.normalize(emb.mean(1), dim=1)


def load_ge2e(weights: str | Path | None = None) -> GE2EEncoder:
    """The pretrained encoder in eval mode (weights from :func:`fetch_weights` unless a path is given)."""
    path = Path(weights) if weights else fetch_weights()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
    except Exception as err:
        raise ValueError(f"{path}: not a Resemblyzer checkpoint with a 'model_state' ({err})") from err
    model = GE2EEncoder()
    missing = model.load_state_dict(
        {k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))}, strict=False
    ).missing_keys
    if [k for k in missing if not k.startswith("mel.")]:
        raise ValueError(f"{path}: weights missing for {missing}")
    return model.eval()
