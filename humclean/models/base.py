"""The contract between the pipeline and every hum estimator.

The pipeline resamples each channel to ``card.sample_rate``, cuts it into chunks of
``card.chunk_samples`` that overlap by ``card.overlap_samples``, and hands batches of chunks
(from many files and channels at once) to :meth:`HumEstimator.estimate`. The estimator returns
the *hum* it finds in each chunk, never the cleaned signal: the pipeline resamples that estimate
back to the file's own rate and subtracts it from the untouched original.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ModelCard:
    """What the pipeline needs to know about a model (plus provenance for reports)."""

    name: str
    sample_rate: int
    chunk_samples: int
    overlap_samples: int
    arch: str = ""
    arch_args: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        if not 0 <= 2 * self.overlap_samples < self.chunk_samples:
            raise ValueError("need 0 <= 2 * overlap_samples < chunk_samples")

    @property
    def hop_samples(self) -> int:
        return self.chunk_samples - self.overlap_samples

    @property
    def ident(self) -> str:
        """Short identity used in reports and manifests: ``name@sha[:12]``."""
        return f"{self.name}@{self.sha256[:12]}" if self.sha256 else self.name


class HumEstimator(ABC):
    """Estimates the hum in fixed-length chunks at ``card.sample_rate``."""

    card: ModelCard

    @abstractmethod
    def estimate(
        self,
        chunks: np.ndarray,
        starts: np.ndarray,
        f0_hz: np.ndarray,
    ) -> np.ndarray:
        """Return the hum in each chunk.

        chunks: ``[B, T]`` float32, ``T == card.chunk_samples``, at ``card.sample_rate``.
        starts: ``[B]`` int64, absolute index of each chunk's first sample in its channel at the
            model rate (negative where the chunk starts in padding before the file).
        f0_hz: ``[B]`` float64, the mains fundamental detected for the chunk's channel (NaN when
            unknown). Estimators may ignore it.
        returns: ``[B, T]`` float32 hum estimate, same shape as ``chunks``.
        """

    @property
    def device_name(self) -> str:
        return "cpu"


class RowwiseEstimator(HumEstimator):
    """An estimator that works on one chunk at a time in float64 (the DSP methods)."""

    def estimate(self, chunks: np.ndarray, starts: np.ndarray, f0_hz: np.ndarray) -> np.ndarray:
        x = np.asarray(chunks)
        if x.ndim != 2:
            raise ValueError(f"chunks must be [B, T], got shape {x.shape}")
        starts = np.broadcast_to(np.asarray(starts, dtype=np.int64), (x.shape[0],))
        hints = np.broadcast_to(np.asarray(f0_hz, dtype=np.float64), (x.shape[0],))
        out = np.zeros(x.shape, dtype=np.float32)
        for b in range(x.shape[0]):
            out[b] = self.estimate_one(x[b].astype(np.float64), int(starts[b]), float(hints[b]))
        return out

    @abstractmethod
    def estimate_one(self, x: np.ndarray, start: int, f0_hz: float) -> np.ndarray:
        """Hum ``[T]`` in one chunk ``x`` ``[T]`` (float64) starting at absolute ``start``; ``f0_hz`` may be NaN."""
