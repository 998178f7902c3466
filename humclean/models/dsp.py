"""Adaptive harmonic hum canceller without weights (numpy; the optional phase lock runs on torch).

Model of the hum in one chunk::

    h(t) = sum_k Re( c_k(t) * exp(j k phi(t)) ),   phi(t) = 2 pi f0 t + theta(t)

``f0`` is refined per chunk around the file-level hint (or chosen between the 50 and 60 Hz
families when there is none), ``theta`` (slow drift of mains frequency or tape speed) is tracked
from the phase of the strongest harmonics (then, with ``phase_lock``, corrected jointly over every line:
:mod:`.phaselock`), and each complex envelope ``c_k(t)`` is a cubic
B-spline fitted by (weighted, lightly penalised) least squares to the demodulated chunk. A
per-harmonic significance test with Wiener-like shrinkage keeps lines that are not really there
(or are buried in programme material) from being subtracted.

Why B-splines rather than narrow IIR low-pass filters: least squares over the whole chunk has
no start-up transients, handles the zero padding at file edges exactly (zero weight), and gives
the number of degrees of freedom needed for the significance test in closed form.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from humclean.models.base import ModelCard, RowwiseEstimator

__all__ = ["DspCanceller", "SAMPLE_RATE"]

SAMPLE_RATE = 8000
MAX_HARMONICS = 40
_FAMILIES = (50.0, 60.0)


@functools.cache
def _local_basis(d: int) -> np.ndarray:
    """Uniform cubic B-spline pieces sampled at ``d`` points of one knot interval: ``[d, 4]`` (read-only,
    kept: every chunk of a run asks for the same few knot spacings)."""
    u = (np.arange(d) + 0.5) / d
    basis = np.stack(
        [
            (1 - u) ** 3 / 6,
            (3 * u**3 - 6 * u**2 + 4) / 6,
            (-3 * u**3 + 3 * u**2 + 3 * u + 1) / 6,
            u**3 / 6,
        ],
        axis=1,
    )
    basis.flags.writeable = False
    return basis


class _Splines:
    """Uniform cubic B-spline basis on ``n_seg`` knot intervals of ``d`` samples (``M = n_seg+3``)."""

    def __init__(self, n_samples: int, d: int) -> None:
        self.d = d
        self.n_seg = -(-n_samples // d)
        self.n = n_samples
        self.m = self.n_seg + 3
        self.local = _local_basis(d)  # [d, 4]

    def _segments(self, v: np.ndarray) -> np.ndarray:
        """``[..., n]`` -> ``[..., n_seg, d]`` (zero-padded at the end)."""
        pad = self.n_seg * self.d - v.shape[-1]
        if pad:
            v = np.concatenate([v, np.zeros(v.shape[:-1] + (pad,), v.dtype)], axis=-1)
        return v.reshape(v.shape[:-1] + (self.n_seg, self.d))

    def project(self, v: np.ndarray) -> np.ndarray:
        """``B^T v`` for real ``v`` ``[K, n]`` -> ``[K, M]`` (one real GEMM)."""
        q = self._segments(v) @ self.local.astype(v.dtype)  # [K, S, 4]
        out = np.zeros(v.shape[:-1] + (self.m,), dtype=np.float64)
        for i in range(4):
            out[..., i : i + self.n_seg] += q[..., i]
        return out

    def gram(self, w: np.ndarray) -> np.ndarray:
        """``B^T diag(w) B``: ``[M, M]``."""
        ws = self._segments(w)  # [S, d]
        # Segments with unit weight (almost all) share one local Gram block.
        full = np.all(ws == 1.0, axis=1)
        loc = np.broadcast_to(self.local.T @ self.local, (self.n_seg, 4, 4)).copy()
        part = ~full
        if part.any():
            loc[part] = np.einsum("sd,di,dj->sij", ws[part], self.local, self.local)
        g = np.zeros((self.m, self.m))
        idx = np.arange(self.n_seg)
        for i in range(4):
            for j in range(4):
                g[idx + i, idx + j] += loc[:, i, j]
        return g

    def evaluate(self, beta: np.ndarray) -> np.ndarray:
        """Spline values ``[K, n]`` from real coefficients ``[K, M]``."""
        seg = np.stack([beta[..., i : i + self.n_seg] for i in range(4)], axis=-1)  # [K,S,4]
        vals = seg @ np.ascontiguousarray(self.local.T)  # [K, S, d]
        return vals.reshape(beta.shape[:-1] + (self.n_seg * self.d,))[..., : self.n]

    def evaluate_at(self, beta: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Spline values at sample indices ``idx`` ``[G]`` from coefficients ``[K, M]``: ``[K, G]``."""
        s, r = np.divmod(idx, self.d)
        out = np.zeros(beta.shape[:-1] + (idx.size,), dtype=beta.dtype)
        for i in range(4):
            out += beta[..., s + i] * self.local[r, i]
        return out

    def penalty(self) -> np.ndarray:
        """Second-difference penalty ``D^T D``: ``[M, M]`` (P-spline smoothness)."""
        dm = np.diff(np.eye(self.m), n=2, axis=0)
        return dm.T @ dm


def _phasors(phi: np.ndarray, ks: np.ndarray):  # type: ignore[no-untyped-def]
    """Yield ``(i, exp(-j ks[i] phi))`` for ascending ``ks`` by complex products, never a complex
    exponential per harmonic (an exponential costs about 30 multiplies): each step from one
    harmonic number to the next multiplies by ``exp(-j gap phi)`` built from a table of squarings, so
    eight lines up to the 40th take about 15 products instead of 40."""
    if np.any(np.diff(ks) < 0):
        raise ValueError("harmonic numbers must ascend")
    # complex64 is plenty: a few dozen chained multiplies drift by ~1e-6 rad. The phase (thousands
    # of radians) is wrapped in float64 first, so float32 sines keep ~1e-7 rad (by floor: np.mod is
    # twice as slow).
    turn = 2 * np.pi
    wrapped = (phi - turn * np.floor(phi * (1 / turn))).astype(np.float32)
    base = np.empty(phi.shape, dtype=np.complex64)
    base.real = np.cos(wrapped)
    base.imag = -np.sin(wrapped)
    squares = [base]  # exp(-j 2^i phi)
    p: np.ndarray | None = None
    k_prev = 0
    for i, k in enumerate(ks):
        gap = int(k) - k_prev
        bit = 0
        while gap:
            if bit == len(squares):
                squares.append(squares[-1] * squares[-1])
            if gap & 1:
                p = squares[bit] if p is None else p * squares[bit]
            gap >>= 1
            bit += 1
        k_prev = int(k)
        yield i, (np.ones_like(base) if p is None else p)


def _ramps(values: np.ndarray, step: int, n: int) -> np.ndarray:
    """``np.interp(arange(n), arange(0, n, step), values)`` for the uniform grid, as straight ramps
    between grid points (half the time of ``np.interp``); constant after the last point."""
    out = np.empty(n)
    m = values.size - 1
    ramp = np.arange(step) / step
    out[: m * step] = (values[:-1, None] + np.diff(values)[:, None] * ramp).ravel()
    out[m * step :] = values[-1]
    return out


@functools.cache
def _hann(m: int) -> np.ndarray:
    """``np.hanning(m)``, kept: every chunk of a run has the same length."""
    w = np.hanning(m)
    w.flags.writeable = False
    return w


def _harmonic_products(x: np.ndarray, phi: np.ndarray, ks: np.ndarray, splines: _Splines) -> np.ndarray:
    """``B^T (x * exp(-j k phi))`` for each harmonic ``k`` in ascending ``ks``: ``[K, M]`` complex."""
    re = np.empty((len(ks), x.shape[0]), dtype=np.float32)
    im = np.empty((len(ks), x.shape[0]), dtype=np.float32)
    for i, p in _phasors(phi, ks):
        np.multiply(p.real, x, out=re[i], casting="unsafe")
        np.multiply(p.imag, x, out=im[i], casting="unsafe")
    return splines.project(re) + 1j * splines.project(im)


def _synthesise(beta: np.ndarray, phi: np.ndarray, ks: np.ndarray, splines: _Splines) -> np.ndarray:
    """``sum_k Re(c_k(t) exp(j k phi(t)))`` with envelopes from coefficients ``[K, M]`` -> ``[n]``."""
    env_re = splines.evaluate(np.ascontiguousarray(beta.real))
    env_im = splines.evaluate(np.ascontiguousarray(beta.imag))
    out = np.zeros(phi.shape[0], dtype=np.float64)
    for i, p in _phasors(phi, ks):
        # exp(+j k phi) = conj(p): Re(c * conj(p)) = c_re p_re + c_im p_im
        out += env_re[i] * p.real + env_im[i] * p.imag
    return out


class DspCanceller(RowwiseEstimator):
    """Tuned adaptive harmonic canceller (no weights).

    ``estimate(chunks [B, T] float32, starts [B] int64, f0_hz [B] float64) -> [B, T] float32``.
    """

    def __init__(
        self,
        chunk_seconds: float = 8.0,
        overlap_seconds: float = 1.0,
        envelope_knot_seconds: float = 0.25,
        smoothness_grid: tuple[float, ...] = (1.0, 16.0, 256.0, 4096.0, 1e6),
        keep_threshold: float = 8.0,
        shrink: float = 2.0,
        cp_factor: float = 4.0,
        min_steady: float = 0.5,
        sample_rate: int = SAMPLE_RATE,
        phase_lock: bool = True,
        lock_frames: int = 41,
        first_knot_seconds: float = 2.0,
    ) -> None:
        # Hum of 40 harmonics of 61 Hz ends below 2.5 kHz, so any rate from 6 kHz up sees all of it;
        # lower rates make every per-sample step (demodulation, synthesis, resampling) cheaper.
        if sample_rate < 6000:
            raise ValueError("the canceller needs a model rate of at least 6000 Hz")
        self.sample_rate = int(sample_rate)
        chunk = int(round(chunk_seconds * sample_rate))
        overlap = int(round(overlap_seconds * sample_rate))
        self.card = ModelCard(
            name="dsp",
            sample_rate=self.sample_rate,
            chunk_samples=chunk,
            overlap_samples=overlap,
            arch="dsp",
            arch_args={
                "envelope_knot_seconds": envelope_knot_seconds,
                "smoothness_grid": list(smoothness_grid),
                "min_steady": min_steady,
                "keep_threshold": keep_threshold,
                "shrink": shrink,
                "cp_factor": cp_factor,
                "phase_lock": phase_lock,
                "lock_frames": lock_frames,
                "first_knot_seconds": first_knot_seconds,
            },
        )
        self.envelope_knot_seconds = envelope_knot_seconds
        self.smoothness_grid = tuple(smoothness_grid)
        self.min_steady = min_steady
        self.keep_threshold = keep_threshold
        self.shrink = shrink
        self.cp_factor = cp_factor
        self.phase_lock = phase_lock
        # frames (50 ms) over which the phase lock takes each line's amplitude as constant. Over the whole
        # chunk (161) the validation benchmark's standard files gain 0.16 dB, but a lone fundamental loses
        # up to 11 dB (golden set: 46.1 -> 35.4 dB): with one line there is no common phase to find, and
        # the lock turns the line's slow movement into phase error. 2 s it stays.
        self.lock_frames = int(lock_frames) | 1
        # knot spacing of the tracker's first pass (low harmonics): where speech and music are loudest, so
        # a spline that may bend every 0.25 s follows them; with 2 s knots the validation benchmark's
        # standard files gained 0.66 dB here and 1.4-1.6 dB with the harmonic network (the second pass over
        # all strong lines, 0.5 s knots, and the phase lock follow what is faster)
        self.first_knot_seconds = float(first_knot_seconds)

    def analyse(self, seg: np.ndarray, hint: float) -> tuple[float, np.ndarray, np.ndarray, np.ndarray] | None:
        """Refined fundamental, harmonic numbers ``[K]``, each line's SNR and noise ``[K]``; None if no mains."""
        spec, df = self._spectrum(seg)
        f0 = self._pick_f0(spec, df, hint)
        if f0 is None:
            return None
        k_max = int(min(MAX_HARMONICS, math.floor((self.sample_rate / 2 - 40) / (f0 + 0.3))))
        ks = np.arange(1, k_max + 1)
        snr, _ = self._line_snr(spec, df, f0, ks, seg.shape[0])
        f0 = self._refine_f0(spec, df, f0, ks, snr)
        snr, noise = self._line_snr(spec, df, f0, ks, seg.shape[0])
        return f0, ks, snr, noise

    # ------------------------------------------------------------------ public
    def track(
        self, x: np.ndarray, start: int, hint: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Mains phase of one chunk: ``(phi [n], valid [n], harmonic numbers [K], line SNR [K], noise [K])``.

        ``phi`` is the fundamental's phase (refined f0 plus tracked drift), ``valid`` is 0 on the zero
        padding at file edges. None when the chunk is too short, not finite or shows no mains lines.
        """
        n = x.shape[0]
        if n < self.sample_rate // 2 or not np.all(np.isfinite(x)):
            return None
        valid = np.ones(n)
        # Zero padding at file edges is not signal: exclude exact-zero runs at both ends.
        nz = np.flatnonzero(x)
        if nz.size == 0:
            return None
        lo, hi = int(nz[0]), int(nz[-1]) + 1
        if start < 0:
            lo = max(lo, min(-start, n))
        valid[:lo] = 0
        valid[hi:] = 0
        if hi - lo < self.sample_rate // 2:
            return None
        lines = self.analyse(x[lo:hi], hint)
        if lines is None:
            return None
        f0, ks, snr, noise = lines
        phi = 2 * np.pi * f0 * (np.arange(n) - lo) / self.sample_rate
        phi = self._track(x * valid, valid, phi, ks, snr, noise)
        return phi, valid, ks, snr, noise

    def estimate_one(self, x: np.ndarray, start: int, hint: float) -> np.ndarray:
        n = x.shape[0]
        tracked = self.track(x, start, hint)
        if tracked is None:
            return np.zeros(n)
        phi, valid, ks, snr, noise = tracked
        xw = x * valid
        if self.phase_lock:
            # The tracker follows the strongest lines only; all lines together correct its phase
            # (0.5 dB on the validation benchmark). Imported here: torch is not needed to import dsp.
            from .phaselock import lock_phase

            phi = lock_phase(x, phi, valid, self.sample_rate // 20, int(ks.max()), wide=self.lock_frames)

        # Final envelope fit over candidate harmonics (skip the hopeless ones to save time).
        cand = ks[snr > 0.5]
        if cand.size == 0:
            return np.zeros(n)
        splines = _Splines(n, int(round(self.envelope_knot_seconds * self.sample_rate)))
        gram = splines.gram(valid)
        rhs = _harmonic_products(xw, phi, cand, splines)  # [K, M]
        beta, e_fit, dof = self._solve(gram, splines, rhs, noise[cand - 1])
        # Stationarity: hum is a steady line (slow AM only), so a constant envelope already
        # holds most of its energy; a note passing near k*f0 is not. Partition of unity:
        # sum_m B_m == 1, hence sum_m rhs_m is the plain demodulated sum.
        w_total = float(valid.sum())
        c0 = 2.0 * rhs.sum(axis=1) / w_total
        e_const = 0.5 * np.abs(c0) ** 2 * w_total
        e_noise = dof * noise[cand - 1]
        ratio = e_fit / np.maximum(e_noise, 1e-30)
        steady = e_const >= self.min_steady * e_fit
        gain = np.where((ratio >= self.keep_threshold) & steady, np.clip(1 - self.shrink / ratio, 0, 1), 0.0)
        keep = gain > 0
        if not keep.any():
            return np.zeros(n)
        hum = _synthesise(beta[keep] * gain[keep, None], phi, cand[keep], splines)
        return hum * valid

    def _spectrum(self, seg: np.ndarray) -> tuple[np.ndarray, float]:
        """Hann power spectrum of the valid region, zero-padded x2: (``[F]``, bin width Hz)."""
        m = seg.shape[0]
        w = _hann(m)
        nfft = 1 << int(math.ceil(math.log2(2 * m)))
        limit = int(2600 * nfft / self.sample_rate)
        # single precision (numpy >= 2 transforms float32 as such: 0.6 against 1.4 ms per 8 s chunk):
        # its rounding sits some 140 dB under the strongest line, the background floor 90 dB
        s = np.fft.rfft((seg * w).astype(np.float32), nfft)[:limit].astype(np.complex128)
        # Normalised so that white noise of variance s2 has mean s2 per bin.
        return (s.real**2 + s.imag**2) / np.sum(w**2), self.sample_rate / nfft

    @staticmethod
    def _background(spec: np.ndarray, df: float, freqs: np.ndarray) -> np.ndarray:
        """Mean background power per bin near each frequency (median of 3..12 Hz either side)."""
        offs = np.concatenate([np.arange(-12.0, -3.0, df), np.arange(3.0, 12.0, df)])
        idx = np.clip(np.rint((freqs[:, None] + offs[None, :]) / df).astype(np.int64), 0, spec.size - 1)
        # Mean, not median: speech and music are bursty, and what leaks into the fit is their
        # mean power.
        # Floor 90 dB under the strongest component: float32 input has no real background below
        # that, and a zero background would make every bin look like a line.
        return np.maximum(np.mean(spec[idx], axis=1), 1e-9 * float(spec.max())) + 1e-30

    def _peak(self, spec: np.ndarray, df: float, freqs: np.ndarray, half_hz: np.ndarray) -> np.ndarray:
        """Maximum power within ``+-half_hz`` of each frequency."""
        width = int(np.ceil(half_hz.max() / df))
        offs = np.arange(-width, width + 1)
        centre = np.rint(freqs / df).astype(np.int64)
        idx = np.clip(centre[:, None] + offs[None, :], 0, spec.size - 1)
        vals = spec[idx]
        vals = np.where(np.abs(offs[None, :]) * df <= half_hz[:, None] + 1e-9, vals, 0.0)
        return vals.max(axis=1)

    def _pick_f0(self, spec: np.ndarray, df: float, hint: float) -> float | None:
        """Chunk fundamental: near the hint, else the best of the 50/60 Hz families."""
        if math.isfinite(hint) and 40.0 < hint < 70.0:
            grids = [hint + np.arange(-0.25, 0.2505, 0.002)]
        else:
            grids = [fam + np.arange(-1.2, 1.2005, 0.004) for fam in _FAMILIES]
        best_f, best_s = None, -1.0
        for grid in grids:
            nom = float(grid.mean())
            ks = np.arange(1, int(min(MAX_HARMONICS, 2500 / (nom + 1.5))) + 1)
            noise = self._background(spec, df, ks * nom)
            pos = np.rint(np.outer(ks, grid) / df).astype(np.int64)  # [K, G]
            # Per-harmonic SNR in dB, clipped: a few strong music partials must not dominate,
            # and the sum over the series rewards alignment.
            p = np.maximum(spec[pos], spec[np.clip(pos + 1, 0, spec.size - 1)])
            snr_db = 10 * np.log10(p / noise[:, None] + 1e-12)
            score = np.clip(snr_db - 6.0, 0.0, 60.0).sum(axis=0)
            kern = np.hanning(7)
            score = np.convolve(score, kern / kern.sum(), mode="same")
            i = int(np.argmax(score))
            if score[i] > best_s:
                best_f, best_s = float(grid[i]), float(score[i])
        if best_f is None or best_s <= 0:
            return None if not math.isfinite(hint) else float(hint)
        return best_f

    @staticmethod
    def _refine_f0(spec: np.ndarray, df: float, f0: float, ks: np.ndarray, snr: np.ndarray) -> float:
        """Chunk-mean f0 from interpolated peaks of the strong harmonics.

        A 0.01 Hz error is 0.4 Hz at the 40th harmonic, more than the envelopes can follow,
        so the grid search alone is not precise enough. Each harmonic's ``f_k / k`` is weighted
        by ``k^2 * SNR`` (the inverse variance of its estimate).
        """
        use = ks[snr >= 10.0]
        if use.size == 0:
            return f0
        half = np.ceil((0.3 + 0.05 * use) / df).astype(np.int64)
        est, wts = [], []
        for k, h in zip(use, half, strict=True):
            c = int(round(k * f0 / df))
            lo, hi = max(1, c - h), min(spec.size - 2, c + h)
            if hi <= lo:
                continue
            p = lo + int(np.argmax(spec[lo : hi + 1]))
            a, b, d = np.log(spec[p - 1 : p + 2] + 1e-30)
            den = a - 2 * b + d
            delta = 0.5 * (a - d) / den if den < 0 else 0.0
            est.append((p + float(np.clip(delta, -0.5, 0.5))) * df / k)
            wts.append(k * k * float(snr[k - 1]))
        if not est:
            return f0
        refined = float(np.average(est, weights=wts))
        return refined if abs(refined - f0) < 0.3 else f0

    def _line_snr(
        self, spec: np.ndarray, df: float, f0: float, ks: np.ndarray, n_valid: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per harmonic ``[K]``: line-to-background ratio and background variance per dof."""
        freqs = ks * f0
        bg = self._background(spec, df, freqs)
        # Drift smears high harmonics over the chunk: widen the search with k.
        peak = self._peak(spec, df, freqs, 0.3 + 0.05 * ks)
        snr = np.maximum(peak / bg - 1.0, 0.0)
        # A white-noise variance s2 gives bg == s2, and an LS fit with 2*dof real parameters
        # takes s2 * 2 * dof of energy; so the energy per complex dof is 2 * bg.
        return snr, 2.0 * bg

    def _solve(
        self, gram: np.ndarray, splines: _Splines, rhs: np.ndarray, noise: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Penalised LS for the envelopes with a per-harmonic choice of smoothness.

        The demodulated fit sees each harmonic at half weight (cos^2 averages to 1/2), so the
        envelope is ``2 (G + lam R)^-1 B^T (x e^{-jk phi})``. For each harmonic the penalty is
        picked from a grid by Mallows' Cp / SURE: maximise ``E_fit - 2 * noise * dof``, i.e.
        follow amplitude modulation only as far as the line's SNR pays for it. (Cp proper uses
        factor 2; a larger ``cp_factor`` errs towards smoother envelopes, which measured better
        because programme material is burstier than the noise model assumes.)

        returns: coefficients ``[K, M]``, fitted energy ``[K]``, effective complex dof ``[K]``.
        """
        m = gram.shape[0]
        pen = splines.penalty()
        scale = np.trace(gram) / m + 1e-30
        eye = np.eye(m)
        best_beta = np.zeros_like(rhs)
        best_score = np.full(rhs.shape[0], -np.inf)
        best_e = np.zeros(rhs.shape[0])
        best_dof = np.ones(rhs.shape[0])
        for rel in self.smoothness_grid:
            a = gram + rel * scale * pen + 1e-9 * scale * eye
            beta = 2.0 * np.linalg.solve(a, rhs.T).T  # [K, M]
            dof = float(np.trace(np.linalg.solve(a, gram)))
            # Energy of Re(c e^{jk phi}) is half the weighted integral of |c|^2.
            e_fit = 0.5 * np.real(np.einsum("km,mn,kn->k", np.conj(beta), gram, beta))
            score = e_fit - self.cp_factor * noise * dof
            better = score > best_score
            best_score = np.where(better, score, best_score)
            best_beta[better] = beta[better]
            best_e = np.where(better, e_fit, best_e)
            best_dof = np.where(better, dof, best_dof)
        return best_beta, best_e, best_dof

    def _track(
        self,
        xw: np.ndarray,
        valid: np.ndarray,
        phi: np.ndarray,
        ks: np.ndarray,
        snr: np.ndarray,
        noise: np.ndarray,
    ) -> np.ndarray:
        """Follow slow drift of the fundamental's phase: returns the updated ``phi`` ``[n]``.

        Two passes: first from low harmonics (whose phase moves slowly enough for a knot spline of
        ``first_knot_seconds`` to follow), then from all strong harmonics after correction (0.5 s knots).
        """
        n = phi.shape[0]
        for k_limit, knot_s in ((6, self.first_knot_seconds), (MAX_HARMONICS, 0.5)):
            sel = ks[(ks <= k_limit) & (snr >= 10.0)]
            if sel.size == 0:
                continue
            weight_k = sel.astype(np.float64) ** 2 * np.minimum(snr[sel - 1], 1e4)
            order = np.sort(np.argsort(weight_k)[::-1][:8])  # the 8 strongest, in ascending k
            sel, weight_k = sel[order], weight_k[order]
            splines = _Splines(n, int(round(knot_s * self.sample_rate)))
            gram = splines.gram(valid)
            rhs = _harmonic_products(xw, phi, sel, splines)
            scale = np.trace(gram) / gram.shape[0]
            a = gram + 1e-6 * scale * np.eye(gram.shape[0])
            beta = np.linalg.solve(a, rhs.T).T  # [K, M]
            # Envelope phase sampled every 0.05 s on the valid part.
            step = self.sample_rate // 20
            grid = np.arange(0, n, step)
            env = splines.evaluate_at(beta, grid)  # [K, G]
            inc = env[:, 1:] * np.conj(env[:, :-1])
            mag = np.abs(env[:, 1:]) * np.abs(env[:, :-1])
            w = weight_k[:, None] * (valid[grid][None, 1:] * valid[grid][None, :-1]) * (mag > 0)
            w = w * mag / (np.sum(mag, axis=1, keepdims=True) / mag.shape[1] + 1e-30)
            dtheta = np.angle(inc) / sel[:, None]
            wsum = w.sum(axis=0)
            d = np.where(wsum > 0, (w * dtheta).sum(axis=0) / np.maximum(wsum, 1e-30), 0.0)
            theta = np.concatenate([[0.0], np.cumsum(d)])
            # Keep the mean phase where it was (the envelopes carry the absolute phase).
            vg = valid[grid] > 0
            theta -= np.mean(theta[vg]) if vg.any() else 0.0
            phi = phi + _ramps(theta, step, n)
        return phi
