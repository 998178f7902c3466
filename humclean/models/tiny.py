"""A small seeded convolutional hum estimator.

It is not trained to be good; it exists so that the pipeline's batching, device handling and zoo
loading can be tested with a real ``torch.nn.Module`` before trained models land.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyConvHum(nn.Module):
    """``[B, T] -> [B, T]``: a few dilated 1-D convolutions with a residual scale."""

    def __init__(self, channels: int = 8, layers: int = 3, kernel_size: int = 9) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv1d(1, channels, kernel_size, padding=kernel_size // 2)]
        for i in range(1, layers):
            d = 2**i
            mods += [nn.Tanh(), nn.Conv1d(channels, channels, kernel_size, padding=d * (kernel_size // 2), dilation=d)]
        mods += [nn.Tanh(), nn.Conv1d(channels, 1, 1)]
        self.net = nn.Sequential(*mods)
        self.scale = nn.Parameter(torch.tensor(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.net(x.unsqueeze(1)).squeeze(1)
