"""Cross-file batching: many worker threads submit chunks, one engine thread runs the model.

Workers (one per file in flight) call :meth:`BatchEngine.submit` with the chunks of one channel
segment and wait on the returned future. The engine thread packs pending chunks from all
requests into batches of ``batch_size`` (splitting requests across batches when needed), runs the
estimator and routes each output row back to its request. A batch is launched as soon as it is
full, or when no new chunks have arrived for ``flush_after_s`` (so a lone file never waits for a
batch that will not fill). An estimator works row by row, so an output never depends on which
other chunks shared its batch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from .models.base import HumEstimator


@dataclass
class _Request:
    chunks: np.ndarray  # [K, L] float32
    starts: np.ndarray  # [K] int64
    f0_hz: np.ndarray  # [K] float64
    out: np.ndarray  # [K, L] float32
    future: Future
    next_row: int = 0
    rows_done: int = 0
    failed: bool = False


@dataclass(frozen=True)
class EngineStats:
    batches: int
    chunks: int
    model_seconds: float

    @property
    def mean_fill(self) -> float:
        return self.chunks / self.batches if self.batches else 0.0


class BatchEngine:
    """Runs ``estimator`` on batches gathered from concurrent submitters. Use as a context manager."""

    def __init__(self, estimator: HumEstimator, batch_size: int, flush_after_s: float = 0.02, workers: int = 1) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if workers < 1:
            raise ValueError("workers must be >= 1")
        # Several workers run batches side by side: on a CPU, one single-threaded model call per core
        # keeps the cores busy through a model's serial numpy and Python steps, which one multi-threaded
        # call cannot (see ``models.torch_estimator.parallelism``).
        self.workers = workers
        self.estimator = estimator
        self.batch_size = batch_size
        self.flush_after_s = flush_after_s
        self._pending: deque[_Request] = deque()
        self._pending_rows = 0
        self._last_submit = time.monotonic()
        self._cond = threading.Condition()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._batches = 0
        self._chunks = 0
        self._model_seconds = 0.0

    def __enter__(self) -> BatchEngine:
        for i in range(self.workers):
            thread = threading.Thread(target=self._loop, name=f"humclean-engine-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    @property
    def stats(self) -> EngineStats:
        return EngineStats(self._batches, self._chunks, self._model_seconds)

    def submit(self, chunks: np.ndarray, starts: np.ndarray, f0_hz: np.ndarray) -> Future:
        """Queue ``chunks`` (``[K, L]``); the future resolves to the ``[K, L]`` float32 hum estimate."""
        future: Future = Future()
        k = chunks.shape[0]
        if k == 0:
            future.set_result(np.zeros_like(chunks, dtype=np.float32))
            return future
        req = _Request(
            np.ascontiguousarray(chunks, dtype=np.float32),
            np.asarray(starts, dtype=np.int64),
            np.asarray(f0_hz, dtype=np.float64),
            np.empty(chunks.shape, dtype=np.float32),
            future,
        )
        with self._cond:
            if self._closed:
                raise RuntimeError("engine is closed")
            self._pending.append(req)
            self._pending_rows += k
            self._last_submit = time.monotonic()
            self._cond.notify_all()
        return future

    def run(self, chunks: np.ndarray, starts: np.ndarray, f0_hz: np.ndarray) -> np.ndarray:
        """Submit and wait."""
        return self.submit(chunks, starts, f0_hz).result()

    def _take_batch(self) -> list[tuple[_Request, int, int]]:
        """Pop up to ``batch_size`` rows; returns (request, first row, row count) pieces. Lock held."""
        pieces: list[tuple[_Request, int, int]] = []
        room = self.batch_size
        while room and self._pending:
            req = self._pending[0]
            n = min(room, req.chunks.shape[0] - req.next_row)
            pieces.append((req, req.next_row, n))
            req.next_row += n
            room -= n
            self._pending_rows -= n
            if req.next_row == req.chunks.shape[0]:
                self._pending.popleft()
        return pieces

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._pending_rows >= self.batch_size:
                        break
                    if self._pending_rows and (
                        self._closed or time.monotonic() - self._last_submit >= self.flush_after_s
                    ):
                        break
                    if self._closed and not self._pending_rows:
                        return
                    self._cond.wait(timeout=self.flush_after_s if self._pending_rows else None)
                pieces = self._take_batch()
            self._run_pieces(pieces)

    def _run_pieces(self, pieces: list[tuple[_Request, int, int]]) -> None:
        chunks = np.concatenate([r.chunks[a : a + n] for r, a, n in pieces])
        starts = np.concatenate([r.starts[a : a + n] for r, a, n in pieces])
        f0 = np.concatenate([r.f0_hz[a : a + n] for r, a, n in pieces])
        t0 = time.perf_counter()
        try:
            out = np.asarray(self.estimator.estimate(chunks, starts, f0), dtype=np.float32)
            if out.shape != chunks.shape:
                raise ValueError(f"estimator returned shape {out.shape}, expected {chunks.shape}")
        except BaseException as exc:  # noqa: BLE001 - routed to every waiting worker
            with self._cond:  # another engine worker may hold other rows of the same requests
                for req, _, _ in pieces:
                    if not req.failed:
                        req.failed = True
                        req.future.set_exception(exc)
            return
        finally:
            with self._cond:
                self._model_seconds += time.perf_counter() - t0
                self._batches += 1
                self._chunks += chunks.shape[0]
        row = 0
        for req, a, n in pieces:
            req.out[a : a + n] = out[row : row + n]
            row += n
            with self._cond:
                req.rows_done += n
                done = req.rows_done == req.chunks.shape[0] and not req.failed
            if done:
                req.future.set_result(req.out)
