"""Wraps a ``torch.nn.Module`` (``[B, T] -> [B, T]`` hum) as a :class:`HumEstimator` on a device."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import HumEstimator, ModelCard


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> first CUDA device when there is one, else CPU; ``cpu``; ``cuda`` or ``cuda:N``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {spec!r} (use auto, cpu, cuda or cuda:N)")
    return device


class TorchEstimator(HumEstimator):
    """Runs ``module`` in eval mode under ``torch.inference_mode`` on ``device``."""

    def __init__(self, module: nn.Module, card: ModelCard, device: torch.device) -> None:
        self.card = card
        self.device = device
        self.module = module.to(device).eval()

    @property
    def device_name(self) -> str:
        return str(self.device)

    def estimate(self, chunks: np.ndarray, starts: np.ndarray, f0_hz: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(chunks, dtype=np.float32))
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        with torch.inference_mode():
            y = self.module(x)
        return y.float().cpu().numpy()
