"""Mains hum detection: streaming, bounded memory, any sample rate (numpy only).

The detector cuts the channel into 2 s Hann frames (hop 1 s) and keeps, per frame, the power
spectrum below ~2.6 kHz (0.5 Hz bins). Frame spectra are stored in a fixed number of slots; when
the slots are full, neighbouring slots are averaged pairwise, so memory is bounded (about 5 MB at
any rate and length) while the time resolution degrades gracefully for long tapes.

Decision (see :meth:`HumDetector.result`):

1. Per slot, each bin's *prominence* is its level above the log-mean of its neighbourhood
   (2..8 Hz either side). Clipped prominence is summed over the harmonic series ``k * f0`` for f0
   in 49..51 Hz and 59..61 Hz; the family and f0 with the best score over the whole file (each
   slot may deviate by the allowed drift) win.
2. The fundamental is tracked per slot, and per harmonic we measure how often a line is present
   (stationarity) and its prominence in the drift-compensated mean spectrum.
3. Hum is declared when lines are stationary (present in most frames) *and* either several lines
   of the series agree or a low harmonic (1..4) alone is strong. Musical notes fail stationarity
   or the series test; clean recordings have no stationary lines.
4. Hum that is there for only part of a recording (a unit switched on or off, two transfers spliced
   together) fails stationarity over the whole file. When no candidate passes, each low line's longest
   run (per candidate) of at least ``MIN_SPAN_SECONDS`` is judged on its own by the same tests and one
   more: a low line strong and steady throughout the run (runs of held notes pass the others on parts
   of pieces). ``span_s`` says where.

Level definition: ``hum_db`` is the summed power of the detected lines (power above the local
neighbourhood), in dB relative to the power of a full-scale sine (0.5), i.e. a full-scale 50 Hz
sine reads 0 dB and a hum whose RMS is 0.01 reads -37 dB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

__all__ = ["HumDetection", "HumDetector", "detect_hum", "hum_level_db"]

FRAME_SECONDS = 2.0
HOP_SECONDS = 1.0
MAX_FREQ_HZ = 2600.0  # 40 harmonics of 61 Hz plus margin
MAX_HARMONICS = 40
MAX_SLOTS = 256
MIN_SECONDS = 1.0
FAMILIES = (50, 60)
OFFSET_RANGE_HZ = 1.1  # tape speed error of the fundamental
DRIFT_RANGE_HZ = 0.12  # how far one frame's fundamental may stray from the file mean

# Neighbourhood for the prominence baseline, in Hz either side of the bin.
_GUARD_HZ = 2.0
_NEIGH_HZ = 8.0
# Prominence thresholds (dB above the neighbourhood's log-mean).
_EVIDENCE_FLOOR_DB = 6.0
_EVIDENCE_CAP_DB = 30.0
_PRESENT_DB = 6.0  # a line is "present" in a frame
_MEAN_LINE_DB = 6.0  # a harmonic's prominence in the drift-compensated mean spectrum
_MIN_PRESENCE = 0.7  # fraction of frames a line must be present in
_SINGLE_LINE_DB = 15.0  # one stationary low harmonic alone needs this much prominence
_MIN_LINES_SERIES = 3  # or at least this many stationary lines of one series
_SERIES_EXCESS_DB = 12.0  # ... whose prominences above _MEAN_LINE_DB add up to this much
_STEADY_PRESENCE = 0.85
_STEADY_LINE_DB = 3.0
_STEADY_LEVEL_STD_DB = 2.5
_STEADY_SINGLE_DB = 9.0  # a steady low harmonic alone
_CANDIDATES_PER_FAMILY = 3
_MAX_OFFSET_BINS = 0.35  # a line's peak must sit on k * f0 (equal-tempered notes do not)
_MAX_LEVEL_STD_DB = 6.0  # hum level is steady; notes come and go
MIN_SPAN_SECONDS = 30.0  # shortest part of a recording judged on its own (step 4)
# slots without a low line that a run may bridge, and, once found, that the reported part bridges (programme
# covering the line); a slot is one 1 s hop up to MAX_SLOTS frames, several on longer recordings
_SPAN_GAP_SLOTS = 1
_SPAN_REPORT_GAP_SLOTS = 4
# a part's steady line: hum swelling by +-40 % spreads about 2.6 dB; the held notes that passed the other
# tests on parts of the corpus' music spread 4 dB or more
_SPAN_LEVEL_STD_DB = 3.5


@dataclass(frozen=True)
class HumDetection:
    """Result of hum detection for one channel.

    has_hum: whether stationary mains hum was found.
    mains_hz: 50 or 60 (None when no hum).
    f0_hz: mean fundamental in Hz (None when no hum).
    drift_hz: peak-to-peak variation of the tracked fundamental (0 when no hum).
    harmonics: number of harmonic lines detected.
    hum_db: summed power of the detected lines in dB relative to a full-scale sine (-inf if none).
    line_db: prominence of the strongest detected (or, with no hum, candidate) line above its
        spectral neighbourhood in the drift-compensated mean spectrum, dB.
    harmonic_numbers: which harmonics (1 = fundamental) were detected; pass it (or its maximum)
        to :func:`hum_level_db` to measure the same lines on a cleaned signal.
    span_s: ``(start, end)`` in seconds (to the detector's 1 s hop, coarser on long files) when the hum
        was found by judging part of the recording on its own: the part where its lines stood out
        steadily (it may run on where programme covers it). None when it was found over the recording as
        a whole. ``hum_db``, ``f0_hz`` and ``drift_hz`` are then measured over that part.
    """

    has_hum: bool
    mains_hz: int | None
    f0_hz: float | None
    drift_hz: float
    harmonics: int
    hum_db: float
    line_db: float
    harmonic_numbers: tuple[int, ...] = ()
    span_s: tuple[float, float] | None = None


_NO_HUM = HumDetection(False, None, None, 0.0, 0, float("-inf"), 0.0, ())


def _peak_offset(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Vertex of the parabola through three log powers at bins -1, 0, +1, in bins from the centre (within
    +-0.5; 0 where the three show no maximum)."""
    den = left - 2 * centre + right
    return np.clip(np.where(den < 0, 0.5 * (left - right) / np.where(den < 0, den, -1.0), 0.0), -0.5, 0.5)


class HumDetector:
    """Streaming hum detector for one channel.

    Feed consecutive blocks ``[T]`` (any length) with :meth:`update`, then call :meth:`result`
    (which may be called repeatedly; it does not consume state).
    """

    def __init__(self, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        self.sample_rate = int(sample_rate)
        self._n = max(16, int(round(FRAME_SECONDS * sample_rate)))
        self._hop = max(1, int(round(HOP_SECONDS * sample_rate)))
        # Periodic Hann: exact overlap-add constant at hop = n/2, unbiased line power.
        self._win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self._n) / self._n)
        self._win_power = float(np.sum(self._win**2))
        self._df = self.sample_rate / self._n
        self._nbins = min(self._n // 2 + 1, int(MAX_FREQ_HZ / self._df) + 2)
        self._buf = np.zeros(self._n, dtype=np.float64)
        self._fill = 0
        self._samples = 0
        self._slots = np.zeros((MAX_SLOTS, self._nbins), dtype=np.float32)
        self._slot_frames = np.zeros(MAX_SLOTS, dtype=np.int64)
        # index of each slot's first frame, counting the silent frames that are skipped (for times: step 4)
        self._slot_first = np.zeros(MAX_SLOTS, dtype=np.int64)
        self._frames_seen = 0
        self._acc_first = 0
        self._n_slots = 0
        self._frames_per_slot = 1
        self._acc = np.zeros(self._nbins, dtype=np.float64)
        self._acc_frames = 0
        self._measured_at: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ streaming
    def update(self, block: np.ndarray) -> None:
        """Consume the next block ``[T]`` of samples (float; any length, including 0)."""
        x = np.asarray(block, dtype=np.float64).reshape(-1)
        self._samples += x.size
        pos = 0
        while pos < x.size:
            take = min(self._n - self._fill, x.size - pos)
            self._buf[self._fill : self._fill + take] = x[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == self._n:
                self._frame(self._buf)
                keep = self._n - self._hop
                self._buf[:keep] = self._buf[self._hop :]
                self._fill = keep

    def _spectrum(self, frame: np.ndarray) -> np.ndarray:
        spec = np.fft.rfft(frame * self._win)[: self._nbins]
        # One-sided power normalised so that a sine of amplitude A sums to A^2/2 over its lobe.
        return (2.0 / (self._n * self._win_power)) * (spec.real**2 + spec.imag**2)

    def _frame(self, frame: np.ndarray) -> None:
        index = self._frames_seen
        self._frames_seen += 1
        if not np.any(frame):
            return  # digital silence carries no evidence either way
        if self._acc_frames == 0:
            self._acc_first = index
        self._acc += self._spectrum(frame)
        self._acc_frames += 1
        if self._acc_frames == self._frames_per_slot:
            self._push_slot()

    def _push_slot(self) -> None:
        if self._n_slots == MAX_SLOTS:
            # Halve the time resolution: average neighbouring slots pairwise.
            half = MAX_SLOTS // 2
            w = self._slot_frames.astype(np.float64)
            pair_w = w[0::2] + w[1::2]
            merged = (self._slots[0::2] * w[0::2, None] + self._slots[1::2] * w[1::2, None]) / np.maximum(pair_w, 1)[
                :, None
            ]
            self._slots[:half] = merged
            self._slots[half:] = 0
            self._slot_frames[:half] = pair_w.astype(np.int64)
            self._slot_frames[half:] = 0
            self._slot_first[:half] = self._slot_first[0::2]
            self._n_slots = half
            self._frames_per_slot *= 2
        self._slots[self._n_slots] = self._acc / self._acc_frames
        self._slot_frames[self._n_slots] = self._acc_frames
        self._slot_first[self._n_slots] = self._acc_first
        self._n_slots += 1
        self._acc[:] = 0
        self._acc_frames = 0

    def _collected(self) -> tuple[np.ndarray, np.ndarray]:
        """Slot spectra ``[S, F]`` float64 and frame counts ``[S]`` including the partial slot."""
        spectra = [self._slots[: self._n_slots].astype(np.float64)]
        counts = [self._slot_frames[: self._n_slots].astype(np.float64)]
        if self._acc_frames:
            spectra.append((self._acc / self._acc_frames)[None])
            counts.append(np.array([float(self._acc_frames)]))
        if self._n_slots == 0 and self._acc_frames == 0 and self._fill > 0:
            # Shorter than one frame: analyse what there is, zero-padded (without mutating).
            frame = np.zeros(self._n)
            frame[: self._fill] = self._buf[: self._fill]
            if np.any(frame):
                spectra.append(self._spectrum(frame)[None])
                counts.append(np.array([1.0]))
        return np.concatenate(spectra, axis=0), np.concatenate(counts)

    def _slot_seconds(self) -> np.ndarray:
        """When each of :meth:`_collected`'s slots starts, in seconds of the recording (silent frames skipped
        by the detector included), for recordings of at least one frame."""
        first = list(self._slot_first[: self._n_slots])
        if self._acc_frames:
            first.append(self._acc_first)
        return np.asarray(first, dtype=np.float64) * HOP_SECONDS

    def _measured(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_collected` and its :meth:`_prominence_db`, kept until more samples arrive (the
        pipeline asks for the decision and then the input level of the same state)."""
        if self._measured_at is None or self._measured_at[0] != self._samples:
            spectra, counts = self._collected()
            prom = self._prominence_db(spectra) if spectra.shape[0] else spectra
            self._measured_at = (self._samples, spectra, counts, prom)
        return self._measured_at[1:]

    # ------------------------------------------------------------------ analysis
    def _prominence_db(self, spectra: np.ndarray) -> np.ndarray:
        """Level of each bin above the log-mean of its neighbourhood, ``[S, F]`` dB."""
        floor = np.maximum(spectra.mean(axis=1, keepdims=True) * 1e-12, 1e-30)
        log_p = np.log10(spectra + floor)
        log_p *= 10
        g = max(1, int(round(_GUARD_HZ / self._df)))
        w = max(g + 1, int(round(_NEIGH_HZ / self._df)))
        padded = np.pad(log_p, ((0, 0), (w, w)), mode="reflect")
        nb = log_p.shape[1]
        cs = np.empty((padded.shape[0], padded.shape[1] + 1))
        cs[:, 0] = 0.0
        np.cumsum(padded, axis=1, out=cs[:, 1:])
        # bin i sits at i + w in ``padded``: contiguous slices of ``cs`` instead of gathers (in place:
        # this runs twice per channel on up to 256 x 5200 bins)
        left = cs[:, w - g + 1 : w - g + 1 + nb] - cs[:, :nb]  # bins i-w .. i-g
        right = cs[:, 2 * w + 1 : 2 * w + 1 + nb] - cs[:, w + g : w + g + nb]  # bins i+g .. i+w
        left += right
        left /= 2 * (w - g + 1)
        log_p -= left
        return log_p

    @staticmethod
    def _straddle(evidence: np.ndarray) -> np.ndarray:
        """``[F - 1, S]``: per bin pair ``(i, i + 1)`` the larger evidence, bins first (what :meth:`_score`
        gathers: whole rows)."""
        return np.ascontiguousarray(np.maximum(evidence[:, :-1], evidence[:, 1:]).T)

    def _score(self, straddle: np.ndarray, f0_grid: np.ndarray) -> np.ndarray:
        """Harmonic-sum score ``[S, G]`` from :meth:`_straddle`'s evidence."""
        nb = straddle.shape[0] + 1
        k_max = int(min(MAX_HARMONICS, (nb - 3) * self._df / f0_grid.max()))
        pos = np.arange(1, k_max + 1)[:, None] * f0_grid[None, :] / self._df  # [K, G] fractional bins
        lo = np.floor(pos).astype(np.int64)
        # Max of the two bins that straddle the line (robust to Hann scalloping), summed over the
        # harmonics in order (the same sums as reducing a [S, K, G] gather, without building it)
        total = straddle[lo[0]].copy()  # [G, S]
        for row in lo[1:]:
            total += straddle[row]
        return total.T

    def result(self) -> HumDetection:
        """Decide on the samples seen so far (does not consume state)."""
        if self._samples < MIN_SECONDS * self.sample_rate:
            return _NO_HUM
        if self.sample_rate / 2 < 62:
            return _NO_HUM
        spectra, counts, prom = self._measured()
        if spectra.shape[0] == 0:
            return _NO_HUM
        weights = counts / counts.sum()
        evidence = np.clip(prom - _EVIDENCE_FLOOR_DB, 0.0, _EVIDENCE_CAP_DB)
        straddle = self._straddle(evidence)

        candidates: list[tuple[int, float]] = []
        step = 0.005
        for mains in FAMILIES:
            if mains * 1.05 > self.sample_rate / 2:
                continue
            grid = mains + np.arange(-OFFSET_RANGE_HZ, OFFSET_RANGE_HZ + step / 2, step)
            total = self._drift_total(self._score(straddle, grid), weights, step)
            # Several candidates per family: the strongest series is not always the hum
            # (a tonal piece in G has a near-harmonic series on 49 Hz; a lone hum fundamental
            # scores less than that series).
            peaks = np.nonzero((total[1:-1] >= total[:-2]) & (total[1:-1] > total[2:]) & (total[1:-1] > 0))[0] + 1
            peaks = peaks[np.argsort(total[peaks])[::-1]]
            chosen: list[int] = []
            for p in peaks:
                if all(abs(p - q) * step > 2 * DRIFT_RANGE_HZ for q in chosen):
                    chosen.append(int(p))
                if len(chosen) == _CANDIDATES_PER_FAMILY:
                    break
            candidates.extend((mains, float(grid[p])) for p in chosen)
            # ... and a lone fundamental on the flank of such a series is no peak of the series score
            # at all: the most prominent line in the fundamental's range is one more candidate
            lone = self._lone_fundamental(spectra, prom, weights, mains)
            if lone is not None and all(abs(lone - grid[q]) > 2 * DRIFT_RANGE_HZ for q in chosen):
                candidates.append((mains, lone))
        best: tuple[float, HumDetection] | None = None
        fallback_line_db = 0.0
        for mains, f0_coarse in candidates:
            det, quality = self._analyse(spectra, counts, prom, straddle, mains, f0_coarse)
            if det.has_hum and (best is None or quality > best[0]):
                best = (quality, det)
            fallback_line_db = max(fallback_line_db, det.line_db)
        if best is None:
            best = self._best_span(spectra, counts, prom, straddle, candidates)
        if best is None:
            return HumDetection(False, None, None, 0.0, 0, float("-inf"), fallback_line_db, ())
        return best[1]

    def _best_span(
        self,
        spectra: np.ndarray,
        counts: np.ndarray,
        prom: np.ndarray,
        straddle: np.ndarray,
        candidates: list[tuple[int, float]],
    ) -> tuple[float, HumDetection] | None:
        """Step 4 of the module docstring: the best candidate judged on one of its low lines' longest runs
        (at least ``MIN_SPAN_SECONDS``, shorter than the recording), or None."""
        duration = self._samples / self.sample_rate
        if duration <= MIN_SPAN_SECONDS:
            return None
        # slot i covers the recording from starts[i] to starts[i + 1] (its last frame runs on a hop further)
        starts = np.append(self._slot_seconds(), duration)
        best: tuple[float, HumDetection] | None = None
        tried: set[tuple[int, int, float]] = set()
        for mains, f0_coarse in candidates:
            f_slot, _ = self._track(straddle, f0_coarse)
            low = self._line_stats(spectra, counts / counts.sum(), prom, f_slot, np.arange(1, 4))
            for line, level in zip(low["present"].T, low["level_db"].T, strict=True):
                # each low line's own run: programme on one line must not bridge another's gap
                lo, hi = _trimmed(line, *_longest_run(line, _SPAN_GAP_SLOTS))
                if (
                    hi - lo == len(line)
                    or _span_end(starts, hi) - starts[lo] < MIN_SPAN_SECONDS
                    or (lo, hi, f0_coarse) in tried
                ):
                    continue
                tried.add((lo, hi, f0_coarse))
                part = slice(lo, hi)
                det, quality = self._analyse(
                    spectra[part], counts[part], prom[part], straddle[:, part], mains, f0_coarse, strict=True
                )
                if det.has_hum and (best is None or quality > best[0]):
                    # the line at the part's own level (not programme on its frequency) may run on further
                    typical = np.median(level[lo:hi][line[lo:hi]])
                    steady = line & (np.abs(level - typical) <= _STEADY_LEVEL_STD_DB)
                    lo, hi = _widened(steady, lo, hi, _SPAN_REPORT_GAP_SLOTS)
                    best = (quality, replace(det, span_s=(float(starts[lo]), _span_end(starts, hi))))
        return best

    def _lone_fundamental(self, spectra: np.ndarray, prom: np.ndarray, weights: np.ndarray, mains: int) -> float | None:
        """Frequency of the most prominent line within the tape-speed range of ``mains`` in the mean
        spectrum (interpolated between bins), or None when nothing there stands out."""
        lo = int(math.floor((mains - OFFSET_RANGE_HZ) / self._df))
        hi = int(math.ceil((mains + OFFSET_RANGE_HZ) / self._df))
        mean_prom = weights @ prom[:, lo - 1 : hi + 2]
        p = 1 + int(np.argmax(mean_prom[1:-1]))
        # a peak of its own, not the flank of a line outside the range (a note a semitone away)
        if mean_prom[p] < _EVIDENCE_FLOOR_DB or mean_prom[p] < max(mean_prom[p - 1], mean_prom[p + 1]):
            return None
        a, b, d = np.log(weights @ spectra[:, lo + p - 2 : lo + p + 1] + 1e-30)
        f0 = float((lo - 1 + p + _peak_offset(a, b, d)) * self._df)
        return f0 if abs(f0 - mains) <= OFFSET_RANGE_HZ else None

    @staticmethod
    def _drift_total(score: np.ndarray, weights: np.ndarray, step: float) -> np.ndarray:
        """Per-slot scores ``[S, G]`` summed over slots, each slot free to stray by the drift range."""
        r = int(round(DRIFT_RANGE_HZ / step))
        padded = np.pad(score, ((0, 0), (r, r)), mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * r + 1, axis=1)
        total = (windows.max(axis=2) * weights[:, None]).sum(axis=0)
        # The max-filter leaves plateaus; smoothing puts each maximum in its middle.
        kern = np.hanning(2 * r + 3)
        return np.convolve(total, kern / kern.sum(), mode="same")

    def _track(self, straddle: np.ndarray, f0_center: float) -> tuple[np.ndarray, np.ndarray]:
        """Coarse per-slot fundamental ``[S]`` near ``f0_center`` and its score ``[S]``."""
        step = 0.005
        span = DRIFT_RANGE_HZ + 0.03
        grid = f0_center + np.arange(-span, span + step / 2, step)
        score = self._score(straddle, grid)
        # Smooth along the grid so that the argmax is not decided by a single high harmonic.
        kern = np.hanning(9)
        kern /= kern.sum()
        score_s = np.apply_along_axis(lambda v: np.convolve(v, kern, mode="same"), 1, score)
        idx = np.argmax(score_s, axis=1)
        strength = score_s[np.arange(len(idx)), idx]
        f_slot = np.where(strength > 0, grid[idx], f0_center)
        return f_slot, strength

    def _refine(
        self, spectra: np.ndarray, prom: np.ndarray, f_slot: np.ndarray, ks: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-slot f0 ``[S]`` from interpolated peaks of harmonics ``ks``, and per-slot weight.

        Each harmonic's estimate ``f_k / k`` is weighted by ``k^2 * SNR`` (its variance falls
        like that); slots where no harmonic stands out keep the input value with weight 0.
        """
        nb = spectra.shape[1]
        pos = ks[None, :] * f_slot[:, None] / self._df  # [S, K]
        c = np.rint(pos).astype(np.int64)
        rows = np.arange(spectra.shape[0])[:, None]
        cand = np.clip(np.stack([c - 1, c, c + 1], axis=-1), 1, nb - 2)  # [S, K, 3]
        vals = spectra[rows[..., None], cand]
        c = np.take_along_axis(cand, np.argmax(vals, axis=-1)[..., None], axis=-1)[..., 0]
        a = np.log(spectra[rows, c - 1] + 1e-30)
        b = np.log(spectra[rows, c] + 1e-30)
        d = np.log(spectra[rows, c + 1] + 1e-30)
        f_k = (c + _peak_offset(a, b, d)) * self._df / ks[None, :]
        snr = 10 ** (np.clip(prom[rows, c], 0.0, _EVIDENCE_CAP_DB) / 10) - 1.0
        ok = (prom[rows, c] >= _PRESENT_DB) & (np.abs(f_k - f_slot[:, None]) * ks[None, :] < self._df)
        w = np.where(ok, snr * ks[None, :] ** 2, 0.0)
        wsum = w.sum(axis=1)
        refined = np.where(wsum > 0, (w * f_k).sum(axis=1) / np.maximum(wsum, 1e-30), f_slot)
        return refined, wsum

    def _line_stats(
        self,
        spectra: np.ndarray,
        weights: np.ndarray,
        prom: np.ndarray,
        f_slot: np.ndarray,
        ks: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Per-harmonic statistics ``[K]`` along the track ``f_slot`` ``[S]``.

        present: ``[S, K]`` whether the line stands out in each slot;
        presence: weighted fraction of slots where the line stands out;
        mean_db: prominence in the drift-compensated mean spectrum;
        offset: peak position (fractional bins) in that spectrum relative to ``k * f0``;
        level_std_db: spread across slots of the line level where present;
        level_db: ``[S, K]`` the line level in each slot (dB, power in its lobe);
        power: line power above the neighbourhood (same units as the spectra).
        """
        nb = spectra.shape[1]
        half = int(round(_NEIGH_HZ / self._df))
        g = max(1, int(round(_GUARD_HZ / self._df)))
        offs = np.arange(-half, half + 1)
        rows = np.arange(spectra.shape[0])[:, None, None]
        pos = ks[None, :] * f_slot[:, None] / self._df  # [S, K]
        centre = np.rint(pos).astype(np.int64)
        frac = pos - centre
        idx = np.clip(centre[..., None] + offs[None, None, :], 0, nb - 1)  # [S, K, O]
        local_prom = prom[rows, idx]
        near = np.abs(offs) <= 1
        line_prom = local_prom[..., near].max(axis=-1)  # [S, K]
        present = line_prom >= _PRESENT_DB
        presence = (present * weights[:, None]).sum(axis=0)
        local = spectra[rows, idx]  # [S, K, O]
        aligned = (local * weights[:, None, None]).sum(axis=0)  # [K, O]
        mean_frac = (frac * weights[:, None]).sum(axis=0)
        outer = np.abs(offs) >= g
        base = np.maximum(np.median(aligned[:, outer], axis=1) / math.log(2), 1e-30)
        lobe = np.abs(offs) <= 2
        c = half + np.argmax(aligned[:, near], axis=1) - 1
        kk = np.arange(len(ks))
        la = np.log(aligned[kk, c - 1] + 1e-30)
        lb = np.log(aligned[kk, c] + 1e-30)
        lc = np.log(aligned[kk, c + 1] + 1e-30)
        offset = (c - half) + _peak_offset(la, lb, lc) - mean_frac
        peak = aligned[kk, c]
        mean_db = 10 * np.log10(peak / base)
        power = np.maximum(aligned[:, lobe].sum(axis=1) - base * lobe.sum(), 0.0)
        lvl = 10 * np.log10(local[..., lobe].sum(axis=-1) + 1e-30)  # [S, K]
        wp = present * weights[:, None]
        wps = np.maximum(wp.sum(axis=0), 1e-30)
        m = (lvl * wp).sum(axis=0) / wps
        level_std = np.sqrt(((lvl - m) ** 2 * wp).sum(axis=0) / wps)
        return {
            "present": present,
            "presence": presence,
            "mean_db": mean_db,
            "offset": offset,
            "level_std_db": level_std,
            "level_db": lvl,
            "power": power,
        }

    def _analyse(
        self,
        spectra: np.ndarray,
        counts: np.ndarray,
        prom: np.ndarray,
        straddle: np.ndarray,
        mains: int,
        f0_coarse: float,
        strict: bool = False,
    ) -> tuple[HumDetection, float]:
        """Measure the series around one candidate fundamental; returns (detection, quality). ``strict``
        (a part of a recording, step 4) also asks for one low line that is strong and steady throughout."""
        weights = counts / counts.sum()
        f_slot, _ = self._track(straddle, f0_coarse)
        nb = spectra.shape[1]
        k_lim = (nb - 3 - _NEIGH_HZ / self._df) * self._df / (f_slot.max() + 0.2)
        ks = np.arange(1, int(min(MAX_HARMONICS, k_lim)) + 1)
        stats = self._line_stats(spectra, weights, prom, f_slot, ks)
        # The coarse track is only good to ~0.5 bin: no position test before refining it.
        lines = self._select(stats, max_offset_bins=1.0)
        if lines.any():
            # Re-track from the selected lines only, then measure again along the refined track.
            f_ref, fw = self._refine(spectra, prom, f_slot, ks[lines])
            f_ref = self._smooth_track(f_ref, fw)
            stats = self._line_stats(spectra, weights, prom, f_ref, ks)
            lines = self._select(stats)
            f_slot = f_ref
        n_lines = int(lines.sum())
        mean_db = stats["mean_db"]
        low = ks <= 3
        has_hum = bool(
            n_lines > 0
            and np.any(lines & low)
            and (
                (n_lines >= _MIN_LINES_SERIES and float(np.sum(mean_db[lines] - _MEAN_LINE_DB)) >= _SERIES_EXCESS_DB)
                or np.any(lines & low & (mean_db >= _SINGLE_LINE_DB))
                or np.any(
                    lines
                    & low
                    & (mean_db >= _STEADY_SINGLE_DB)
                    & (stats["presence"] >= _STEADY_PRESENCE)
                    & (stats["level_std_db"] <= _STEADY_LEVEL_STD_DB)
                )
            )
        )
        if strict:
            # held notes can pass the tests above on part of a piece (1 % of the corpus' music files did,
            # on 10 s parts); hum is a line at one level from the part's start to its end
            has_hum = has_hum and bool(
                np.any(
                    lines
                    & low
                    & (mean_db >= _SINGLE_LINE_DB)
                    & (stats["presence"] >= _STEADY_PRESENCE)
                    & (stats["level_std_db"] <= _SPAN_LEVEL_STD_DB)
                )
            )
        line_db = float(mean_db[lines].max()) if n_lines else float(np.max(mean_db[:4]))
        if not has_hum:
            return HumDetection(False, None, None, 0.0, 0, float("-inf"), max(line_db, 0.0), ()), 0.0
        f_ref, fw = self._refine(spectra, prom, f_slot, ks[lines])
        reliable = fw > 0
        wt = weights * reliable
        f0 = float((f_ref * wt).sum() / wt.sum()) if wt.sum() > 0 else float(np.mean(f_slot))
        track = self._smooth_track(f_ref, fw)[reliable]
        drift = float(track.max() - track.min()) if track.size >= 3 else 0.0
        total = float(stats["power"][lines].sum())
        hum_db = 10 * math.log10(total / 0.5) if total > 0 else float("-inf")
        numbers = tuple(int(k) for k in ks[lines])
        # Between candidates that both pass, the steadier series wins: hum lines are there in every
        # frame at one level, a piece's drone on its tonic comes and goes (a loud series of G notes
        # outscores a lone hum fundamental on prominence alone)
        steadiness = stats["presence"][lines] * np.minimum(
            1.0, _STEADY_LEVEL_STD_DB / np.maximum(stats["level_std_db"][lines], 1e-6)
        )
        quality = float((np.clip(mean_db[lines], 0, _EVIDENCE_CAP_DB) * steadiness).sum())
        return HumDetection(True, mains, f0, drift, n_lines, hum_db, line_db, numbers), quality

    @staticmethod
    def _select(stats: dict[str, np.ndarray], max_offset_bins: float = _MAX_OFFSET_BINS) -> np.ndarray:
        """Which harmonics ``[K]`` are stationary lines of the series."""
        on_series = np.abs(stats["offset"]) <= max_offset_bins
        ordinary = (
            (stats["presence"] >= _MIN_PRESENCE)
            & (stats["mean_db"] >= _MEAN_LINE_DB)
            & (stats["level_std_db"] <= _MAX_LEVEL_STD_DB)
        )
        # A weak line is still hum when it is there in nearly every frame at a steady level
        # (programme material is neither).
        steady = (
            (stats["presence"] >= _STEADY_PRESENCE)
            & (stats["mean_db"] >= _STEADY_LINE_DB)
            & (stats["level_std_db"] <= _STEADY_LEVEL_STD_DB)
        )
        return on_series & (ordinary | steady)

    @staticmethod
    def _smooth_track(f_slot: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Weighted 5-slot moving average: the per-slot estimates are noisy, drift is slow."""
        if f_slot.size < 3:
            return f_slot
        kern = np.array([1.0, 2.0, 3.0, 2.0, 1.0])
        w = np.where(w > 0, w, 0.0)
        num = np.convolve(np.pad(f_slot * w, 2, mode="edge"), kern, mode="valid")
        den = np.convolve(np.pad(w, 2, mode="edge"), kern, mode="valid")
        return np.where(den > 0, num / np.maximum(den, 1e-30), f_slot)

    def level_db(self, f0_hz: float, harmonics: int | Sequence[int]) -> float:
        """Summed power above the neighbourhood of the lines at ``k * f0_hz``, in dB re a
        full-scale sine (-inf when nothing stands out). ``harmonics``: the highest harmonic
        number (all of 1..n) or an explicit sequence of harmonic numbers."""
        if self._samples == 0:
            return float("-inf")
        spectra, counts, prom = self._measured()
        if spectra.shape[0] == 0:
            return float("-inf")
        if isinstance(harmonics, (int, np.integer)):
            ks = np.arange(1, int(harmonics) + 1)
        else:
            ks = np.asarray(sorted({int(k) for k in harmonics}), dtype=np.int64)
        nb = spectra.shape[1]
        ks = ks[(ks >= 1) & (ks * f0_hz < (nb - 3) * self._df - _NEIGH_HZ)]
        if ks.size == 0:
            return float("-inf")
        weights = counts / counts.sum()
        f_slot = np.full(spectra.shape[0], float(f0_hz))
        f_ref, fw = self._refine(spectra, prom, f_slot, ks)
        f_slot = np.where(np.abs(f_ref - f0_hz) < DRIFT_RANGE_HZ + 0.05, self._smooth_track(f_ref, fw), f_slot)
        stats = self._line_stats(spectra, weights, prom, f_slot, np.arange(1, ks.max() + 1))
        total = float(stats["power"][ks - 1].sum())
        return 10 * math.log10(total / 0.5) if total > 0 else float("-inf")


def _span_end(starts: np.ndarray, hi: int) -> float:
    """End in seconds of slots ``[.., hi)``: where slot ``hi`` starts, plus the hop its last frame runs on;
    the recording's end after the last slot (``starts`` ends with the recording's duration)."""
    return float(min(starts[hi] + FRAME_SECONDS - HOP_SECONDS, starts[-1]))


def _longest_run(flags: np.ndarray, gap: int) -> tuple[int, int]:
    """``(lo, hi)``: the longest run of ``flags`` (index range, end exclusive) that starts and ends on a
    true flag and has no more than ``gap`` false flags in a row; ``(0, 0)`` when none is true."""
    best = (0, 0)
    lo = None
    last = -1
    for i in np.flatnonzero(flags):
        if lo is None or i - last - 1 > gap:
            lo = int(i)
        last = int(i)
        if last + 1 - lo > best[1] - best[0]:
            best = (lo, last + 1)
    return best


def _widened(flags: np.ndarray, lo: int, hi: int, gap: int) -> tuple[int, int]:
    """``[lo, hi)`` grown over further true ``flags`` at most ``gap`` false flags away, on both sides."""
    on = np.flatnonzero(flags)
    while True:
        left = on[(on < lo) & (on >= lo - gap - 1)]
        right = on[(on >= hi) & (on <= hi + gap)]
        if not left.size and not right.size:
            return lo, hi
        lo = int(left.min()) if left.size else lo
        hi = int(right.max()) + 1 if right.size else hi


def _trimmed(flags: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """The run ``[lo, hi)`` less its slot at each end inside the recording (that slot's frames straddle
    the switch, or hold part of it: the line at part of its level), then less the false flags this leaves at
    its ends."""
    lo, hi = lo + (lo > 0), hi - (hi < flags.size)
    on = np.flatnonzero(flags[lo:hi])
    return (lo + int(on[0]), lo + int(on[-1]) + 1) if on.size else (lo, lo)


def detect_hum(x: np.ndarray, sample_rate: int) -> HumDetection:
    """One-shot detection on a mono signal ``[T]``."""
    det = HumDetector(sample_rate)
    det.update(x)
    return det.result()


def hum_level_db(x: np.ndarray, sample_rate: int, f0_hz: float, harmonics: int | Sequence[int]) -> float:
    """Level of the lines at ``k * f0_hz`` in ``x`` ``[T]`` (same definition as
    ``HumDetection.hum_db``). ``harmonics``: highest harmonic number or a sequence of numbers."""
    det = HumDetector(sample_rate)
    det.update(x)
    return det.level_db(f0_hz, harmonics)
