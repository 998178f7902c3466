"""Chunk geometry and overlap-add: an identity model must reconstruct the input exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from humclean.chunking import chunk_weights, drop_edge_chunks, extract_chunks, overlap_add, plan_chunks


@pytest.mark.parametrize("length", [1, 2, 63, 64, 65, 1000, 8193, 44101])
@pytest.mark.parametrize(("chunk", "overlap"), [(64, 16), (256, 0), (1000, 499), (4096, 1024)])
def test_identity_reconstructs_exactly(length: int, chunk: int, overlap: int) -> None:
    rng = np.random.default_rng(length + chunk)
    x = rng.standard_normal(length).astype(np.float32).astype(np.float64)
    starts = plan_chunks(0, length, chunk, overlap)
    chunks = extract_chunks(x, 0, starts, chunk)
    y = overlap_add(chunks, starts, 0, length, overlap)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    span_start=st.integers(-5000, 100000),
    span=st.integers(1, 9000),
    chunk=st.integers(8, 3000),
    overlap_frac=st.floats(0.0, 0.49),
)
def test_grid_covers_any_span(span_start: int, span: int, chunk: int, overlap_frac: float) -> None:
    overlap = int(chunk * overlap_frac)
    starts = plan_chunks(span_start, span, chunk, overlap)
    hop = chunk - overlap
    assert np.all(np.diff(starts) == hop)
    assert np.all((starts + overlap) % hop == 0), "grid must be aligned to absolute positions"
    x = np.arange(span, dtype=np.float64) + span_start
    y = overlap_add(extract_chunks(x, span_start, starts, chunk), starts, span_start, span, overlap)
    np.testing.assert_allclose(y, x, rtol=1e-12)


def test_weights_are_complementary() -> None:
    w = chunk_weights(100, 30)
    np.testing.assert_allclose(w[70:] + w[:30], 1.0)
    assert np.all(w > 0)


def test_span_of_a_long_signal_matches_whole_signal() -> None:
    """Chunks of a span cut from a long signal equal the whole signal's chunks at the same place."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(20000)
    whole = plan_chunks(0, 20000, 512, 128)
    sub = plan_chunks(7000, 3000, 512, 128)
    assert set(sub.tolist()) <= set(whole.tolist())
    a = extract_chunks(x, 0, sub, 512)
    b = extract_chunks(x[5000:12000], 5000, sub, 512)
    np.testing.assert_array_equal(a, b)


def test_uncovered_span_is_an_error() -> None:
    with pytest.raises(ValueError, match="covered"):
        overlap_add(np.zeros((1, 10), np.float32), np.array([0]), 0, 20, 2)


@settings(max_examples=300, deadline=None)
@given(
    span_start=st.integers(-3000, 20000),
    span=st.integers(1, 9000),
    file_end=st.integers(1, 30000),
    chunk=st.integers(8, 3000),
    overlap_frac=st.floats(0.0, 0.49),
)
def test_edge_chunks_dropped_and_the_file_still_covered(
    span_start: int, span: int, file_end: int, chunk: int, overlap_frac: float
) -> None:
    overlap = int(chunk * overlap_frac)
    starts = plan_chunks(span_start, span, chunk, overlap)
    kept = drop_edge_chunks(starts, chunk, overlap, file_end)
    # what is left out holds file samples only inside one of its ramps, before the file or beyond its end
    for s in set(starts.tolist()) - set(kept.tolist()):
        assert s + chunk - overlap <= 0 or s + overlap >= file_end
    x = np.arange(span, dtype=np.float64) + span_start
    y = overlap_add(extract_chunks(x, span_start, kept, chunk), kept, span_start, span, overlap, file_end)
    inside = (x >= 0) & (x < file_end)
    np.testing.assert_allclose(y[inside], x[inside], rtol=1e-12)  # every file sample still reconstructs


def test_a_gap_inside_the_file_is_still_an_error() -> None:
    with pytest.raises(ValueError, match="covered"):
        overlap_add(np.zeros((1, 10), np.float32), np.array([0]), 0, 20, 2, file_end=15)
    y = overlap_add(np.ones((1, 10), np.float32), np.array([0]), -5, 20, 2, file_end=10)
    assert np.all(y[:5] == 0) and np.all(y[15:] == 0) and np.all(y[5:15] == 1)
