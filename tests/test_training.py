"""Training: on-the-fly data, a tiny run end to end, exact resumption after a kill, export to the zoo, CLI."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from humclean.training.data import CleanStore, HumMixDataset, MixSettings, fixed_set
from humclean.training.export import export
from humclean.training.hum import RECIPES
from humclean.training.train import TrainConfig, TrainEvent, _check_resumable, train
from torch.utils.data import DataLoader

from humclean.errors import UsageError
from humclean.train_cli import export as export_cmd
from humclean.train_cli import train as train_cmd
from humclean.zoo import load, read_card

from .conftest import write_audio

torch.set_num_threads(1)


def _signal(n: int, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    tone = 0.2 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t)
    return (tone + 0.05 * rng.standard_normal(n)) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t) ** 2)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("clean")
    for i in range(3):
        write_audio(root / "train" / "speech" / f"s{i}.wav", _signal(32000, 16000, i), 16000)
    stereo = np.stack([_signal(44100, 22050, 7), _signal(44100, 22050, 8)], axis=1)
    write_audio(root / "train" / "music" / "m.flac", stereo, 22050, subtype="PCM_16")
    write_audio(root / "val" / "v.wav", _signal(48000, 16000, 9), 16000)
    return root / "train", root / "val"


def _config(folders: tuple[Path, Path], out: Path, **kw: object) -> TrainConfig:
    base = dict(
        clean_dir=str(folders[0]), val_dir=str(folders[1]), out_dir=str(out), arch="spec-unet",
        arch_args={"base_channels": 4}, epochs=2, steps_per_epoch=3, batch=2, crop_seconds=0.5,
        val_items=2, val_seconds=1.0, seed=3, device="cpu",
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


class Killed(Exception):
    pass


def _kill_at(kind: str, step: int):
    def callback(ev: TrainEvent) -> None:
        if ev.kind == kind and ev.step == step:
            raise Killed

    return callback


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


@pytest.fixture(scope="module")
def reference_run(folders: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ref"
    events: list[TrainEvent] = []
    assert train(_config(folders, out), events.append) == out
    assert [e.kind for e in events].count("step") == 6
    return out


# --------------------------------------------------------------------------- data


def test_clean_store_resamples_and_mixes_mono(folders: tuple[Path, Path]) -> None:
    store = CleanStore(folders[0])
    assert len(store) == 4 and store.samples.dtype == np.int16
    assert sorted(store.lengths.tolist()) == [32000, 32000, 32000, 32000]  # 2 s of 22.05 kHz -> 32000
    assert store.seconds == pytest.approx(8.0)


def test_items_are_seeded_by_epoch_and_index(folders: tuple[Path, Path]) -> None:
    store = CleanStore(folders[0])
    ds = HumMixDataset(store, 8, seed=5, settings=MixSettings(crop_seconds=0.25, no_hum_fraction=0.0))
    a = [ds[i] for i in range(8)]
    noisy, clean = a[3]
    assert noisy.shape == clean.shape == (4000,) and noisy.dtype == torch.float32
    assert not torch.equal(noisy, clean)
    ds.set_epoch(1)
    assert not torch.equal(ds[3][0], noisy)  # fresh hum (and crop) every epoch
    ds.set_epoch(0)
    assert torch.equal(ds[3][0], noisy)
    # worker processes see the same items
    batches = list(DataLoader(ds, batch_size=4, num_workers=1))
    assert torch.equal(torch.cat([b[0] for b in batches]), torch.stack([x for x, _ in a]))


def test_no_hum_fraction(folders: tuple[Path, Path]) -> None:
    store = CleanStore(folders[0])
    ds = HumMixDataset(store, 4, seed=0, settings=MixSettings(crop_seconds=0.1, no_hum_fraction=1.0))
    assert all(torch.equal(*ds[i]) for i in range(4))
    noisy, clean = fixed_set(store, 3, 0.5, seed=0)
    assert noisy.shape == (3, 8000) and not torch.equal(noisy, clean)
    assert torch.equal(fixed_set(store, 3, 0.5, seed=0)[0], noisy)


# --------------------------------------------------------------------------- training


def test_tiny_run_writes_checkpoint_log_and_best(reference_run: Path) -> None:
    for name in ("checkpoint.pt", "best.pt", "best.json", "config.json", "log.csv"):
        assert (reference_run / name).is_file(), name
    rows = list(csv.DictReader(open(reference_run / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and [int(r["step"]) for r in rows] == [3, 6]
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("train_loss", "val_loss", "val_si_sdr"))
    best = torch.load(reference_run / "best.pt", weights_only=True)  # plain tensors only
    assert all(isinstance(v, torch.Tensor) for v in best.values())
    ckpt = torch.load(reference_run / "checkpoint.pt", weights_only=False)
    assert ckpt["epoch"] == 2 and ckpt["step"] == 6 and ckpt["step_in_epoch"] == 0
    assert not list(reference_run.glob(".*tmp*"))


def test_resume_after_kill_at_epoch_end_is_exact(
    folders: tuple[Path, Path], reference_run: Path, tmp_path: Path
) -> None:
    cfg = _config(folders, tmp_path / "run")
    with pytest.raises(Killed):
        train(cfg, _kill_at("epoch", 3))
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["epoch"] == 1
    with pytest.raises(UsageError, match="resume"):
        train(cfg)
    train(replace(cfg, resume=True))
    ref, got = _state(reference_run / "checkpoint.pt"), _state(tmp_path / "run" / "checkpoint.pt")
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]


def test_resume_mid_epoch_is_exact(folders: tuple[Path, Path], reference_run: Path, tmp_path: Path) -> None:
    cfg = _config(folders, tmp_path / "run", checkpoint_every_steps=1)
    with pytest.raises(Killed):
        train(cfg, _kill_at("step", 5))  # checkpointed at step 5, then killed
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert (ckpt["epoch"], ckpt["step_in_epoch"], ckpt["step"]) == (1, 2, 5)
    events: list[TrainEvent] = []
    train(replace(cfg, resume=True), events.append)
    assert [e.step for e in events if e.kind == "step"] == [6]
    ref, got = _state(reference_run / "checkpoint.pt"), _state(tmp_path / "run" / "checkpoint.pt")
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert (tmp_path / "run" / "best.json").is_file()


def test_resume_refuses_changed_settings(folders: tuple[Path, Path], reference_run: Path) -> None:
    with pytest.raises(UsageError, match="lr"):
        train(_config(folders, reference_run, lr=1e-3, resume=True))
    with pytest.raises(UsageError, match="hum_recipe"):
        train(_config(folders, reference_run, hum_recipe="hum-v2", resume=True))
    # checkpoints written before the option existed trained on hum-v1
    current = {**_config(folders, reference_run).to_dict()}
    _check_resumable({k: v for k, v in current.items() if k != "hum_recipe"}, current)
    with pytest.raises(UsageError, match="hum_recipe"):
        _check_resumable({k: v for k, v in current.items() if k != "hum_recipe"}, {**current, "hum_recipe": "hum-v2"})


def test_hum_recipe_reaches_the_items(folders: tuple[Path, Path]) -> None:
    """The dataset mixes the configured recipe's hum: same crops, other hum (hum-v2 draws more numbers)."""
    store = CleanStore(folders[0], 16000)
    settings = MixSettings(crop_seconds=0.5, no_hum_fraction=0.0)
    v1 = HumMixDataset(store, 16, seed=1, settings=settings)
    v2 = HumMixDataset(store, 16, seed=1, settings=replace(settings, hum_recipe="hum-v2"))
    assert all(torch.equal(v1[i][1], v2[i][1]) for i in range(16))
    assert sum(not torch.equal(v1[i][0], v2[i][0]) for i in range(16)) >= 12


def test_export_gives_loadable_zoo_folder(reference_run: Path, tmp_path: Path) -> None:
    card_path = export(reference_run, tmp_path / "unet-tiny", "unet-tiny", {"notes": "test"})
    card = read_card(card_path.parent)
    assert card["arch"] == "spec-unet" and card["arch_args"] == {"base_channels": 4}
    assert card["sample_rate"] == 16000 and 2 * card["overlap_samples"] < card["chunk_samples"]
    assert set(card["metrics"]) == {"golden_si_sdr", "golden_set"} and card["notes"] == "test"
    assert np.isfinite(card["metrics"]["golden_si_sdr"])
    assert card["training"]["hum_recipe"] == "hum-v1" and card["training"]["epochs_done"] == 2
    json.dumps(card, allow_nan=False)
    est = load(str(card_path.parent), device="cpu")
    chunks = np.zeros((2, est.card.chunk_samples), np.float32)
    chunks[1] = _signal(est.card.chunk_samples, 16000, 1)
    hum = est.estimate(chunks, np.zeros(2, np.int64), np.full(2, np.nan))
    assert hum.shape == chunks.shape and np.all(hum[0] == 0) and np.isfinite(hum).all()


def test_cli_train_and_export(folders: tuple[Path, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli-run"
    args = ["--clean", str(folders[0]), "--val", str(folders[1]), "--out", str(out), "--base-channels", "4",
            "--epochs", "1", "--batch", "2", "--crop-seconds", "0.25", "--steps-per-epoch", "2",
            "--val-items", "1", "--device", "cpu", "--hum-recipe", "hum-v2"]  # fmt: skip
    result = runner.invoke(train_cmd, args)
    assert result.exit_code == 0, result.output
    assert (out / "best.pt").is_file()
    assert json.loads((out / "config.json").read_text())["hum_recipe"] == "hum-v2"
    assert runner.invoke(train_cmd, args).exit_code == 2  # exists, no --resume
    assert runner.invoke(train_cmd, args + ["--resume"]).exit_code == 0  # already finished: no-op
    result = runner.invoke(export_cmd, [str(out), "--to", str(tmp_path / "zoo" / "m"), "--name", "m"])
    assert result.exit_code == 0, result.output
    choices = next(p for p in train_cmd.params if p.name == "hum_recipe").type.choices  # type: ignore[attr-defined]
    assert tuple(choices) == RECIPES  # the CLI's literal list (start-up does not import training)
    card = read_card(tmp_path / "zoo" / "m")
    assert card["arch_args"]["base_channels"] == 4 and card["training"]["hum_recipe"] == "hum-v2"


def test_export_average_is_the_mean_of_the_runs_best_weights(
    folders: tuple[Path, Path], reference_run: Path, tmp_path: Path
) -> None:
    """``export --average``: the zoo weights are the mean of the runs' best weights (up to float16 storage),
    the card lists every run; a run of another model is refused with a usage error."""
    other = tmp_path / "other"
    train(_config(folders, other, seed=4, hum_recipe="hum-v2"), lambda ev: None)
    runner = CliRunner()
    res = runner.invoke(
        export_cmd, [str(reference_run), "--to", str(tmp_path / "zoo" / "soup"), "--name", "soup",
                     "--average", str(other)]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    a = torch.load(reference_run / "best.pt", weights_only=True)
    b = torch.load(other / "best.pt", weights_only=True)
    soup = load(str(tmp_path / "zoo" / "soup"), device="cpu").module.state_dict()
    moved = 0
    for key, value in soup.items():
        mean = (a[key].float() + b[key].float()) / 2
        assert torch.allclose(value.float(), mean, rtol=2e-3, atol=1e-4), key
        moved += int(not torch.allclose(mean, a[key].float()))
    assert moved > 5  # the runs differ, so the mean is neither of them
    runs = read_card(tmp_path / "zoo" / "soup")["training"]["averaged_runs"]
    assert [r["run"] for r in runs] == [str(reference_run), str(other)]
    assert [r["hum_recipe"] for r in runs] == ["hum-v1", "hum-v2"]
    wider = tmp_path / "wider"
    train(_config(folders, wider, arch_args={"base_channels": 6}, epochs=1), lambda ev: None)
    res = runner.invoke(
        export_cmd, [str(reference_run), "--to", str(tmp_path / "zoo" / "bad"), "--name", "bad",
                     "--average", str(wider)]
    )  # fmt: skip
    assert res.exit_code == 2 and "only the same model averages" in res.output
    assert not (tmp_path / "zoo" / "bad").exists()
