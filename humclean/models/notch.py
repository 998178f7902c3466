"""Fixed comb of second-order notches at the harmonics present (numpy only).

Each present harmonic ``k`` gets a biquad notch ``H_k(z)`` (zeros on the unit circle at
``k f0``, poles at radius ``r`` set by the bandwidth). The cascade is applied zero-phase, i.e.
as forward-backward filtering, whose response is ``|prod_k H_k|^2``. We apply that response in
the frequency domain on a reflection-padded chunk: that is exactly forward-backward filtering of
the padded signal (the padding is long enough for the notches' ringing to die out, which is the
edge problem ``filtfilt``'s short default padding has) and avoids a per-sample Python loop.

The notches are fixed (not adaptive): they remove whatever is inside them, hum or programme,
and cannot follow drift beyond their bandwidth. The estimate returned is ``input - notched``.
"""

from __future__ import annotations

import math

import numpy as np

from humclean.models.base import ModelCard, RowwiseEstimator
from humclean.models.dsp import DspCanceller

SAMPLE_RATE = 16000

__all__ = ["NotchComb"]


def notch_sos(f_hz: float, bandwidth_hz: float, sample_rate: int) -> np.ndarray:
    """One biquad notch as an SOS row ``[b0, b1, b2, 1, a1, a2]`` with unit gain far away."""
    w0 = 2 * math.pi * f_hz / sample_rate
    r = 1.0 - math.pi * bandwidth_hz / sample_rate
    b = np.array([1.0, -2 * math.cos(w0), 1.0])
    a = np.array([1.0, -2 * r * math.cos(w0), r * r])
    # Unit gain at Nyquist, far from every mains harmonic (which all lie below fs/4 here).
    g = (1 - a[1] + a[2]) / (b[0] - b[1] + b[2])
    return np.concatenate([b * g, a])


def sos_power_response(sos: np.ndarray, n_fft: int) -> np.ndarray:
    """``|H(e^{jw})|^2`` of a cascade ``[S, 6]`` on the ``rfft`` grid of ``n_fft``: ``[n_fft//2+1]``."""
    z1 = np.exp(-2j * np.pi * np.arange(n_fft // 2 + 1) / n_fft)
    z2 = z1 * z1
    h = np.ones(z1.shape, dtype=np.complex128)
    for b0, b1, b2, a0, a1, a2 in sos:
        h *= (b0 + b1 * z1 + b2 * z2) / (a0 + a1 * z1 + a2 * z2)
    return np.abs(h) ** 2


class NotchComb(RowwiseEstimator):
    """Fixed zero-phase notch comb at ``k * f0`` for the harmonics present in the chunk.

    ``estimate(chunks [B, T], starts [B], f0_hz [B]) -> [B, T]`` hum (input minus notched).
    """

    def __init__(
        self,
        chunk_seconds: float = 8.0,
        overlap_seconds: float = 1.0,
        base_bandwidth_hz: float = 0.8,
        bandwidth_per_harmonic_hz: float = 0.06,
        min_snr: float = 10.0,
        pad_seconds: float = 2.0,
    ) -> None:
        self.card = ModelCard(
            name="notch",
            sample_rate=SAMPLE_RATE,
            chunk_samples=int(round(chunk_seconds * SAMPLE_RATE)),
            overlap_samples=int(round(overlap_seconds * SAMPLE_RATE)),
            arch="notch",
            arch_args={
                "base_bandwidth_hz": base_bandwidth_hz,
                "bandwidth_per_harmonic_hz": bandwidth_per_harmonic_hz,
                "min_snr": min_snr,
            },
        )
        self.base_bandwidth_hz = base_bandwidth_hz
        self.bandwidth_per_harmonic_hz = bandwidth_per_harmonic_hz
        self.min_snr = min_snr
        self.pad = int(round(pad_seconds * SAMPLE_RATE))
        self._analysis = DspCanceller(chunk_seconds, overlap_seconds, sample_rate=SAMPLE_RATE)

    def estimate_one(self, x: np.ndarray, start: int, hint: float) -> np.ndarray:
        n = x.shape[0]
        nz = np.flatnonzero(x)
        if n < SAMPLE_RATE // 2 or nz.size == 0 or not np.all(np.isfinite(x)):
            return np.zeros(n)
        lo, hi = int(nz[0]), int(nz[-1]) + 1
        if start < 0:
            lo = max(lo, min(-start, n))
        if hi - lo < SAMPLE_RATE // 2:
            return np.zeros(n)
        seg = x[lo:hi]
        lines = self._analysis.analyse(seg, hint)
        if lines is None:
            return np.zeros(n)
        f0, ks, snr, _ = lines
        present = ks[snr >= self.min_snr]
        if present.size == 0:
            return np.zeros(n)
        sos = np.stack(
            [
                notch_sos(k * f0, self.base_bandwidth_hz + self.bandwidth_per_harmonic_hz * k, SAMPLE_RATE)
                for k in present
            ]
        )
        # Odd reflection keeps value and slope continuous at the edges: no step to ring on.
        p = min(self.pad, seg.size - 1)
        padded = np.concatenate([2 * seg[0] - seg[p:0:-1], seg, 2 * seg[-1] - seg[-2 : -p - 2 : -1]])
        n_fft = 1 << int(math.ceil(math.log2(padded.size + self.pad)))
        notched = np.fft.irfft(np.fft.rfft(padded, n_fft) * sos_power_response(sos, n_fft), n_fft)
        hum = np.zeros(n)
        hum[lo:hi] = seg - notched[p : p + seg.size]
        return hum
