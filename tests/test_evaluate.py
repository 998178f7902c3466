"""Dataset building and the side-by-side evaluation, on a tiny synthetic clean folder."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from humclean.cli import main
from humclean.example import _musiclike, _speechlike

from .conftest import write_audio


def _clean_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    write_audio(root / "speech" / "s1.flac", _speechlike(16000 * 6, 16000, rng), 16000, "PCM_16")
    write_audio(root / "music" / "m1.flac", _musiclike(16000 * 6, 16000, rng), 16000, "PCM_16")
    return root


def test_dataset_build_writes_pairs_and_metadata(tmp_path: Path) -> None:
    clean = _clean_folder(tmp_path / "clean")
    res = CliRunner().invoke(main, ["dataset", "build", "--clean", str(clean), "--out", str(tmp_path / "ds"),
                                    "--snr", "0,10", "--seed", "3"])  # fmt: skip
    assert res.exit_code == 0, res.output
    with open(tmp_path / "ds" / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    for r in rows:
        assert (tmp_path / "ds" / r["noisy_path"]).is_file() and (tmp_path / "ds" / r["clean_path"]).is_file()
        assert r["recipe"] == "hum-v1" and r["seed"] == "3" and r["split"] in ("train", "val", "test")
    # compare the audio: libsndfile stamps the wall-clock time into a float WAV's PEAK chunk
    first, _ = sf.read(str(tmp_path / "ds" / rows[0]["noisy_path"]))
    CliRunner().invoke(main, ["dataset", "build", "--clean", str(clean), "--out", str(tmp_path / "ds2"),
                              "--snr", "0,10", "--seed", "3"])  # fmt: skip
    again, _ = sf.read(str(tmp_path / "ds2" / rows[0]["noisy_path"]))
    np.testing.assert_array_equal(again, first, err_msg="same seed, same dataset")


def test_evaluate_scores_methods_side_by_side(tmp_path: Path) -> None:
    clean = _clean_folder(tmp_path / "clean")
    out = tmp_path / "results.csv"
    args = ["evaluate", "--clean", str(clean), "--methods", "identity,dsp", "--snr", "0,10", "--out", str(out),
            "--conditions", "",
            "--plot", str(tmp_path / "plot.svg"), "--spectrograms", "1"]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 2
    for r in rows:
        if r["method"] == "identity":
            assert float(r["si_sdr_out"]) == pytest.approx(float(r["snr_db"]), abs=0.2)
    with open(tmp_path / "results-summary.csv", newline="") as f:
        summary = {(r["method"], r["group"]): r for r in csv.DictReader(f)}
    assert float(summary[("dsp", "all")]["si_sdr_out"]) > float(summary[("identity", "all")]["si_sdr_out"]) + 10
    assert {("dsp", "content=speech"), ("dsp", "content=music"), ("dsp", "snr=0")} <= set(summary)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "plot.svg").stat().st_size > 1000
    assert list(tmp_path.glob("plot-*.png"))


def test_extra_conditions_include_do_no_harm_and_bass_notes(tmp_path: Path) -> None:
    from training.evaluate import evaluate, summary_table

    clean = _clean_folder(tmp_path / "clean")
    conds = ["snr-5", "buzz40", "fundamental", "bass", "no-harm"]
    rows, xrt = evaluate(clean, ["identity", "dsp"], [5.0], 0, tmp_path / "work", "cpu", conditions=conds,
                         bass_clips=3, bass_seconds=8.0)  # fmt: skip
    by = {(r.method, r.condition, r.path): r for r in rows}
    # 2 clean files x (1 SNR + snr-5 + buzz40 + fundamental) + 3 bass clips with hum + (2 + 3) without hum
    assert len(rows) == 2 * (2 * 4 + 3 + 5)
    for (method, cond, path), r in by.items():
        if cond == "no-harm":
            assert r.snr_db == float("inf") and r.si_sdr_in == float("inf"), path  # input == reference
            # do no harm: a clean input is either passed through untouched or changed by < -60 dB
            assert r.status == "no_hum" or r.si_sdr_out >= 60.0, (method, path, r.status, r.si_sdr_out)
        elif cond == "snr-5":
            assert r.snr_db == -5.0 and r.si_sdr_in == pytest.approx(-5.0, abs=0.2)
    assert any(r.content == "bass" for r in rows) and any("at-mains" in r.path for r in rows)
    table = {(t["method"], t["group"]): t for t in summary_table(rows, xrt)}
    for cond in conds:
        assert ("dsp", f"cond={cond}") in table
    assert table[("dsp", "cond=no-harm")]["untouched"] >= 0
    assert (
        float(table[("dsp", "cond=fundamental")]["si_sdr_out"])
        > float(table[("identity", "cond=fundamental")]["si_sdr_in"]) + 10
    )  # noqa: E501


def test_training_bass_clips_are_not_the_benchmark_clips(tmp_path: Path) -> None:
    """Bass clips written for training (``first_seed``) never repeat the benchmark's (seeds from 1000)."""
    from training.bass import write_bass_clips

    bench = write_bass_clips(tmp_path / "bench", count=3, seconds=4.0)
    train = write_bass_clips(tmp_path / "train", count=3, seconds=4.0, first_seed=5000)
    assert [p.name for p in bench] == [p.name for p in train]  # same mix of near- and at-mains clips
    for a, b in zip(bench, train, strict=True):
        x, y = sf.read(str(a))[0], sf.read(str(b))[0]
        assert x.shape == y.shape and np.std(y) > 0.01
        assert abs(np.corrcoef(x, y)[0, 1]) < 0.5, a.name


def test_cli_dataset_bass_writes_training_clips(tmp_path: Path) -> None:
    args = ["dataset", "bass", "--out", str(tmp_path / "mix"), "--count", "3", "--seconds", "3"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    clips = sorted((tmp_path / "mix" / "bass").glob("*.wav"))
    assert [p.name for p in clips] == ["bass-00.wav", "bass-01.wav", "bass-02-at-mains.wav"]
    x, rate = sf.read(str(clips[2]))
    assert rate == 16000 and x.shape == (3 * 16000,) and 0.2 < np.max(np.abs(x)) <= 0.3 + 1e-6
    res = CliRunner().invoke(main, ["dataset", "bass", "--out", str(tmp_path / "b"), "--count", "1", "--seconds",
                                    "3", "--first-seed", "1000"])  # fmt: skip
    assert res.exit_code == 0 and "overlap the evaluation" in res.output
    # the help names the benchmark's seeds literally (the CLI does not import training to build it)
    from training.bass import BENCHMARK_FIRST_SEED

    res = CliRunner().invoke(main, ["dataset", "bass", "--help"])
    assert f"use {BENCHMARK_FIRST_SEED} onwards" in " ".join(res.output.split())


@pytest.mark.parametrize(("batch", "threads", "expect"), [(0, 0, (4, 1, "cores")), (3, 2, (3, 2, 1))])
def test_evaluate_runs_each_method_as_humclean_run_would(
    tmp_path: Path, monkeypatch, batch: int, threads: int, expect: tuple
) -> None:
    """Batch size, torch threads and engine workers come from the run policy (0: auto), so the
    x-real-time column is that of ``humclean run``."""
    import os

    import torch

    import training.evaluate as ev

    seen: list[tuple[int, int, int]] = []
    real = ev.Pipeline

    def spy(estimator, options, *a, **kw):  # type: ignore[no-untyped-def]
        seen.append((options.batch_size, torch.get_num_threads(), options.model_workers))
        return real(estimator, options, *a, **kw)

    monkeypatch.setattr(ev, "Pipeline", spy)
    before = torch.get_num_threads()
    try:
        ev.evaluate(_clean_folder(tmp_path / "clean"), ["dsp"], [5.0], 0, tmp_path / "work", "cpu",
                    batch_size=batch, conditions=[], threads=threads)  # fmt: skip
    finally:
        torch.set_num_threads(before)
    workers = (os.cpu_count() or 1) if expect[2] == "cores" else expect[2]
    assert seen and all(s == (expect[0], expect[1], workers) for s in seen)


def test_a_model_folder_method_writes_its_outputs_under_the_work_folder(tmp_path: Path) -> None:
    """``--methods /path/to/model``: the outputs go to the work folder, nothing into (or out of) the model's."""
    import shutil

    from humclean import zoo

    model = tmp_path / "models" / "mine"
    shutil.copytree(zoo.zoo_dir() / zoo.aliases()["default"], model)
    before = sorted(p.relative_to(model) for p in model.rglob("*"))
    clean = _clean_folder(tmp_path / "clean")
    out = tmp_path / "eval" / "results.csv"
    res = CliRunner().invoke(main, ["evaluate", "--clean", str(clean), "--methods", str(model), "--snr", "5",
                                    "--out", str(out), "--conditions", "", "--spectrograms", "0"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert sorted(p.relative_to(model) for p in model.rglob("*")) == before
    outputs = list((tmp_path / "eval" / "results.work" / "out").rglob("*.wav"))
    assert len(outputs) == 2, outputs
    with open(out, newline="") as f:
        assert {r["method"] for r in csv.DictReader(f)} == {str(model)}
