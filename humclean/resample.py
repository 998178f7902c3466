"""Resampling with soxr: exact, predictable output lengths; identity when rates match.

The pipeline only ever resamples spans whose length is a whole number of *rate periods*
(see :func:`rate_period`), so that a span maps to an exact number of samples at the other rate
and block boundaries line up on both sides.
"""

from __future__ import annotations

from math import gcd

import numpy as np
import soxr

QUALITY = "HQ"


def rate_period(rate_in: int, rate_out: int) -> tuple[int, int]:
    """Smallest ``(n_in, n_out)`` with ``n_in / rate_in == n_out / rate_out`` (samples)."""
    g = gcd(rate_in, rate_out)
    return rate_in // g, rate_out // g


def resampled_length(n_samples: int, rate_in: int, rate_out: int) -> int:
    """Number of output samples for ``n_samples`` input samples: ``ceil(n * out / in)``."""
    return -(-n_samples * rate_out // rate_in)


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample ``x`` (``[T]`` or ``[T, C]``) from ``rate_in`` to ``rate_out``.

    Returns exactly :func:`resampled_length` samples along axis 0. When the rates match, ``x``
    itself is returned (no copy, no filtering).
    """
    if rate_in == rate_out:
        return x
    n_out = resampled_length(x.shape[0], rate_in, rate_out)
    if x.shape[0] == 0:
        return np.zeros((0,) + x.shape[1:], dtype=x.dtype)
    y = soxr.resample(np.ascontiguousarray(x), rate_in, rate_out, quality=QUALITY)
    if y.shape[0] != n_out:
        # soxr rounds the tail its own way; pin the length so callers can rely on the formula.
        if y.shape[0] > n_out:
            y = y[:n_out]
        else:
            pad = np.zeros((n_out - y.shape[0],) + y.shape[1:], dtype=y.dtype)
            y = np.concatenate([y, pad], axis=0)
    return y
