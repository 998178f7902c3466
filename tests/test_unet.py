"""The spectrogram U-Net: shapes for any length, silence in -> silence out, size, registry and zoo round-trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from humclean.models.base import ModelCard
from humclean.models.registry import ARCHITECTURES, build
from humclean.models.unet import SpecUNet
from humclean.zoo import load, save

torch.set_num_threads(1)


def _small(**kw: object) -> SpecUNet:
    torch.manual_seed(0)
    return SpecUNet(base_channels=4, **kw).eval()  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [1, 64, 511, 512, 513, 1025, 8193])
def test_any_length_gives_same_shape_and_finite_hum(length: int) -> None:
    model = _small()
    x = torch.randn(3, length) * 0.1
    with torch.inference_mode():
        hum = model(x)
    assert hum.shape == x.shape and hum.dtype == torch.float32
    assert torch.isfinite(hum).all()


def test_zero_input_gives_zero_hum_and_gradients_stay_finite() -> None:
    model = _small().train()
    x = torch.zeros(2, 4000, requires_grad=True)
    hum = model(x)
    assert torch.equal(hum, torch.zeros_like(hum))
    hum.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_level_independent() -> None:
    model = _small()
    x = torch.randn(2, 6000) * 0.05
    with torch.inference_mode():
        a, b = model(x), model(1e-3 * x)
    torch.testing.assert_close(b, 1e-3 * a, rtol=1e-4, atol=1e-9)


def test_mask_of_one_returns_no_hum() -> None:
    """With the mask forced to 1 the STFT round trip must give (almost) exactly zero hum."""
    model = _small()
    model.mask = lambda features: torch.ones_like(features)  # type: ignore[method-assign]
    x = torch.randn(2, 5000)
    with torch.inference_mode():
        hum = model(x)
    assert float(hum.abs().max()) < 1e-5


def test_odd_depth_and_transposed_convs() -> None:
    model = SpecUNet(base_channels=4, depth=3, bilinear=False).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3000)).shape == (1, 3000)


def test_parameter_count_at_base_32() -> None:
    n = sum(p.numel() for p in SpecUNet(base_channels=32).parameters())
    assert 4.0e6 <= n <= 4.6e6


def test_registry_build_and_zoo_round_trip(tmp_path) -> None:
    assert ARCHITECTURES["spec-unet"] is SpecUNet
    args = {"n_fft": 512, "hop": 128, "base_channels": 4, "depth": 4, "bilinear": True}
    torch.manual_seed(1)
    model = build("spec-unet", args).eval()
    # move BatchNorm statistics away from their defaults so that the round trip has something to carry
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 8000))
    model.eval()
    card = ModelCard(name="unet-test", sample_rate=16000, chunk_samples=8000, overlap_samples=1000,
                     arch="spec-unet", arch_args=args)  # fmt: skip
    save(model, card, tmp_path / "unet-test")
    est = load(str(tmp_path / "unet-test"), device="cpu")
    assert est.card.arch == "spec-unet" and est.card.arch_args == args
    chunks = (np.random.default_rng(0).standard_normal((3, 8000)) * 0.1).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(chunks)).numpy()
    got = est.estimate(chunks, np.zeros(3, np.int64), np.full(3, np.nan))
    np.testing.assert_array_equal(got, expected)
