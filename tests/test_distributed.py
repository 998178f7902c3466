"""Dask scale-out: a LocalCluster on loopback (two worker processes) must equal a local run."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

distributed = pytest.importorskip("distributed")

from humclean import zoo  # noqa: E402
from humclean.discover import discover  # noqa: E402
from humclean.distributed import run_on_dask  # noqa: E402
from humclean.pipeline import Pipeline, RunOptions  # noqa: E402
from humclean.report import Manifest  # noqa: E402

from .conftest import noise, write_audio  # noqa: E402


def _hum(n: int, rate: int) -> np.ndarray:
    t = np.arange(n) / rate
    return 0.05 * np.cos(2 * np.pi * 50 * t) + 0.02 * np.cos(2 * np.pi * 150 * t + 1)


def _archive(root: Path, files: int = 6, seconds: float = 3.0) -> Path:
    for i in range(files):
        rate = (16000, 44100, 48000)[i % 3]
        n = int(seconds * rate)
        write_audio(root / f"d{i % 2}" / f"f{i}.wav", noise(n, 2, i, 0.05) + _hum(n, rate)[:, None], rate, "PCM_24")
    return root


@pytest.fixture(scope="module")
def cluster():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = distributed.Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()


def _records(pipeline_dst: Path, src: Path, client=None) -> dict:
    tasks, _ = discover([src], pipeline_dst)
    pipe = Pipeline(zoo.load("dsp"), RunOptions(jobs=2), Manifest(pipeline_dst / ".humclean" / "manifest.jsonl"))
    recs = run_on_dask(pipe, tasks, client, "dsp", "cpu") if client is not None else pipe.run(tasks)
    return {r.path: r for r in recs}


def test_distributed_run_equals_local_run(tmp_path: Path, cluster) -> None:
    _, client = cluster
    src = _archive(tmp_path / "src")
    local = _records(tmp_path / "local", src)
    dist = _records(tmp_path / "dist", src, client)
    assert set(local) == set(dist)
    for path, rec in local.items():
        assert rec.status == dist[path].status == "cleaned"
        a, _ = sf.read(str(tmp_path / "local" / path), dtype="int32")
        b, _ = sf.read(str(tmp_path / "dist" / path), dtype="int32")
        np.testing.assert_array_equal(a, b)
    # the client wrote the manifest: a second distributed run skips everything
    again = _records(tmp_path / "dist", src, client)
    assert {r.status for r in again.values()} == {"skipped"}


def test_killing_a_worker_loses_nothing(tmp_path: Path, cluster) -> None:
    _, client = cluster
    src = _archive(tmp_path / "src", files=8, seconds=8.0)
    dst = tmp_path / "dist"
    tasks, _ = discover([src], dst)
    pipe = Pipeline(zoo.load("dsp"), RunOptions(jobs=2), Manifest(dst / ".humclean" / "manifest.jsonl"))
    pids = list(client.run(os.getpid).values())
    import threading

    def killer() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and not list(dst.rglob(".*humclean-tmp-*")):
            time.sleep(0.02)
        os.kill(pids[0], signal.SIGKILL)

    t = threading.Thread(target=killer)
    t.start()
    recs = run_on_dask(pipe, tasks, client, "dsp", "cpu")
    t.join()
    assert len(recs) == 8
    assert all(r.status == "cleaned" for r in recs), [(r.path, r.error) for r in recs if r.status != "cleaned"]
    for r in recs:
        assert sf.info(str(dst / r.path)).frames == sf.info(str(src / r.path)).frames
