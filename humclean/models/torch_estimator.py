"""Wraps a ``torch.nn.Module`` (``[B, T] -> [B, T]`` hum) as a :class:`HumEstimator` on a device."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .base import HumEstimator, ModelCard


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> the current CUDA device when there is one, else CPU; ``cpu``; ``cuda`` (the current
    one) or ``cuda:N``. Raises ``ValueError`` for a device that is not there."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {spec!r} (use auto, cpu, cuda or cuda:N)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {spec!r} requested but only {torch.cuda.device_count()} CUDA device(s) present")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # reports name the GPU that ran
    return device


class TorchEstimator(HumEstimator):
    """Runs ``module`` in eval mode under ``torch.inference_mode`` on ``device``."""

    def __init__(self, module: nn.Module, card: ModelCard, device: torch.device) -> None:
        self.card = card
        self.device = device
        self.module = module.to(device).eval()

    @property
    def device_name(self) -> str:
        return str(self.device)

    def estimate(self, chunks: np.ndarray, starts: np.ndarray, f0_hz: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(chunks, dtype=np.float32))
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        with torch.inference_mode():
            if getattr(self.module, "takes_f0", False):
                # tracker-fed models take the detected mains frequency as their hint
                y = self.module(x, torch.from_numpy(np.asarray(f0_hz, dtype=np.float64)))
            else:
                y = self.module(x)
        return y.float().cpu().numpy()


# Small CPU batches let the engine's workers start early and overlap with decoding and encoding: on the
# throughput archive ``humclean run`` took 10.8-11.1 s with 4, 11.5-11.9 s with 16 (two runs each).
CPU_BATCH = 4


def auto_batch_size(estimator: HumEstimator, cpu_default: int = CPU_BATCH, cap: int = 512, budget: float = 0.5) -> int:
    """A batch size for ``estimator``: ``cpu_default`` on the CPU; on CUDA, as many chunks as fit in
    ``budget`` of the device's free memory, measured from one trial forward pass of a single chunk."""
    if not isinstance(estimator, TorchEstimator) or estimator.device.type != "cuda":
        return cpu_default
    free, _total = torch.cuda.mem_get_info(estimator.device)
    torch.cuda.reset_peak_memory_stats(estimator.device)
    before = torch.cuda.memory_allocated(estimator.device)
    x = np.zeros((1, estimator.card.chunk_samples), dtype=np.float32)
    estimator.estimate(x, np.zeros(1, dtype=np.int64), np.full(1, np.nan))
    per_chunk = max(torch.cuda.max_memory_allocated(estimator.device) - before, 1 << 20)
    return int(max(1, min(cap, budget * free // per_chunk)))


def parallelism(estimator: HumEstimator, threads: int, cores: int) -> tuple[int, int]:
    """``(torch threads per model call, engine workers)`` for a run asked for ``threads`` (0: auto).

    Auto on the CPU is one torch thread per call and one call per core: the model's tracker (numpy)
    and Python steps are serial, so calls side by side keep every core busy where one call over all
    cores left about a third of them idle (``humclean run`` on the throughput archive, two runs each:
    12.7 s -> 11.6-12.3 s, and a fifth less CPU time); :func:`run_settings` puts those calls in worker
    processes. A GPU model runs one call at a time; an explicit ``threads`` also means one call."""
    device = getattr(estimator, "device", None)
    if threads or (device is not None and device.type != "cpu"):
        return (threads or max(cores, 1)), 1
    return 1, max(cores, 1)


class RunSettings(NamedTuple):
    """How ``humclean run`` runs a model: see :func:`run_settings`."""

    batch_size: int
    torch_threads: int
    model_workers: int
    model_processes: bool


def run_settings(estimator: HumEstimator, threads: int, batch_size: int, cores: int) -> RunSettings:
    """Batch size, torch threads per call, engine workers and whether the workers' calls run in forked
    processes, as ``humclean run`` uses them for its ``--threads`` and ``--batch-size`` (0: auto, see
    :func:`auto_batch_size` and :func:`parallelism`). Several workers always get processes (where
    :func:`humclean.forked.can_fork` allows): as threads their calls would share one interpreter lock."""
    torch_threads, workers = parallelism(estimator, threads, cores)
    return RunSettings(batch_size or auto_batch_size(estimator), torch_threads, workers, workers > 1)
