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
