"""The CLI as a user meets it: mirroring, exit codes, dry-run, re-runs, kills, an untouched input tree."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from humclean.cli import main
from humclean.models.base import ModelCard
from humclean.models.tiny import TinyConvHum
from humclean.zoo import save

from .conftest import noise, tree_digest, write_audio


def _hum(n: int, rate: int, f0: float = 50.0) -> np.ndarray:
    t = np.arange(n) / rate
    return sum(a * np.cos(2 * np.pi * k * f0 * t + k) for k, a in enumerate([0.05, 0.02, 0.02, 0.01], 1))


def _archive(root: Path) -> Path:
    src = root / "archive"
    write_audio(
        src / "a" / "tape1.wav", noise(48000 * 3, 2, 1, 0.05) + _hum(48000 * 3, 48000)[:, None], 48000, "PCM_24"
    )
    write_audio(
        src / "a" / "b" / "tape2.flac", noise(44100 * 2, 1, 2, 0.05) + _hum(44100 * 2, 44100, 60.0), 44100, "PCM_16"
    )
    write_audio(src / "clean.wav", noise(16000 * 3, 1, 3, 0.05), 16000, "PCM_16")
    (src / "notes.txt").write_text("not audio, not ours")
    return src


def _invoke(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.output


def _report(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {r["path"]: r for r in csv.DictReader(f)}


def test_run_mirrors_tree_and_reports(tmp_path: Path) -> None:
    src = _archive(tmp_path)
    before = tree_digest(src)
    code, out = _invoke("run", str(src), "--out", str(tmp_path / "clean"), "--model", "dsp", "-q")
    assert code == 0, out
    dst = tmp_path / "clean"
    for rel in ("a/tape1.wav", "a/b/tape2.flac", "clean.wav"):
        i, o = sf.info(str(src / rel)), sf.info(str(dst / rel))
        assert (o.format, o.subtype, o.samplerate, o.channels, o.frames) == (
            i.format,
            i.subtype,
            i.samplerate,
            i.channels,
            i.frames,
        )
    assert not (dst / "notes.txt").exists()
    rows = _report(dst / "humclean-report.csv")
    assert rows["a/tape1.wav"]["status"] == "cleaned"
    assert abs(float(rows["a/tape1.wav"]["f0_hz"]) - 50) < 0.1
    assert rows["a/b/tape2.flac"]["status"] == "cleaned"
    assert abs(float(rows["a/b/tape2.flac"]["f0_hz"]) - 60) < 0.1
    assert rows["clean.wav"]["status"] == "no_hum"
    assert (dst / "clean.wav").read_bytes() == (src / "clean.wav").read_bytes()
    assert (dst / "humclean-report.jsonl").is_file()
    assert tree_digest(src) == before, "input tree must be byte-identical after a run"
    assert not list(dst.rglob("*.humclean-tmp-*"))


def test_exit_1_when_a_file_fails_and_the_batch_goes_on(tmp_path: Path) -> None:
    src = _archive(tmp_path)
    (src / "broken.wav").write_text("this is text, not RIFF")
    (src / "empty.flac").write_bytes(b"")
    code, _ = _invoke("run", str(src), "--out", str(tmp_path / "clean"), "--model", "dsp", "-q")
    assert code == 1
    rows = _report(tmp_path / "clean" / "humclean-report.csv")
    assert rows["broken.wav"]["status"] == "error" and rows["broken.wav"]["error"]
    assert "\n" not in rows["broken.wav"]["error"]
    assert rows["empty.flac"]["status"] == "error"
    assert rows["a/tape1.wav"]["status"] == "cleaned"
    assert not (tmp_path / "clean" / "broken.wav").exists()


@pytest.mark.parametrize("case", ["inside", "same", "missing_out", "unknown_model", "missing_src"])
def test_usage_errors_exit_2(tmp_path: Path, case: str) -> None:
    src = _archive(tmp_path)
    args = {
        "inside": ["run", str(src), "--out", str(src / "cleaned")],
        "same": ["run", str(src), "--out", str(src)],
        "missing_out": ["run", str(src)],
        "unknown_model": ["run", str(src), "--out", str(tmp_path / "o"), "--model", "no-such-model"],
        "missing_src": ["run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
    }[case]
    before = tree_digest(src)
    code, _ = _invoke(*args)
    assert code == 2
    assert tree_digest(src) == before


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    src = _archive(tmp_path)
    code, out = _invoke("run", str(src), "--out", str(tmp_path / "clean"), "--model", "dsp", "--dry-run")
    assert code == 0, out
    assert not (tmp_path / "clean").exists()
    assert "a/tape1.wav" in out and "clean" in out and "no hum" in out
    # with an explicit report path, the dry-run report is written there (and still no audio)
    code, _ = _invoke("run", str(src), "--out", str(tmp_path / "clean"), "--model", "dsp", "--dry-run",
                      "--report", str(tmp_path / "plan.csv"), "-q")  # fmt: skip
    rows = _report(tmp_path / "plan.csv")
    assert rows["a/tape1.wav"]["action"] == "clean"
    assert rows["clean.wav"]["action"].startswith("pass through")
    assert float(rows["a/b/tape2.flac"]["f0_hz"]) == pytest.approx(60, abs=0.1)
    assert not (tmp_path / "clean").exists()


def test_rerun_skips_then_overwrite_redoes(tmp_path: Path) -> None:
    src = _archive(tmp_path)
    dst = tmp_path / "clean"
    assert _invoke("run", str(src), "--out", str(dst), "--model", "dsp", "-q")[0] == 0
    mtime = (dst / "a" / "tape1.wav").stat().st_mtime_ns
    assert _invoke("run", str(src), "--out", str(dst), "--model", "dsp", "-q")[0] == 0
    assert {r["status"] for r in _report(dst / "humclean-report.csv").values()} == {"skipped"}
    assert (dst / "a" / "tape1.wav").stat().st_mtime_ns == mtime
    # touching an input makes it stale
    os.utime(src / "clean.wav", ns=(time.time_ns(), time.time_ns()))
    assert _invoke("run", str(src), "--out", str(dst), "--model", "dsp", "-q")[0] == 0
    rows = _report(dst / "humclean-report.csv")
    assert rows["clean.wav"]["status"] == "no_hum" and rows["a/tape1.wav"]["status"] == "skipped"
    assert _invoke("run", str(src), "--out", str(dst), "--model", "dsp", "--overwrite", "-q")[0] == 0
    assert _report(dst / "humclean-report.csv")["a/tape1.wav"]["status"] == "cleaned"


def test_overlap_changes_the_estimate_and_what_counts_as_up_to_date(tmp_path: Path) -> None:
    """``--overlap`` replaces the card's chunk overlap: another output (different averaging), and an output
    made with another overlap is not up to date; one that does not fit the chunk is a usage error before
    anything is written."""
    src = tmp_path / "archive"
    n = 48000 * 20  # a few 8 s chunks, so the overlap matters
    clean, hum = noise(n, 1, 4, 0.05), _hum(n, 48000)
    write_audio(src / "tape.wav", clean + hum, 48000, "PCM_24")
    outs = {}
    for name, extra in (("card", ()), ("wide", ("--overlap", "3"))):
        code, out = _invoke("run", str(src), "--out", str(tmp_path / name), "--model", "default", "-q", *extra)
        assert code == 0, out
        assert _report(tmp_path / name / "humclean-report.csv")["tape.wav"]["status"] == "cleaned"
        outs[name] = sf.read(tmp_path / name / "tape.wav")[0]
    assert not np.array_equal(outs["card"], outs["wide"])  # the hum averaged over other spans
    for out in outs.values():  # ... and removed either way
        assert np.sqrt(np.mean((out - clean) ** 2)) < 0.05 * np.sqrt(np.mean(hum**2))
    dst = str(tmp_path / "wide")
    assert _invoke("run", str(src), "--out", dst, "--model", "default", "-q", "--overlap", "3")[0] == 0
    assert _report(tmp_path / "wide" / "humclean-report.csv")["tape.wav"]["status"] == "skipped"
    assert _invoke("run", str(src), "--out", dst, "--model", "default", "-q", "--overlap", "2")[0] == 0
    assert _report(tmp_path / "wide" / "humclean-report.csv")["tape.wav"]["status"] == "cleaned"
    code, out = _invoke("run", str(src), "--out", str(tmp_path / "bad"), "--model", "default", "--overlap", "4")
    assert code == 2 and "--overlap must be" in out
    assert not (tmp_path / "bad").exists()
    # evaluate checks every method's chunk before it builds anything
    csv_out = tmp_path / "eval" / "r.csv"
    code, out = _invoke(
        "evaluate", "--clean", str(src), "--methods", "dsp,identity", "--overlap", "3", "--out", str(csv_out)
    )
    assert code == 2 and "identity: --overlap must be" in out
    assert not (tmp_path / "eval").exists()


def test_model_folder_and_reference(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    folder = tmp_path / "tiny"
    save(TinyConvHum(), ModelCard("tiny", 16000, 4000, 500, arch="tiny-conv", arch_args={}), folder)
    rate = 16000
    clean = noise(rate * 2, 1, 4, 0.05)
    write_audio(tmp_path / "ref" / "x.wav", clean, rate, "FLOAT")
    write_audio(tmp_path / "in" / "x.wav", clean + _hum(rate * 2, rate), rate, "FLOAT")
    code, out = _invoke("run", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--model", str(folder),
                        "--reference", str(tmp_path / "ref"), "--batch-size", "3")  # fmt: skip
    assert code == 0, out
    row = _report(tmp_path / "o" / "humclean-report.csv")["x.wav"]
    assert row["model"].startswith("tiny@")
    assert float(row["si_sdr_in"]) < 10 and row["si_sdr_out"] != ""
    # a tampered weights file is refused before any work (usage error)
    (folder / "weights.pt").write_bytes((folder / "weights.pt").read_bytes() + b"x")
    assert _invoke("run", str(tmp_path / "in"), "--out", str(tmp_path / "o2"), "--model", str(folder))[0] == 2


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError):
                continue
    return found


def test_killed_run_leaves_no_partial_file(tmp_path: Path) -> None:
    rate = 48000
    src = tmp_path / "archive"
    n = rate * 40
    write_audio(src / "long.wav", noise(n, 2, 7, 0.05) + _hum(n, rate)[:, None], rate, "PCM_24")
    dst = tmp_path / "clean"
    cmd = [sys.executable, "-m", "humclean.cli", "run", str(src), "--out", str(dst), "--model", "dsp",
           "--segment-seconds", "2", "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(dst.glob(".*humclean-tmp-*")):
        time.sleep(0.05)
    assert list(dst.glob(".*humclean-tmp-*")), "the run never started writing"
    time.sleep(0.3)
    workers = _children(proc.pid)
    cores = os.cpu_count() or 1
    assert len(workers) == (cores if cores > 1 else 0), workers  # one model call per core, each in a worker
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (dst / "long.wav").exists(), "a killed run must not leave a file under its final name"
    # the model's workers see their pipe close and exit: none outlives the run
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.05)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "orphaned model workers"
    # the next run cleans up and completes
    res = subprocess.run(cmd, capture_output=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert sf.info(str(dst / "long.wav")).frames == n
    assert not list(dst.rglob("*.humclean-tmp-*"))


def test_decode_failure_mid_stream_leaves_nothing(tmp_path: Path) -> None:
    """A FLAC cut in half probes fine but fails while streaming: error row, no output, others done."""
    src = _archive(tmp_path)
    rate = 44100
    n = rate * 20
    full = write_audio(tmp_path / "full.flac", noise(n, 2, 8, 0.05) + _hum(n, rate)[:, None], rate, "PCM_16")
    data = full.read_bytes()
    (src / "cut.flac").write_bytes(data[: len(data) // 2])
    code, _ = _invoke(
        "run", str(src), "--out", str(tmp_path / "clean"), "--model", "dsp", "-q", "--segment-seconds", "2"
    )
    assert code == 1
    rows = _report(tmp_path / "clean" / "humclean-report.csv")
    assert rows["cut.flac"]["status"] == "error", rows["cut.flac"]
    assert not (tmp_path / "clean" / "cut.flac").exists()
    assert not list((tmp_path / "clean").rglob("*.humclean-tmp-*"))
    assert rows["a/tape1.wav"]["status"] == "cleaned"


def test_shards_partition_the_tree_and_merge(tmp_path: Path) -> None:
    src = _archive(tmp_path)
    for i in range(6):
        write_audio(src / "more" / f"f{i}.wav", noise(8000, 1, 20 + i, 0.05) + _hum(8000, 8000), 8000, "PCM_16")
    dst = tmp_path / "clean"
    reports = []
    for k in (1, 2, 3):
        code, out = _invoke("run", str(src), "--out", str(dst), "--model", "dsp", "--shard", f"{k}/3", "-q")
        assert code == 0, out
        reports.append(dst / f"humclean-report.shard-{k}-of-3.csv")
    seen = [set(_report(r)) for r in reports]
    assert sum(len(s) for s in seen) == 9 and len(set().union(*seen)) == 9, "each file in exactly one shard"
    code, _ = _invoke("report", "merge", *map(str, reports), "--out", str(tmp_path / "all.csv"))
    assert code == 0
    assert len(_report(tmp_path / "all.csv")) == 9
    # a plain run afterwards sees every shard's manifest: nothing to redo
    assert _invoke("run", str(src), "--out", str(dst), "--model", "dsp", "-q")[0] == 0
    assert {r["status"] for r in _report(dst / "humclean-report.csv").values()} == {"skipped"}
    assert _invoke("run", str(src), "--out", str(dst), "--shard", "4/3")[0] == 2


def test_second_run_on_a_locked_output_tree_is_refused(tmp_path: Path) -> None:
    from humclean.report import DestLock

    src = _archive(tmp_path)
    dst = tmp_path / "clean"
    holder = DestLock(dst)
    assert holder.acquire()
    try:
        code, out = _invoke("run", str(src), "--out", str(dst), "--model", "dsp", "-q")
        assert code == 2 and "another humclean run" in out
        assert not (dst / "a").exists(), "the refused run wrote nothing"
    finally:
        holder.release()
    assert _invoke("run", str(src), "--out", str(dst), "--model", "dsp", "-q")[0] == 0


def test_format_flac_applies_to_lossy_inputs_only_and_keep_mtime(tmp_path: Path) -> None:
    """--format flac: an MP3 becomes name.flac with its tags; a WAV with an ID3 chunk stays WAV, chunk intact."""
    from mutagen.flac import FLAC
    from mutagen.id3 import TIT2, TPE1
    from mutagen.mp3 import MP3
    from mutagen.wave import WAVE

    src = tmp_path / "src"
    rate, n = 44100, 44100 * 3
    write_audio(src / "oral.wav", noise(n, 1, 2, 0.05) + _hum(n, rate), rate, "PCM_16")
    write_audio(src / "talk.mp3", noise(n, 1, 3, 0.05) + _hum(n, rate), rate, "MPEG_LAYER_III", "MP3")
    for path, cls in ((src / "oral.wav", WAVE), (src / "talk.mp3", MP3)):
        f = cls(str(path))
        f.add_tags()
        f.tags.add(TIT2(encoding=3, text="Interview 7"))
        f.tags.add(TPE1(encoding=3, text="A. Speaker"))
        f.save()
    os.utime(src / "oral.wav", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    args = ["run", str(src), "--out", str(tmp_path / "o"), "--model", "dsp", "--format", "flac", "--keep-mtime", "-q"]
    code, out = _invoke(*args)
    assert code == 0, out
    rows = _report(tmp_path / "o" / "humclean-report.csv")
    assert rows["oral.wav"]["status"] == rows["talk.mp3"]["status"] == "cleaned", rows
    assert not (tmp_path / "o" / "talk.mp3").exists()
    f = FLAC(str(tmp_path / "o" / "talk.flac"))
    assert f["title"] == ["Interview 7"] and f["artist"] == ["A. Speaker"]
    assert sf.info(str(tmp_path / "o" / "oral.wav")).format == "WAV"
    assert WAVE(str(tmp_path / "o" / "oral.wav")).tags["TIT2"].text == ["Interview 7"]
    assert (tmp_path / "o" / "oral.wav").stat().st_mtime_ns == 1_600_000_000_000_000_000
    # the re-run finds the renamed output up to date
    assert _invoke(*args)[0] == 0
    assert {r["status"] for r in _report(tmp_path / "o" / "humclean-report.csv").values()} == {"skipped"}


def test_bad_inputs_each_get_one_line_and_the_rest_is_done(tmp_path: Path) -> None:
    """A small corpus of bad inputs next to good ones, plus unicode and very long names that must work."""
    import struct

    src = _archive(tmp_path)
    good = (src / "clean.wav").read_bytes()
    bad = src / "bad"
    bad.mkdir()
    (bad / "zero.wav").write_bytes(b"")
    (bad / "header.wav").write_bytes(good[:20])
    (bad / "text.wav").write_text("RIFF? no, just words\n" * 20)
    fmt = struct.pack("<HHIIHH", 1, 1, 0, 0, 2, 16)  # 0 Hz
    (bad / "zero-rate.wav").write_bytes(
        b"RIFF"
        + struct.pack("<I", 36 + 8)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", 8)
        + b"\0" * 8
    )
    (bad / "cut.wav").write_bytes(good[: len(good) // 2])
    absurd = bytearray(good)
    absurd[40:44] = struct.pack("<I", 0x7FFFFFF0)
    (bad / "absurd-size.wav").write_bytes(bytes(absurd))
    x = np.zeros(16000, dtype=np.float32)
    x[100] = np.nan
    write_audio(bad / "nan.wav", x, 16000, "FLOAT")
    x[100] = np.inf
    write_audio(bad / "inf.wav", x, 16000, "DOUBLE")
    flac = write_audio(tmp_path / "tmp.flac", noise(44100 * 4, 1, 1, 0.05), 44100, "PCM_16").read_bytes()
    (bad / "wrong-ext.mp3").write_bytes(flac)  # a FLAC named .mp3: content decides, it is cleaned or passed
    rate, n = 16000, 16000 * 2
    sig = noise(n, 1, 5, 0.05) + _hum(n, rate)
    write_audio(src / "unicode" / "Überspielung – 東京 ☃.wav", sig, rate, "PCM_16")
    long_name = "x" * 240 + ".wav"
    write_audio(src / "long" / long_name, sig, rate, "PCM_16")
    before = tree_digest(src)
    code, out = _invoke("run", str(src), "--out", str(tmp_path / "o"), "--model", "dsp", "-q")
    assert code == 1
    rows = _report(tmp_path / "o" / "humclean-report.csv")
    for name in (
        "zero.wav",
        "header.wav",
        "text.wav",
        "zero-rate.wav",
        "nan.wav",
        "inf.wav",
        "cut.wav",
        "absurd-size.wav",
    ):
        row = rows[f"bad/{name}"]
        assert row["status"] == "error" and row["error"] and "\n" not in row["error"], row
        assert not (tmp_path / "o" / "bad" / name).exists()
    assert rows["bad/wrong-ext.mp3"]["status"] in ("cleaned", "no_hum")
    assert rows["unicode/Überspielung – 東京 ☃.wav"]["status"] == "cleaned"
    assert rows[f"long/{long_name}"]["status"] == "cleaned"
    assert rows["a/tape1.wav"]["status"] == "cleaned"
    assert tree_digest(src) == before
    assert not list((tmp_path / "o").rglob("*.humclean-tmp-*"))


def test_provenance_records_audio_md5_model_and_levels(tmp_path: Path) -> None:
    import hashlib
    import json

    src = _archive(tmp_path)
    prov = tmp_path / "prov.json"
    code, out = _invoke(
        "run", str(src), "--out", str(tmp_path / "o"), "--model", "dsp", "--provenance", str(prov), "-q"
    )
    assert code == 0, out
    doc = json.loads(prov.read_text())
    assert doc["tool"] == "humclean" and doc["model"]["name"] == "dsp" and doc["model"]["device"] == "cpu"
    files = {f["path"]: f for f in doc["files"]}
    assert set(files) == {"a/tape1.wav", "a/b/tape2.flac", "clean.wav"}

    def md5(path: Path) -> str:
        x, _ = sf.read(str(path), dtype="int32", always_2d=True)
        return hashlib.md5(np.ascontiguousarray(x / 2**31, dtype="<f8").tobytes()).hexdigest()

    tape = files["a/tape1.wav"]
    assert tape["input_audio_md5"] == md5(src / "a" / "tape1.wav")
    assert tape["output_audio_md5"] == md5(tmp_path / "o" / "a" / "tape1.wav") != tape["input_audio_md5"]
    # null: no hum line stands out of its neighbourhood any more (level -inf)
    assert tape["hum_db_in"] > -60 and abs(tape["f0_hz"] - 50) < 0.1
    assert tape["hum_db_out"] is None or tape["hum_db_out"] < tape["hum_db_in"] - 20
    assert files["clean.wav"]["input_audio_md5"] == files["clean.wav"]["output_audio_md5"]
    assert tape["input_sha256"] == hashlib.sha256((src / "a" / "tape1.wav").read_bytes()).hexdigest()


def test_full_disk_fails_the_file_cleanly(tmp_path: Path) -> None:
    """RLIMIT_FSIZE stands in for a full disk: the big output fails with a one-line error, nothing partial
    is left, the small one is written, exit 1."""
    src = tmp_path / "src"
    rate = 48000
    write_audio(src / "small.wav", noise(rate, 1, 1, 0.05) + _hum(rate, rate), rate, "PCM_16")
    write_audio(src / "big.wav", noise(rate * 20, 2, 2, 0.05) + _hum(rate * 20, rate)[:, None], rate, "PCM_24")
    dst = tmp_path / "o"
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))\n"
        "from humclean.cli import main\n"
        f"sys.argv = ['humclean', 'run', {str(src)!r}, '--out', {str(dst)!r}, '--model', 'dsp', '-q']\n"
        "main()\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    rows = _report(dst / "humclean-report.csv")
    assert rows["big.wav"]["status"] == "error" and "\n" not in rows["big.wav"]["error"]
    assert "file size limit" in rows["big.wav"]["error"]
    assert rows["small.wav"]["status"] == "cleaned"
    assert not (dst / "big.wav").exists()
    assert not list(dst.rglob("*.humclean-tmp-*"))
    assert sf.info(str(dst / "small.wav")).frames == rate


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_equals_uninterrupted(tmp_path: Path) -> None:
    import random

    src = tmp_path / "src"
    rate = 48000
    for i in range(3):
        n = rate * (6 + 3 * i)
        write_audio(src / f"t{i}.wav", noise(n, 2, 30 + i, 0.05) + _hum(n, rate)[:, None], rate, "PCM_16")
    write_audio(src / "f.flac", noise(44100 * 8, 1, 9, 0.05) + _hum(44100 * 8, 44100), 44100, "PCM_24")

    def cmd(dst: Path) -> list[str]:
        return [sys.executable, "-m", "humclean.cli", "run", str(src), "--out", str(dst), "--model", "dsp",
                "--segment-seconds", "2", "--jobs", "2", "-q"]  # fmt: skip

    ref = tmp_path / "ref"
    assert subprocess.run(cmd(ref), capture_output=True, timeout=300).returncode == 0
    dst = tmp_path / "killed"
    rng = random.Random(1234)
    for _ in range(3):
        proc = subprocess.Popen(cmd(dst), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 4.0))  # torch import takes ~1.5 s; kills land during the work
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for f in dst.rglob("*.wav"):  # whatever exists under a final name is complete
            if ".humclean-tmp-" not in f.name:
                assert sf.info(str(f)).frames == sf.info(str(src / f.relative_to(dst))).frames
    assert subprocess.run(cmd(dst), capture_output=True, timeout=300).returncode == 0
    for f in sorted(src.iterdir()):
        assert (dst / f.name).read_bytes() == (ref / f.name).read_bytes(), f.name
    assert not list(dst.rglob("*.humclean-tmp-*"))


def _without_root_file_powers(args: list[str]) -> subprocess.CompletedProcess:
    """Run the CLI with CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH dropped, so file modes bind even for root (CI)."""
    import shlex
    import shutil

    if shutil.which("capsh") is None:
        pytest.skip("capsh not installed")
    cmd = shlex.join([sys.executable, "-m", "humclean.cli", *args])
    return subprocess.run(
        ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", cmd],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_unreadable_input_and_read_only_output_tree(tmp_path: Path) -> None:
    src = _archive(tmp_path)
    secret = src / "secret.wav"
    secret.write_bytes((src / "clean.wav").read_bytes())
    secret.chmod(0)
    before = tree_digest(src.joinpath("a"))
    res = _without_root_file_powers(["run", str(src), "--out", str(tmp_path / "o"), "--model", "dsp", "-q"])
    assert res.returncode == 1, res.stderr
    rows = _report(tmp_path / "o" / "humclean-report.csv")
    assert rows["secret.wav"]["status"] == "error" and "Permission denied" in rows["secret.wav"]["error"]
    assert rows["a/tape1.wav"]["status"] == "cleaned"
    assert tree_digest(src.joinpath("a")) == before
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    res = _without_root_file_powers(["run", str(src), "--out", str(ro), "--model", "dsp", "-q"])
    assert res.returncode == 2 and "not writable" in res.stderr
    assert list(ro.iterdir()) == []
    secret.chmod(0o644)


def test_mp3_keeps_every_id3v2_frame_and_id3v1(tmp_path: Path) -> None:
    from mutagen.id3 import APIC, COMM, ID3, TIT2, TXXX

    src = tmp_path / "src"
    rate, n = 44100, 44100 * 3
    mp3 = write_audio(src / "talk.mp3", noise(n, 1, 3, 0.05) + _hum(n, rate), rate, "MPEG_LAYER_III", "MP3")
    tags = ID3()
    tags.add(TIT2(encoding=3, text="Oral history 12"))
    tags.add(COMM(encoding=3, lang="eng", desc="note", text="side A"))
    tags.add(TXXX(encoding=3, desc="archive-id", text="OH-0012"))
    tags.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="cover", data=b"\xff\xd8fakejpeg"))
    tags.save(str(mp3), v1=2, v2_version=3)
    code, out = _invoke("run", str(src), "--out", str(tmp_path / "o"), "--model", "dsp", "-q")
    assert code == 0, out
    assert _report(tmp_path / "o" / "humclean-report.csv")["talk.mp3"]["status"] == "cleaned"
    a, b = ID3(str(mp3)), ID3(str(tmp_path / "o" / "talk.mp3"))
    assert sorted(a.keys()) == sorted(b.keys())
    for key in a.keys():
        assert a[key] == b[key], key
    assert b.version[1] == 3
    raw = (tmp_path / "o" / "talk.mp3").read_bytes()
    assert raw[-128:-125] == b"TAG" and b"Oral history 12" in raw[-128:]


@pytest.mark.parametrize(("subtype", "rate"), [("VORBIS", 44100), ("OPUS", 48000)])
def test_ogg_comments_survive(tmp_path: Path, subtype: str, rate: int) -> None:
    import mutagen

    src = tmp_path / "src"
    n = rate * 3
    path = write_audio(src / "tape.ogg", noise(n, 2, 3, 0.05) + _hum(n, rate)[:, None], rate, subtype, "OGG")
    f = mutagen.File(str(path))
    f["title"] = "Reel 4"
    f["comment"] = ["transfer 2019", "side B"]
    f.save()
    code, out = _invoke("run", str(src), "--out", str(tmp_path / "o"), "--model", "dsp", "-q")
    assert code == 0, out
    assert _report(tmp_path / "o" / "humclean-report.csv")["tape.ogg"]["status"] == "cleaned"
    g = mutagen.File(str(tmp_path / "o" / "tape.ogg"))
    assert type(g) is type(f)
    assert list(g.tags) == list(mutagen.File(str(path)).tags)
    assert sf.info(str(tmp_path / "o" / "tape.ogg")).subtype == subtype


def test_m4a_atoms_survive(tmp_path: Path) -> None:
    import shutil

    from mutagen.mp4 import MP4, MP4Cover

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    rate, n = 44100, 44100 * 3
    write_audio(tmp_path / "w.wav", noise(n, 2, 3, 0.05) + _hum(n, rate)[:, None], rate, "PCM_16")
    src = tmp_path / "src"
    src.mkdir()
    m4a = src / "talk.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "w.wav"), "-c:a", "aac", "-b:a", "128k", str(m4a)],
                   check=True)  # fmt: skip
    f = MP4(str(m4a))
    f["\xa9nam"] = ["Panel discussion"]
    f["\xa9ART"] = ["Archive"]
    f["covr"] = [MP4Cover(b"\x89PNG fake", imageformat=MP4Cover.FORMAT_PNG)]
    f.save()
    code, out = _invoke("run", str(src), "--out", str(tmp_path / "o"), "--model", "dsp", "-q")
    assert code == 0, out
    g = MP4(str(tmp_path / "o" / "talk.m4a"))
    for key in ("\xa9nam", "\xa9ART", "covr"):
        assert g[key] == MP4(str(m4a))[key], key
