"""Model calls in forked worker processes: the engine's CPU workers without one shared interpreter lock.

On a CPU the batch engine runs one single-threaded model call per core (see
:func:`.models.torch_estimator.parallelism`). As threads of one process those calls take turns on the
interpreter lock, which the tracker's many small numpy steps and the network's Python loops hold for about
half of their time: two threads running ``harmonic-v4`` and nothing else kept 1.72 of 2 cores busy at
27.0 ms of CPU per 8 s chunk, where one thread alone spends 23.1 ms. Here each call runs in a worker
process instead. The workers are forked from the process that holds the loaded estimator, so the model is
neither loaded again nor pickled; a call sends its chunks (``[B, T]`` float32) over a pipe and receives the
hum. Outputs are those of the estimator itself, row for row.

Forking is only safe before other threads exist (a lock another thread holds stays locked in the child),
so :func:`forked` is meant to be entered before the threads that use the estimator start; it runs the
estimator in the caller's process instead where forking is unavailable (not Linux, a daemonic process such
as a Dask worker) or wrong (a CUDA device). A worker that dies fails the batch it was running with a
:class:`~.errors.ModelError`; its share of later calls runs in the calling thread.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import signal
import sys
import warnings
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from .errors import ModelError
from .models.base import HumEstimator


def can_fork(estimator: HumEstimator) -> bool:
    """Whether :func:`forked` would run ``estimator`` in worker processes here."""
    return (
        sys.platform == "linux"
        and "fork" in mp.get_all_start_methods()
        and not mp.current_process().daemon
        and estimator.device_name == "cpu"
    )


def _serve(conn: Connection, estimator: HumEstimator, inherited: list[Connection]) -> None:
    """A worker's loop: ``(chunks, starts, f0_hz)`` in, ``(True, hum)`` or ``(False, exception)`` out."""
    # Ctrl-C reaches the whole process group; the parent decides when workers stop (it closes the pipe)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch = sys.modules.get("torch")
    if torch is not None:
        # each worker is one single-threaded call (see parallelism). A child forked from a parent whose
        # OpenMP team has run with 2+ threads hangs at its first parallel region (the team's threads were
        # not forked): with one thread it never waits for them.
        torch.set_num_threads(1)
    for other in inherited:  # the parent's ends: held open here, they would hide the parent's exit
        other.close()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        reply: tuple[bool, Any]
        try:
            reply = (True, estimator.estimate(*msg))
        except BaseException as exc:  # noqa: BLE001 - the parent raises it for the batch's files
            reply = (False, exc)
        try:
            conn.send(reply)
        except (BrokenPipeError, EOFError, OSError):
            return
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            with contextlib.suppress(OSError):
                conn.send((False, ModelError(f"{type(reply[1]).__name__}: {reply[1]}")))


class _Worker:
    def __init__(self, ctx: Any, estimator: HumEstimator, index: int, others: list[Connection]) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_serve, args=(child, estimator, [*others, self.conn]), name=f"humclean-model-{index}", daemon=True
        )
        with warnings.catch_warnings():
            # Python 3.12+ warns on fork whenever the process has another OS thread; at this point that
            # is OpenBLAS's server thread (numpy's, stopped around a fork by its own handler) and, with a
            # progress bar, tqdm's monitor (the child never takes tqdm's lock)
            warnings.filterwarnings("ignore", message=r".*multi-threaded, use of fork\(\)", category=DeprecationWarning)
            self.process.start()
        child.close()

    def call(self, chunks: np.ndarray, starts: np.ndarray, f0_hz: np.ndarray) -> tuple[bool, Any]:
        self.conn.send((chunks, starts, f0_hz))
        return self.conn.recv()

    def retire(self) -> None:
        """Stop using this worker after a failed call: reap it if it died, end it if it did not."""
        self.conn.close()
        self.process.join(1.0)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.conn.closed:
            return
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.conn.close()
        self.process.join(timeout_s)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()


class ForkedEstimator(HumEstimator):
    """Runs ``estimator.estimate`` in ``workers`` forked processes, one call per process at a time.

    Calls from several threads run side by side (up to ``workers``); more wait for a free process.
    Use :func:`forked` rather than this class: it falls back to ``estimator`` where forking is not possible.
    """

    def __init__(self, estimator: HumEstimator, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.estimator = estimator
        self.card = estimator.card
        ctx = mp.get_context("fork")
        self._workers: list[_Worker] = []
        try:
            for i in range(workers):
                self._workers.append(_Worker(ctx, estimator, i, [w.conn for w in self._workers]))
        except BaseException:
            self.close()
            raise
        # free workers; ``None`` stands for a dead one: its turn runs in the calling thread
        self._free: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()
        for w in self._workers:
            self._free.put(w)

    @property
    def device_name(self) -> str:
        return self.estimator.device_name

    @property
    def processes(self) -> int:
        """Worker processes still alive."""
        return sum(w.process.is_alive() for w in self._workers)

    def estimate(self, chunks: np.ndarray, starts: np.ndarray, f0_hz: np.ndarray) -> np.ndarray:
        worker = self._free.get()
        if worker is None:
            self._free.put(None)
            return self.estimator.estimate(chunks, starts, f0_hz)
        try:
            ok, payload = worker.call(chunks, starts, f0_hz)
        except BaseException as exc:
            # the pipe may hold half a message or a reply nobody reads: this worker is not used again
            worker.retire()
            self._free.put(None)
            if isinstance(exc, (EOFError, OSError)):
                raise ModelError(
                    f"model worker process died (exit code {worker.process.exitcode}) while estimating this "
                    "batch (later batches go on without it)"
                ) from exc
            raise
        self._free.put(worker)
        if not ok:
            raise payload
        return payload

    def close(self) -> None:
        """Stop every worker. Call it once no call is in flight (the engine's threads have ended)."""
        for w in self._workers:
            w.stop()


@contextlib.contextmanager
def forked(estimator: HumEstimator, workers: int) -> Iterator[HumEstimator]:
    """``estimator`` run in ``workers`` forked processes (see the module docstring), or ``estimator``
    itself where :func:`can_fork` says no or ``workers`` is 1. Enter before starting threads that use it."""
    if workers < 2 or not can_fork(estimator):
        yield estimator
        return
    try:
        pool = ForkedEstimator(estimator, workers)
    except OSError:  # no processes to be had (limits): threads still work
        yield estimator
        return
    try:
        yield pool
    finally:
        pool.close()
