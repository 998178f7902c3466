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


def drop_edge_chunks(starts: np.ndarray, chunk_samples: int, overlap_samples: int, end: int | None) -> np.ndarray:
    """``starts`` without the chunks whose audio all lies in one of their cross-fade ramps: before the
    file (its end ``<= 0`` plus the ramp) or, with ``end`` (the file's length in these samples) given,
    after the file's last ``overlap_samples``.

    Such a chunk holds only what its neighbour holds in full, with a chunk's worth of zeros for context;
    an estimator given half a second of audio (or none) returns little or nothing, and cross-faded in,
    that pulled the estimate towards zero over the last second of a file (a validation file ending
    0.5 s after a chunk boundary kept a third of its hum there: -25 dB instead of -56). Without them the
    neighbour alone covers the file; the samples beyond the file's edges are covered by no chunk."""
    keep = starts + chunk_samples - overlap_samples > 0
    if end is not None:
        keep &= starts + overlap_samples < end
    return starts[keep]


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
    file_end: int | None = None,
) -> np.ndarray:
    """Weighted overlap-add of ``chunks`` (``[K, L]``) into the span, normalised by the summed weight.

    Returns ``[span_samples]`` float64. Samples before the file (absolute position < 0) or at or
    after ``file_end`` (when given) that no chunk covers are 0 (see :func:`drop_edge_chunks`).
    Raises ``ValueError`` when some sample of the file in the span is not covered by any chunk with
    positive weight (a planning bug, never silently divided by zero).
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
    gaps = np.flatnonzero(wsum <= 0) + span_start
    outside = (gaps < 0) if file_end is None else (gaps < 0) | (gaps >= file_end)
    if not np.all(outside):
        raise ValueError("overlap-add: some samples are covered by no chunk")
    return acc / np.where(wsum > 0, wsum, 1.0)
