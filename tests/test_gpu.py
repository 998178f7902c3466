"""CUDA paths: every zoo model on the GPU, `humclean run --device auto`, batch sizing, training with AMP.

Marked ``gpu`` and skipped where torch sees no CUDA device (CI runs ``-m "not gpu"``); on a GPU server:
``python -m pytest -q -m gpu``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from humclean.training.export import export
from humclean.training.golden import golden_si_sdr, write_golden_set
from humclean.training.train import TrainConfig, train

from humclean import zoo
from humclean.cli import main
from humclean.models.torch_estimator import CPU_BATCH, TorchEstimator, auto_batch_size

from .conftest import noise, write_audio
from .humsynth import add_hum, si_sdr, synth_hum

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

TOLERANCE_DB = 0.5  # as the CPU golden tests


@pytest.mark.parametrize("name", zoo.released())
def test_released_model_golden_on_cuda(name: str) -> None:
    est = zoo.load(name, "cuda")
    assert isinstance(est, TorchEstimator) and est.device.type == "cuda"
    expected = zoo.describe(name)["metrics"]["golden_si_sdr"]
    assert golden_si_sdr(est) == pytest.approx(expected, abs=TOLERANCE_DB)


def test_auto_batch_fills_the_gpu_and_that_batch_runs() -> None:
    est = zoo.load("default", "auto")
    assert isinstance(est, TorchEstimator) and est.device.type == "cuda"
    batch = auto_batch_size(est)
    assert CPU_BATCH < batch <= 512
    rng = np.random.default_rng(0)
    n = est.card.chunk_samples
    chunks = np.stack([noise(n, 1, i, 0.05) + 0.02 * synth_hum(n, est.card.sample_rate, rng)[0] for i in range(batch)])
    hum = est.estimate(chunks.astype(np.float32), np.zeros(batch, np.int64), np.full(batch, np.nan))
    assert hum.shape == chunks.shape and np.isfinite(hum).all()
    # one row alone gives the same hum as inside the full batch
    one = est.estimate(chunks[:1].astype(np.float32), np.zeros(1, np.int64), np.full(1, np.nan))
    assert si_sdr(one[0], hum[0]) > 60


def test_run_device_auto_uses_cuda_and_matches_the_cpu(tmp_path: Path) -> None:
    rate, n = 48000, 48000 * 12
    rng = np.random.default_rng(5)
    clean = noise(n, 2, 1, 0.05) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * np.arange(n) / rate))[:, None]
    hum_unit, _ = synth_hum(n, rate, rng, mains_hz=50, profile="rich", n_harmonics=20)
    noisy = np.stack([add_hum(clean[:, c], hum_unit, 5.0)[0] for c in range(2)], axis=1)
    src = write_audio(tmp_path / "in" / "tape.wav", noisy, rate, "PCM_24").parent
    write_audio(tmp_path / "ref" / "tape.wav", clean, rate, "FLOAT")
    scores = {}
    for device in ("auto", "cpu"):
        out, prov = tmp_path / f"out-{device}", tmp_path / f"prov-{device}.json"
        res = CliRunner().invoke(
            main,
            ["run", str(src), "--out", str(out), "--device", device, "--provenance", str(prov), "-q"],
            catch_exceptions=False,
        )
        assert res.exit_code == 0, res.output
        model = json.loads(prov.read_text())["model"]
        assert model["device"] == ("cuda:0" if device == "auto" else "cpu")
        info = sf.info(str(out / "tape.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (rate, 2, "PCM_24")
        y, _ = sf.read(str(out / "tape.wav"))
        scores[device] = [si_sdr(y[:, c], clean[:, c]) for c in range(2)]
    assert min(scores["auto"]) > 25
    assert np.allclose(scores["auto"], scores["cpu"], atol=TOLERANCE_DB), scores


def test_a_missing_gpu_index_is_a_usage_error(tmp_path: Path) -> None:
    src = write_audio(tmp_path / "in" / "a.wav", noise(16000, 1, 1), 16000).parent
    n = torch.cuda.device_count()
    res = CliRunner().invoke(main, ["run", str(src), "--out", str(tmp_path / "o"), "--device", f"cuda:{n}"])
    assert res.exit_code == 2 and f"only {n} CUDA device" in res.output
    assert not (tmp_path / "o").exists()


def _golden_chunks(tmp_path: Path, rate: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The golden set's noisy and clean files at ``rate``, cut to ``n`` samples: ``[6, n]`` each."""
    from humclean.resample import resample

    noisy_dir, clean_dir = write_golden_set(tmp_path / "golden")
    rows = []
    for folder in (noisy_dir, clean_dir):
        sigs = [sf.read(str(p), dtype="float32")[0] for p in sorted(folder.glob("*.wav"))]
        rows.append(torch.from_numpy(np.stack([resample(s, 16000, rate)[:n] for s in sigs]).astype(np.float32)))
    return rows[0], rows[1]


def test_harmonic_net_under_cuda_autocast_keeps_float32_accuracy(tmp_path: Path) -> None:
    """Training on CUDA runs the forward pass under bfloat16 autocast (``--amp``, on by default): the
    estimate must keep its float32 accuracy (the analysis and synthesis are complex-valued float32)."""
    est = zoo.load("default", "cuda")
    net = est.module
    noisy, clean = _golden_chunks(tmp_path, est.card.sample_rate, est.card.chunk_samples)
    noisy, clean = noisy.cuda(), clean.cuda()
    with torch.inference_mode():
        plain = noisy - net(noisy)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            amp = noisy - net(noisy).float()
    for i in range(noisy.shape[0]):
        a, b, c = plain[i].cpu().numpy(), amp[i].cpu().numpy(), clean[i].cpu().numpy()
        assert si_sdr(b, c) == pytest.approx(si_sdr(a, c), abs=1.0)


@pytest.mark.parametrize("arch,args", [("harmonic-net", {"channels": 8}), ("spec-unet", {"base_channels": 4})])
def test_training_on_cuda_with_amp_exports_a_model_that_runs_on_the_cpu(
    tmp_path: Path, arch: str, args: dict[str, int]
) -> None:
    root = tmp_path / "clean"
    for i in range(3):
        write_audio(root / "train" / f"s{i}.wav", noise(32000, 1, i, 0.1), 16000)
    write_audio(root / "val" / "v.wav", noise(48000, 1, 9, 0.1), 16000)
    out = tmp_path / "run"
    cfg = TrainConfig(
        clean_dir=str(root / "train"), val_dir=str(root / "val"), out_dir=str(out), arch=arch, arch_args=args,
        epochs=1, steps_per_epoch=3, batch=4, crop_seconds=1.0, val_items=2, val_seconds=1.0, seed=3,
        device="cuda", amp=True,
    )  # fmt: skip
    assert train(cfg) == out
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert rows and all(np.isfinite(float(r[k])) for r in rows for k in ("train_loss", "val_loss", "val_si_sdr"))
    card_path = export(out, tmp_path / "zoo" / "m", "m", measure_golden=False)
    est = zoo.load(str(card_path.parent), device="cpu")
    n = est.card.chunk_samples
    chunks = np.stack([noise(n, 1, 1, 0.05), noise(n, 1, 2, 0.05)]).astype(np.float32)
    hum = est.estimate(chunks, np.zeros(2, np.int64), np.full(2, np.nan))
    assert hum.shape == chunks.shape and np.isfinite(hum).all()
