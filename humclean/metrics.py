"""Streaming measurements: hum line levels and reference scores (SI-SDR, PSNR) over whole files.

Both accumulate sufficient statistics block by block, so memory does not grow with file length.
"""

from __future__ import annotations

import math

import numpy as np

FULL_SCALE_SINE_POWER = 0.5


class LinePowerMeter:
    """Mean power spectrum of one channel, from non-overlapping Hann frames of about one second.

    :meth:`hum_db` then measures the power in the bands around ``k * f0`` above the local noise
    floor, as an RMS level in dB relative to a full-scale sine (0 dB = full-scale sine).
    """

    def __init__(self, sample_rate: int, frame_seconds: float = 1.0) -> None:
        self.sample_rate = sample_rate
        self.frame = max(256, int(2 ** round(math.log2(sample_rate * frame_seconds))))
        self.window = np.hanning(self.frame)
        self._acc = np.zeros(self.frame // 2 + 1)
        self._frames = 0
        self._pending = np.zeros(0)

    def update(self, x: np.ndarray) -> None:
        """Add consecutive samples ``[T]``."""
        buf = np.concatenate([self._pending, np.asarray(x, dtype=np.float64)])
        n = buf.shape[0] // self.frame
        if n:
            frames = buf[: n * self.frame].reshape(n, self.frame) * self.window
            self._acc += (np.abs(np.fft.rfft(frames, axis=1)) ** 2).sum(axis=0)
            self._frames += n
        self._pending = buf[n * self.frame :]

    def hum_db(self, f0_hz: float, harmonics: int, drift_hz: float = 0.1) -> float:
        """RMS level of the lines at ``k * f0`` (k = 1..harmonics) above the floor, dB re full-scale sine."""
        if self._frames == 0 and self._pending.shape[0] >= 64:
            # short signal: one zero-padded frame is better than no measurement
            pending, self._pending = self._pending, np.zeros(0)
            self.update(np.concatenate([pending, np.zeros(self.frame - pending.shape[0])]))
        if self._frames == 0 or not math.isfinite(f0_hz) or harmonics < 1:
            return -math.inf
        psd = self._acc / self._frames
        # one-sided power per bin: 2/N * |X|^2 / sum(w^2) (Parseval for a Hann-windowed frame)
        scale = 2.0 / (self.frame * float(np.sum(self.window**2)))
        bin_hz = self.sample_rate / self.frame
        total = 0.0
        for k in range(1, harmonics + 1):
            fk = k * f0_hz
            if fk >= self.sample_rate / 2 - 2 * bin_hz:
                break
            half = 2 + int(math.ceil(k * drift_hz / bin_hz))
            c = int(round(fk / bin_hz))
            lo, hi = max(1, c - half), min(psd.shape[0] - 1, c + half + 1)
            nb_lo, nb_hi = max(1, lo - 8 * half), min(psd.shape[0], hi + 8 * half)
            neigh = np.concatenate([psd[nb_lo:lo], psd[hi:nb_hi]])
            floor = float(np.median(neigh)) if neigh.size else 0.0
            total += max(0.0, float(np.sum(psd[lo:hi]) - floor * (hi - lo))) * scale
        if total <= 0:
            return -math.inf
        return 10 * math.log10(total / FULL_SCALE_SINE_POWER)


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
