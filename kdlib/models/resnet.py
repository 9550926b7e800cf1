"""ResNet-34 for speaker verification (He et al. 2016 blocks; the layout of the VoxCeleb ResNet-34 systems).

Log-mel input as a one-channel image, four stages of basic blocks [3, 4, 6, 3] with ``base`` channels
doubling per stage, statistics pooling over time, a linear embedding. ``base=32`` and a 256-d embedding
give about 6.6 M parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from kdlib.data.features import stats_pool


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.skip(x))


class ResNetSV(nn.Module):
    """A ResNet speaker embedding extractor on ``(batch, n_mels, frames)`` log-mel features;
    ``ResNet34()`` builds the [3, 4, 6, 3] variant."""

    def __init__(self, layers=(3, 4, 6, 3), base: int = 32, embed_dim: int = 256, n_mels: int = 80):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, base, 3, 1, 1, bias=False), nn.BatchNorm2d(base), nn.ReLU())
        stages, cin = [], base
        for i, n in enumerate(layers):
            cout = base * 2**i
            stages += [BasicBlock(cin, cout, 1 if i == 0 else 2)] + [BasicBlock(cout, cout) for _ in range(n - 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        freq_out = (n_mels + 2 ** (len(layers) - 1) - 1) // 2 ** (len(layers) - 1)
        self.embed = nn.Linear(2 * cin * freq_out, embed_dim)
        self.embed_dim, self.n_mels = embed_dim, n_mels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x.unsqueeze(1)))  # (batch, channels, freq, time)
        return self.embed(stats_pool(x.flatten(1, 2)))


def ResNet34(base: int = 32, embed_dim: int = 256, **kwargs) -> ResNetSV:
    return ResNetSV((3, 4, 6, 3), base, embed_dim, **kwargs)
