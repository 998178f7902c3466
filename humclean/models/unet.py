"""Spectrogram U-Net hum estimator (after Oh, Kim & Yun 2018; layout as in milesial's Pytorch-UNet).

``[B, T] -> [B, T]`` hum. Each chunk is divided by its RMS (level independence), turned into an
STFT (Hann, ``n_fft`` 1024, hop 256, ``center=True``); a compressed magnitude (``log1p``) goes through a
2-D U-Net (``depth`` max-pool stages down, bilinear up-sampling + skip concatenation up, double
3x3 conv + BatchNorm + ReLU per stage) that predicts a sigmoid mask over the magnitude. The clean
estimate is ``mask * STFT`` brought back by the inverse STFT; the module returns
``hum = x - clean_estimate`` at the chunk's own level. The STFT and its inverse always run in
float32, also under autocast. A zero chunk gives zero hum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_RMS_FLOOR = 1e-7


class DoubleConv(nn.Module):
    """(3x3 conv -> BatchNorm -> ReLU) x 2."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None) -> None:
        super().__init__()
        mid = mid_channels or out_channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Down(nn.Module):
    """2x2 max-pool then a double conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Up(nn.Module):
    """Up-sample by 2, concatenate the skip connection, double conv."""

    def __init__(self, in_channels: int, out_channels: int, bilinear: bool) -> None:
        super().__init__()
        self.up: nn.Module
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        dy, dx = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        if dy or dx:  # cannot happen with inputs padded to multiples of 2**depth; kept for safety
            x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class SpecUNet(nn.Module):
    """Magnitude-mask U-Net: ``forward([B, T] float32) -> [B, T]`` hum estimate.

    ``base_channels`` 32 with ``depth`` 4 and bilinear up-sampling gives about 4.3 M parameters.
    """

    def __init__(
        self,
        n_fft: int = 1024,
        hop: int = 256,
        base_channels: int = 32,
        depth: int = 4,
        bilinear: bool = True,
    ) -> None:
        super().__init__()
        if n_fft < 2 or hop < 1 or hop > n_fft:
            raise ValueError("need n_fft >= 2 and 1 <= hop <= n_fft")
        if depth < 1 or base_channels < 1:
            raise ValueError("need depth >= 1 and base_channels >= 1")
        self.n_fft, self.hop, self.depth = n_fft, hop, depth
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        factor = 2 if bilinear else 1
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.inc = DoubleConv(1, widths[0])
        self.downs = nn.ModuleList(
            Down(widths[i], widths[i + 1] // (factor if i == depth - 1 else 1)) for i in range(depth)
        )
        self.ups = nn.ModuleList(
            Up(widths[i + 1], widths[i] // (factor if i > 0 else 1), bilinear) for i in reversed(range(depth))
        )
        self.outc = nn.Conv2d(widths[0], 1, kernel_size=1)

    def mask(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, F, N]`` compressed magnitude -> ``[B, F, N]`` mask in (0, 1), any F and N."""
        f, n = features.shape[-2:]
        m = 2**self.depth
        x = F.pad(features.unsqueeze(1), [0, (-n) % m, 0, (-f) % m])
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return torch.sigmoid(self.outc(x))[:, 0, :f, :n]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, T]`` noisy chunks -> ``[B, T]`` hum estimate (same dtype as ``x``)."""
        if x.dim() != 2:
            raise ValueError(f"expected [B, T], got shape {tuple(x.shape)}")
        length = x.shape[-1]
        with torch.autocast(device_type=x.device.type, enabled=False):
            xf = x.float()
            # torch.stft's reflect padding needs more than n_fft // 2 samples: zero-pad short chunks
            min_len = self.n_fft // 2 + 1
            xp = F.pad(xf, [0, min_len - length]) if length < min_len else xf
            scale = xp.pow(2).mean(dim=-1, keepdim=True).clamp_min(_RMS_FLOOR**2).sqrt()
            xn = xp / scale
            spec = torch.stft(xn, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
            features = torch.log1p(spec.abs())
        mask = self.mask(features)
        with torch.autocast(device_type=x.device.type, enabled=False):
            clean = torch.istft(
                spec * mask.float(),
                self.n_fft,
                self.hop,
                window=self.window,
                center=True,
                length=xp.shape[-1],
            )
            hum = (xn - clean) * scale
        return hum[:, :length].to(x.dtype)
