"""Architecture names -> constructors. Cards name an architecture and give plain-type arguments;
checkpoints hold only tensors, so loading a model never executes code from the file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .harmonic import HarmonicEnvelopeNet
from .tiny import TinyConvHum
from .unet import SpecUNet

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "tiny-conv": TinyConvHum,
    "spec-unet": SpecUNet,
    "harmonic-net": HarmonicEnvelopeNet,
}


def build(arch: str, arch_args: dict[str, Any]) -> nn.Module:
    """Instantiate architecture ``arch`` with ``arch_args`` (plain JSON types only)."""
    try:
        ctor = ARCHITECTURES[arch]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise KeyError(f"unknown architecture {arch!r} (known: {known})") from None
    return ctor(**arch_args)
