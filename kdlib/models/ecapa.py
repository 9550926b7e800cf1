"""ECAPA-TDNN (Desplanques, Thienpondt, Demuynck, Interspeech 2020), channel width configurable.

C=512 with a 192-d embedding has about 6.2 M parameters, as in the paper's Table 1.
"""

from __future__ import annotations

import torch
from torch import nn


class _ConvReluBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 1, dilation: int = 1):
        super().__init__(
            nn.Conv1d(cin, cout, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2),
            nn.ReLU(),
            nn.BatchNorm1d(cout),
        )


class SEBlock(nn.Module):
    """Squeeze-excitation over channels with a ``bottleneck``-wide hidden layer."""

    def __init__(self, channels: int, bottleneck: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(channels, bottleneck, 1), nn.ReLU(), nn.Conv1d(bottleneck, channels, 1), nn.Sigmoid()
        )

    def forward(self, x):
        return x * self.net(x.mean(-1, keepdim=True))


class SERes2Block(nn.Module):
    """1×1 conv → Res2Net dilated convs (``scale`` groups, hierarchical) → 1×1 conv → SE, plus a residual."""

    def __init__(self, channels: int, kernel: int, dilation: int, scale: int = 8, se_bottleneck: int = 128):
        super().__init__()
        if channels % scale:
            raise ValueError(f"channels ({channels}) must be divisible by scale ({scale})")
        self.scale, width = scale, channels // scale
        self.conv_in = _ConvReluBN(channels, channels)
        self.convs = nn.ModuleList(_ConvReluBN(width, width, kernel, dilation) for _ in range(scale - 1))
        self.conv_out = _ConvReluBN(channels, channels)
        self.se = SEBlock(channels, se_bottleneck)

    def forward(self, x):
        chunks = torch.chunk(self.conv_in(x), self.scale, dim=1)
        outs, y = [], None
        for i, conv in enumerate(self.convs):
            y = conv(chunks[i] if y is None else chunks[i] + y)
            outs.append(y)
        outs.append(chunks[-1])
        return x + self.se(self.conv_out(torch.cat(outs, dim=1)))


class AttentiveStatsPool(nn.Module):
    """Channel- and context-dependent attentive statistics pooling (ECAPA's global-context variant)."""

    def __init__(self, channels: int, attention: int = 128):
        super().__init__()
        self.attn = nn.Sequential(
            nn.Conv1d(channels * 3, attention, 1),
            nn.ReLU(),
            nn.BatchNorm1d(attention),
            nn.Tanh(),
            nn.Conv1d(attention, channels, 1),
        )

    def forward(self, x):
        t = x.shape[-1]
        mean = x.mean(-1, keepdim=True).expand(-1, -1, t)
        std = torch.sqrt(x.var(-1, keepdim=True, unbiased=False).clamp(min=1e-4)).expand(-1, -1, t)
        w = torch.softmax(self.attn(torch.cat([x, mean, std], dim=1)), dim=-1)
        mu = (x * w).sum(-1)
        sigma = torch.sqrt((((x * x) * w).sum(-1) - mu * mu).clamp(min=1e-4))
        return torch.cat([mu, sigma], dim=1)


class ECAPA_TDNN(nn.Module):
    """ECAPA-TDNN speaker embedding extractor: ``(batch, n_mels, frames)`` features in (log-mels, or an SSL
    model's hidden states with ``n_mels`` = their width), ``(batch, embed_dim)`` embeddings out. Wrap it in
    :class:`kdlib.models.SpeakerModel` for audio input.

    ``input_norm`` standardises each input channel first: ``"instance"`` over each utterance's frames (no
    weights; OS-KDFT's backend on SSL hidden states, also ``instance_norm=True``), which removes every
    utterance's per-channel mean, or ``"batch"`` with the training batches' statistics (``BatchNorm1d``), which
    keeps it. ``None``: the features as they come."""

    def __init__(
        self,
        channels: int = 512,
        embed_dim: int = 192,
        n_mels: int = 80,
        scale: int = 8,
        mfa_channels: int | None = None,
        instance_norm: bool = False,
        input_norm: str | None = None,
    ):
        super().__init__()
        mfa = mfa_channels or 3 * channels
        if instance_norm and input_norm not in (None, "instance"):
            raise ValueError(f"instance_norm=True and input_norm={input_norm!r} contradict each other")
        input_norm = "instance" if instance_norm else input_norm
        norms = {None: nn.Identity, "instance": nn.InstanceNorm1d, "batch": nn.BatchNorm1d}
        if input_norm not in norms:
            raise ValueError(f"input_norm must be None, 'instance' or 'batch', got {input_norm!r}")
        self.input_norm = norms[input_norm](n_mels)  # nn.Identity ignores the width
        self.layer1 = _ConvReluBN(n_mels, channels, kernel=5)
        self.blocks = nn.ModuleList(SERes2Block(channels, 3, d, scale) for d in (2, 3, 4))
        self.mfa = nn.Sequential(nn.Conv1d(3 * channels, mfa, 1), nn.ReLU())
        self.pool = AttentiveStatsPool(mfa)
        self.bn_pool = nn.BatchNorm1d(2 * mfa)
        self.embed = nn.Linear(2 * mfa, embed_dim)
        self.bn_embed = nn.BatchNorm1d(embed_dim)
        self.embed_dim, self.n_mels, self.channels = embed_dim, n_mels, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.input_norm(x))
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        x = self.mfa(torch.cat(outs, dim=1))
        return self.bn_embed(self.embed(self.bn_pool(self.pool(x))))
