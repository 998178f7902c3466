"""Chunk geometry: a chunk grid aligned to absolute sample positions, and weighted overlap-add.

Chunk ``k`` of a channel covers absolute model-rate samples ``[k*hop - overlap, (k+1)*hop)``.
Its weight ramps linearly up over its first ``overlap`` samples and down over its last
``overlap`` samples, so neighbouring chunks cross-fade linearly (amplitude-complementary:
correlated chunks do not bump the level at the seams) and every sample of the file, including
the first, is covered with positive total weight. Because the grid is absolute, a span cut out of
a long file with enough real context on both sides yields the same chunks as the whole file.
"""

from __future__ import annotations

import numpy as np


def chunk_weights(chunk_samples: int, overlap_samples: int) -> np.ndarray:
    """``[chunk_samples]`` float64 trapezoid: linear ramps of ``overlap_samples``, flat top of 1."""
    w = np.ones(chunk_samples, dtype=np.float64)
    if overlap_samples > 0:
        ramp = (np.arange(overlap_samples, dtype=np.float64) + 0.5) / overlap_samples
        w[:overlap_samples] = ramp
        w[chunk_samples - overlap_samples :] = ramp[::-1]
    return w


def plan_chunks(span_start: int, span_samples: int, chunk_samples: int, overlap_samples: int) -> np.ndarray:
    """Absolute starts ``[K]`` (int64) of the grid chunks covering ``[span_start, span_start + span_samples)``."""
    hop = chunk_samples - overlap_samples
    if span_samples <= 0:
        return np.zeros(0, dtype=np.int64)
    last = span_start + span_samples - 1
    k_first = span_start // hop
    k_last = (last + overlap_samples) // hop
    return np.arange(k_first, k_last + 1, dtype=np.int64) * hop - overlap_samples


def extract_chunks(x: np.ndarray, span_start: int, starts: np.ndarray, chunk_samples: int) -> np.ndarray:
    """Cut chunks ``[K, chunk_samples]`` (float32) out of the span ``x`` (``[T]``, first sample at
    absolute position ``span_start``); positions outside the span read as zeros."""
    n = x.shape[0]
    out = np.zeros((starts.shape[0], chunk_samples), dtype=np.float32)
    for i, s in enumerate(starts - span_start):
        lo, hi = max(0, s), min(n, s + chunk_samples)
        if hi > lo:
            out[i, lo - s : hi - s] = x[lo:hi]
    return out


def overlap_add(
    chunks: np.ndarray,
    starts: np.ndarray,
    span_start: int,
    span_samples: int,
    overlap_samples: int,
) -> np.ndarray:
    """Weighted overlap-add of ``chunks`` (``[K, L]``) into the span, normalised by the summed weight.

    Returns ``[span_samples]`` float64. Raises ``ValueError`` when some sample of the span is not
    covered by any chunk with positive weight (a planning bug, never silently divided by zero).
    """
    chunk_samples = chunks.shape[1]
    w = chunk_weights(chunk_samples, overlap_samples)
    acc = np.zeros(span_samples, dtype=np.float64)
    wsum = np.zeros(span_samples, dtype=np.float64)
    for chunk, s in zip(chunks, starts - span_start, strict=True):
        lo, hi = max(0, s), min(span_samples, s + chunk_samples)
        if hi > lo:
            acc[lo:hi] += w[lo - s : hi - s] * chunk[lo - s : hi - s]
            wsum[lo:hi] += w[lo - s : hi - s]
    if span_samples and not np.all(wsum > 0):
        raise ValueError("overlap-add: some samples are covered by no chunk")
    return acc / np.where(wsum > 0, wsum, 1.0)
