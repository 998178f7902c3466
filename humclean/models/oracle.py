"""An estimator that knows the hum: it proves the pipeline's arithmetic independently of training.

Given the hum as a function of absolute time, it returns exactly that hum for every chunk. Run
through the pipeline on ``clean + hum``, the output must equal ``clean`` to within the resampler's
precision; any error is the pipeline's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .base import HumEstimator, ModelCard


@dataclass(frozen=True)
class HarmonicHum:
    """``sum_k amp_k * cos(2 pi k f0 t + phase_k)`` with an optional slow amplitude modulation."""

    f0_hz: float
    amplitudes: Sequence[float]
    phases: Sequence[float]
    am_depth: float = 0.0
    am_hz: float = 0.0

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """Hum at times ``t`` (seconds, any shape), float64."""
        y = np.zeros_like(t, dtype=np.float64)
        for k, (a, p) in enumerate(zip(self.amplitudes, self.phases, strict=True), start=1):
            y += a * np.cos(2 * np.pi * k * self.f0_hz * t + p)
        if self.am_depth:
            y *= 1.0 + self.am_depth * np.sin(2 * np.pi * self.am_hz * t)
        return y


class OracleEstimator(HumEstimator):
    """Returns ``hum(t)`` for each chunk, ``t`` from the chunk's absolute start at the model rate."""

    def __init__(
        self,
        hum: Callable[[np.ndarray], np.ndarray],
        sample_rate: int = 16000,
        chunk_samples: int = 16000,
        overlap_samples: int = 2000,
    ) -> None:
        self.hum = hum
        self.card = ModelCard("oracle", sample_rate, chunk_samples, overlap_samples, arch="oracle")

    def estimate(self, chunks: np.ndarray, starts: np.ndarray, f0_hz: np.ndarray) -> np.ndarray:
        t = (starts[:, None] + np.arange(chunks.shape[1])[None, :]) / self.card.sample_rate
        return self.hum(t).astype(np.float32)
