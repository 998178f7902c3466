"""Model calls in forked worker processes: same outputs, calls side by side, failures kept to their batch."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from humclean.errors import ModelError
from humclean.forked import ForkedEstimator, can_fork, forked
from humclean.models.base import HumEstimator, ModelCard


class _Probe(HumEstimator):
    """Row-wise: chunk * start; the row's process id in column 0. A NaN hint raises, a negative one kills."""

    def __init__(self) -> None:
        self.card = ModelCard("probe", 8000, 16, 0)

    def estimate(self, chunks: np.ndarray, starts: np.ndarray, f0_hz: np.ndarray) -> np.ndarray:
        if (f0_hz < 0).any():
            os._exit(3)
        if np.isnan(f0_hz).any():
            raise RuntimeError("bad row")
        if (f0_hz == 1).any():
            raise _Unpicklable()
        time.sleep(0.05)  # long enough for a second caller to start meanwhile
        out = chunks * starts[:, None].astype(np.float32)
        out[:, 0] = os.getpid()
        return out


class _Unpicklable(Exception):
    def __reduce__(self):  # type: ignore[no-untyped-def]
        raise TypeError("not picklable")

    def __str__(self) -> str:
        return "odd failure"


def _call(est: HumEstimator, start: int, hint: float = 50.0) -> np.ndarray:
    chunks = np.arange(32, dtype=np.float32).reshape(2, 16)
    return est.estimate(chunks, np.array([start, start + 1]), np.full(2, hint))


def _expected(start: int) -> np.ndarray:
    return (np.arange(32, dtype=np.float32).reshape(2, 16) * np.array([[start], [start + 1]], dtype=np.float32))[:, 1:]


needs_fork = pytest.mark.skipif(not can_fork(_Probe()), reason="forked workers need Linux and a non-daemonic process")


@needs_fork
def test_calls_run_side_by_side_in_other_processes_and_return_the_rows() -> None:
    with forked(_Probe(), 2) as est:
        assert isinstance(est, ForkedEstimator) and est.processes == 2
        results: dict[int, np.ndarray] = {}

        def one(i: int) -> None:
            results[i] = _call(est, 10 * i)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        workers = [w.process for w in est._workers]
    for i, out in results.items():
        np.testing.assert_array_equal(out[:, 1:], _expected(10 * i))
    pids = {int(out[0, 0]) for out in results.values()}
    assert pids == {p.pid for p in workers} and os.getpid() not in pids
    assert not any(p.is_alive() for p in workers)  # stopped on exit


@needs_fork
def test_an_exception_in_a_worker_is_raised_for_its_call_only() -> None:
    with forked(_Probe(), 2) as est:
        with pytest.raises(RuntimeError, match="bad row"):
            _call(est, 0, np.nan)
        with pytest.raises(ModelError, match="_Unpicklable: odd failure"):
            _call(est, 0, 1.0)
        np.testing.assert_array_equal(_call(est, 5)[:, 1:], _expected(5))
        assert est.processes == 2


@needs_fork
def test_a_dead_worker_fails_its_batch_and_later_calls_still_run() -> None:
    with forked(_Probe(), 2) as est:
        with pytest.raises(ModelError, match=r"died \(exit code 3\)"):
            _call(est, 0, -1.0)
        assert est.processes == 1
        with pytest.raises(ModelError, match=r"died \(exit code 3\)"):
            _call(est, 0, -1.0)
        assert est.processes == 0
        # with every worker gone, calls run in this process
        out = _call(est, 7)
    np.testing.assert_array_equal(out[:, 1:], _expected(7))
    assert int(out[0, 0]) == os.getpid()


def test_no_processes_for_one_worker_or_a_gpu_model() -> None:
    probe = _Probe()
    with forked(probe, 1) as est:
        assert est is probe

    class _OnGpu(_Probe):
        @property
        def device_name(self) -> str:
            return "cuda:0"

    gpu = _OnGpu()
    assert not can_fork(gpu)
    with forked(gpu, 4) as est:
        assert est is gpu


@needs_fork
def test_pipeline_outputs_are_the_same_with_worker_processes(tmp_path: Path, monkeypatch) -> None:
    """The default model on real audio with hum: worker processes change nothing in the output files."""
    import contextlib

    import humclean.pipeline as pipeline_module
    from humclean import zoo
    from humclean.discover import discover
    from humclean.pipeline import Pipeline, RunOptions

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(4)
    rate = 44100
    t = np.arange(rate * 12) / rate
    for i in range(2):
        hum = 0.05 * np.sin(2 * np.pi * (50.03 + 0.01 * i) * t) + 0.02 * np.sin(2 * np.pi * 150.09 * t + 1)
        music = 0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
        x = np.stack([music + hum, 0.05 * rng.standard_normal(t.size) + hum], 1)
        sf.write(src / f"f{i}.wav", x, rate, subtype="PCM_24")
    est = zoo.load("default", "cpu")
    used: list[HumEstimator] = []

    @contextlib.contextmanager
    def spy(estimator: HumEstimator, workers: int):  # type: ignore[no-untyped-def]
        with forked(estimator, workers) as model:
            used.append(model)
            yield model

    monkeypatch.setattr(pipeline_module, "forked", spy)
    outputs = {}
    for processes in (False, True):
        dst = tmp_path / f"out-{processes}"
        tasks, _ = discover([src], dst)
        opts = RunOptions(jobs=2, batch_size=2, model_workers=2, model_processes=processes)
        recs = Pipeline(est, opts).run(tasks)
        assert sorted(r.status for r in recs) == ["cleaned", "cleaned"]
        outputs[processes] = {p.name: sf.read(p, dtype="int32")[0] for p in sorted(dst.glob("*.wav"))}
    assert len(used) == 1 and isinstance(used[0], ForkedEstimator)  # only the second run forked
    assert outputs[False].keys() == outputs[True].keys() == {"f0.wav", "f1.wav"}
    for name, ref in outputs[False].items():
        np.testing.assert_array_equal(outputs[True][name], ref)


@needs_fork
def test_a_call_interrupted_after_sending_retires_its_worker(monkeypatch) -> None:
    """A reply nobody read must never answer the next call: the interrupted call's worker is ended."""
    from humclean import forked as forked_module

    real = forked_module._Worker.call
    interrupted = []

    def send_then_fail(self, chunks, starts, f0_hz):  # type: ignore[no-untyped-def]
        if not interrupted:
            interrupted.append(self)
            self.conn.send((chunks, starts, f0_hz))
            raise KeyboardInterrupt
        return real(self, chunks, starts, f0_hz)

    monkeypatch.setattr(forked_module._Worker, "call", send_then_fail)
    with forked(_Probe(), 2) as est:
        with pytest.raises(KeyboardInterrupt):
            _call(est, 1)
        assert not interrupted[0].process.is_alive() and est.processes == 1
        for start in (2, 3, 4):
            np.testing.assert_array_equal(_call(est, start)[:, 1:], _expected(start))


_AFTER_THREADED_USE = """
import numpy as np, torch
from humclean import zoo
from humclean.forked import ForkedEstimator, forked
torch.set_num_threads(2)
est = zoo.load("default", "cpu")
n = est.card.chunk_samples
x = (0.05 * np.random.default_rng(0).standard_normal((4, n))
     + 0.05 * np.sin(2 * np.pi * 50 * np.arange(n) / est.card.sample_rate)).astype(np.float32)
args = (np.zeros(4, np.int64), np.full(4, np.nan))
here = est.estimate(x, *args)  # the parent's OpenMP team runs with 2 threads
with forked(est, 2) as model:
    assert isinstance(model, ForkedEstimator)
    there = model.estimate(x, *args)
assert np.abs(there - here).max() < 1e-3 * np.abs(here).max(), "forked estimate differs"
print("ok")
"""


@needs_fork
def test_workers_forked_after_the_parent_ran_torch_on_several_threads_do_not_hang() -> None:
    """A library caller (or ``evaluate`` after a GPU method set 16 threads) may have run the model on several
    threads before forking: the workers used to hang at their first parallel region."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", _AFTER_THREADED_USE], capture_output=True, text=True, timeout=90)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
