"""Streaming reference scores (SI-SDR, PSNR) over whole files.

They accumulate sufficient statistics block by block, so memory does not grow with file length.
"""

from __future__ import annotations

import math

import numpy as np


class ReferenceScore:
    """SI-SDR and PSNR of an input and an output against a clean reference, all channels pooled."""

    def __init__(self) -> None:
        self.ss = 0.0
        self.si = {"in": 0.0, "out": 0.0}
        self.ii = {"in": 0.0, "out": 0.0}
        self.err = {"in": 0.0, "out": 0.0}
        self.n = 0

    def update(self, inp: np.ndarray, out: np.ndarray, ref: np.ndarray) -> None:
        """Add aligned blocks ``[T, C]`` of input, output and reference (same scale)."""
        self.ss += float(np.sum(ref * ref))
        for key, est in (("in", inp), ("out", out)):
            self.si[key] += float(np.sum(est * ref))
            self.ii[key] += float(np.sum(est * est))
            d = est - ref
            self.err[key] += float(np.sum(d * d))
        self.n += ref.size

    def si_sdr(self, key: str) -> float:
        if self.ss <= 0:
            return math.nan
        alpha = self.si[key] / self.ss
        target = alpha * alpha * self.ss
        noise = self.ii[key] - 2 * alpha * self.si[key] + target
        if noise <= 0:
            return math.inf
        return 10 * math.log10(target / noise) if target > 0 else -math.inf

    def psnr(self, key: str) -> float:
        if self.n == 0:
            return math.nan
        mse = self.err[key] / self.n
        return math.inf if mse <= 0 else 10 * math.log10(1.0 / mse)


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB of ``estimate`` against ``reference`` (any equal shapes)."""
    s = ReferenceScore()
    e = np.asarray(estimate, dtype=np.float64).reshape(-1, 1)
    r = np.asarray(reference, dtype=np.float64).reshape(-1, 1)
    s.update(e, e, r)
    return s.si_sdr("in")
