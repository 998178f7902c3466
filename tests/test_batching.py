"""The batch engine: rows from concurrent submitters, packed into batches, run by several workers."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from humclean.batching import BatchEngine
from humclean.models.base import HumEstimator, ModelCard


class _Scaled(HumEstimator):
    """Returns each chunk times its start (a row-wise function) and fails on a NaN hint."""

    def __init__(self) -> None:
        self.card = ModelCard("scaled", 8000, 16, 0)
        self.active = 0
        self.most_active = 0
        self._lock = threading.Lock()

    def estimate(self, chunks: np.ndarray, starts: np.ndarray, f0_hz: np.ndarray) -> np.ndarray:
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            time.sleep(0.01)  # long enough for the other workers to take batches meanwhile
            if np.isnan(f0_hz).any():
                raise RuntimeError("bad row")
            return chunks * starts[:, None].astype(np.float32)
        finally:
            with self._lock:
                self.active -= 1


@pytest.mark.parametrize("workers", [1, 3])
def test_every_request_gets_its_own_rows_back(workers: int) -> None:
    est = _Scaled()
    rng = np.random.default_rng(0)
    requests = [(rng.standard_normal((int(rng.integers(1, 9)), 16)).astype(np.float32), i) for i in range(40)]
    with BatchEngine(est, batch_size=4, workers=workers) as engine:
        futures = []

        def submit(part: list) -> None:
            for chunks, i in part:
                starts = np.arange(chunks.shape[0]) + 100 * i
                futures.append((chunks, starts, engine.submit(chunks, starts, np.full(chunks.shape[0], 50.0))))

        threads = [threading.Thread(target=submit, args=(requests[j::4],)) for j in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for chunks, starts, fut in futures:
            np.testing.assert_array_equal(fut.result(timeout=10), chunks * starts[:, None].astype(np.float32))
    assert engine.stats.chunks == sum(c.shape[0] for c, _ in requests)
    assert (est.most_active > 1) == (workers > 1)


def test_a_failing_batch_fails_only_its_requests() -> None:
    est = _Scaled()
    with BatchEngine(est, batch_size=2, workers=3) as engine:
        good = [engine.submit(np.ones((2, 16), np.float32), np.array([1, 2]), np.full(2, 50.0)) for _ in range(6)]
        bad = engine.submit(np.ones((2, 16), np.float32), np.array([1, 2]), np.array([50.0, np.nan]))
        for fut in good:
            assert fut.result(timeout=10).shape == (2, 16)
        with pytest.raises(RuntimeError, match="bad row"):
            bad.result(timeout=10)


def test_parallelism_policy() -> None:
    """--threads 0 on a CPU: one torch thread per call, one call per core, each in a worker process; an
    explicit count or a GPU model: one call at a time, in the run's own process."""
    import torch

    from humclean.models.dsp import DspCanceller
    from humclean.models.tiny import TinyConvHum
    from humclean.models.torch_estimator import CPU_BATCH, TorchEstimator, parallelism, run_settings

    cpu = TorchEstimator(TinyConvHum(), ModelCard("tiny", 16000, 4000, 500), torch.device("cpu"))
    assert parallelism(cpu, 0, 8) == (1, 8)
    assert parallelism(cpu, 3, 8) == (3, 1)
    assert parallelism(DspCanceller(), 0, 2) == (1, 2)
    gpu = TorchEstimator.__new__(TorchEstimator)
    gpu.device = torch.device("cuda")  # only the device is consulted; nothing runs
    assert parallelism(gpu, 0, 8) == (8, 1)
    assert run_settings(cpu, 0, 0, 2) == (CPU_BATCH, 1, 2, True)
    assert run_settings(cpu, 0, 0, 1) == (CPU_BATCH, 1, 1, False)
    assert run_settings(DspCanceller(), 2, 7, 2) == (7, 2, 1, False)
