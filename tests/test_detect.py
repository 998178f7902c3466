"""Hum detection: real clean audio stays clean, synthetic hum is found, bass notes are not hum."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from humclean.detect import MAX_SLOTS, HumDetector, detect_hum, hum_level_db
from tests.humsynth import PROFILES, add_hum, synth_hum

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def _files(split: str, kind: str) -> list[Path]:
    return sorted((CORPUS / split / kind).glob("*.ogg"))


def _read(path: Path) -> np.ndarray:
    sf = pytest.importorskip("soundfile")
    x, sr = sf.read(path, dtype="float64")
    assert sr == 16000
    return x if x.ndim == 1 else x.mean(axis=1)


@pytest.fixture(scope="module")
def corpus() -> Path:
    if not (CORPUS / "test").is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    return CORPUS


@pytest.mark.parametrize("split", ["test", "val"])
def test_clean_corpus_has_no_hum(corpus: Path, split: str) -> None:
    for kind in ("speech", "music"):
        for path in _files(split, kind):
            r = detect_hum(_read(path), 16000)
            assert not r.has_hum, (path.name, r)
            assert r.mains_hz is None and r.f0_hz is None and r.hum_db == float("-inf")


def test_synthetic_hum_is_found(corpus: Path) -> None:
    rng = np.random.default_rng(1234)
    files = _files("test", "speech")[::7] + _files("test", "music")[::4]
    n_cases = 0
    for i, path in enumerate(files):
        x = _read(path)
        for j, snr in enumerate((0.0, 5.0, 10.0, 15.0)):
            mains = 50 if (i + j) % 2 else 60
            profile = PROFILES[(i + j) % len(PROFILES)]
            hum, info = synth_hum(x.size, 16000, rng, mains_hz=mains, profile=profile)
            r = detect_hum(add_hum(x, hum, snr)[0], 16000)
            assert r.has_hum, (path.name, snr, info, r)
            assert r.mains_hz == mains
            assert r.f0_hz is not None and abs(r.f0_hz - info.f0_hz) <= 0.05, (info, r)
            assert r.harmonics >= 1 and len(r.harmonic_numbers) == r.harmonics
            assert math.isfinite(r.hum_db) and r.line_db > 6
            n_cases += 1
    assert n_cases >= 20


def _note(n: int, start_s: float, dur_s: float, f_hz: float, amp: float, partials: int) -> np.ndarray:
    t = np.arange(n) / 16000
    env = np.clip((t - start_s) / 0.05, 0, 1) * np.clip((start_s + dur_s - t) / 0.3, 0, 1)
    tone = sum(np.sin(2 * np.pi * p * f_hz * t) / p for p in range(1, partials + 1))
    return amp * env * tone


@pytest.mark.parametrize(
    "f_hz,dur_s,partials",
    [(55.0, 2.0, 6), (98.0, 2.0, 6), (50.0, 4.0, 1), (50.0, 4.0, 8), (60.0, 3.0, 5), (120.0, 4.0, 3)],
)
def test_bass_notes_are_not_hum(corpus: Path, f_hz: float, dur_s: float, partials: int) -> None:
    for path in (_files("test", "music")[1], _files("test", "speech")[3]):
        x = _read(path)
        rms = float(np.sqrt(np.mean(x**2)))
        y = x + _note(x.size, 9.0, dur_s, f_hz, 3 * rms, partials)
        y += _note(x.size, 20.0, dur_s / 2, f_hz, 2 * rms, partials)
        r = detect_hum(y, 16000)
        assert not r.has_hum, (path.name, f_hz, r)


@pytest.mark.parametrize(
    "note_s,level_range,note_rms",
    [
        (2.5, (0.25, 2.0), 2.0),  # the series fails the hum test; the lone line was no candidate
        (3.0, (0.35, 1.6), 1.0),  # the series passes it too: the steadier of the two wins
    ],
)
def test_lone_hum_fundamental_beside_a_tonal_series(
    corpus: Path, note_s: float, level_range: tuple[float, float], note_rms: float
) -> None:
    """A piece in G repeats notes whose partials sit on multiples of G1 (49.0 Hz): a loud, near-harmonic
    series that comes and goes. Hum at 49.76 Hz (a transfer 0.5 % slow) shows only its fundamental
    above the music; that lone steady line is the hum, not the louder series beside it."""
    x = _read(_files("test", "speech")[3])
    rms = float(np.sqrt(np.mean(x**2)))
    rng = np.random.default_rng(7)
    y = x.copy()
    for f_hz in (98.0, 146.83, 196.0, 293.66, 392.0, 587.33):  # G2 D3 G3 D4 G4 D5
        for start in np.arange(0.0, x.size / 16000 - 3.0, 4.0):
            onset = start + rng.uniform(0, 4.0 - note_s)
            y += _note(x.size, onset, note_s, f_hz, rms * note_rms * rng.uniform(*level_range), 1)
    t = np.arange(x.size) / 16000
    y += 0.1 * rms * np.sin(2 * np.pi * 49.76 * t + 0.3)
    r = detect_hum(y, 16000)
    assert r.has_hum and r.mains_hz == 50, r
    assert r.f0_hz is not None and abs(r.f0_hz - 49.76) < 0.05, r
    assert r.harmonic_numbers == (1,), r


def test_silence_short_and_empty() -> None:
    assert not detect_hum(np.zeros(16000 * 5), 16000).has_hum
    assert not detect_hum(np.zeros(0), 16000).has_hum
    t = np.arange(12000) / 16000  # 0.75 s of pure hum: too short to call
    assert not detect_hum(0.1 * np.sin(2 * np.pi * 50 * t), 16000).has_hum
    det = HumDetector(16000)
    assert not det.result().has_hum
    det.update(np.zeros(1))
    assert not det.result().has_hum


@pytest.mark.parametrize("sample_rate", [8000, 11025, 44100, 96000, 192000])
def test_any_sample_rate(sample_rate: int) -> None:
    rng = np.random.default_rng(sample_rate)
    n = int(12 * sample_rate)
    noise = 0.05 * rng.standard_normal(n)
    hum, info = synth_hum(n, sample_rate, rng, mains_hz=60, profile="buzz")
    r = detect_hum(add_hum(noise, hum, 10.0)[0], sample_rate)
    assert r.has_hum and r.mains_hz == 60 and abs(r.f0_hz - info.f0_hz) < 0.05, r
    assert not detect_hum(noise, sample_rate).has_hum


def test_streaming_blocks_match_one_shot() -> None:
    rng = np.random.default_rng(7)
    n = 16000 * 15
    x = 0.05 * rng.standard_normal(n)
    hum, _ = synth_hum(n, 16000, rng, mains_hz=50, profile="rich")
    y = add_hum(x, hum, 5.0)[0]
    ref = detect_hum(y, 16000)
    det = HumDetector(16000)
    pos = 0
    for size in [1, 64, 65, 8193, 16000 * 3 + 7] * 100:
        if pos >= n:
            break
        det.update(y[pos : pos + size])
        pos += size
    det.update(y[pos:])
    got = det.result()
    assert got.has_hum == ref.has_hum and got.mains_hz == ref.mains_hz
    assert abs(got.f0_hz - ref.f0_hz) < 1e-6
    assert det.result() == got  # result() does not consume state


def test_memory_is_bounded_for_long_input() -> None:
    rng = np.random.default_rng(3)
    sr = 8000
    det = HumDetector(sr)
    slots_bytes = det._slots.nbytes
    f0 = 50.2
    block = 10 * sr
    for i in range(2 * MAX_SLOTS // 10 + 3):  # > 2 * MAX_SLOTS frames
        t = (np.arange(block) + i * block) / sr
        det.update(0.02 * rng.standard_normal(block) + 0.01 * np.sin(2 * np.pi * f0 * t))
    assert det._slots.nbytes == slots_bytes
    r = det.result()
    assert r.has_hum and r.mains_hz == 50 and abs(r.f0_hz - f0) < 0.02


def test_hum_level_db() -> None:
    sr = 16000
    t = np.arange(sr * 10) / sr
    rng = np.random.default_rng(0)
    x = 0.01 * rng.standard_normal(t.size) + 0.1 * np.sin(2 * np.pi * 50.1 * t) + 0.05 * np.sin(2 * np.pi * 150.3 * t)
    expected = 10 * math.log10((0.1**2 / 2 + 0.05**2 / 2) / 0.5)
    assert abs(hum_level_db(x, sr, 50.1, 3) - expected) < 0.5
    r = detect_hum(x, sr)
    assert r.has_hum and r.harmonic_numbers == (1, 3)
    assert abs(r.hum_db - expected) < 0.5
    assert (
        hum_level_db(x, sr, 50.1, r.harmonic_numbers)
        > hum_level_db(0.01 * rng.standard_normal(t.size), sr, 50.1, r.harmonic_numbers) + 30
    )


def test_harmonic_score_is_the_sum_of_straddling_maxima() -> None:
    """The series score gathers, per harmonic and grid point, the larger of the two bins around
    ``k f0`` and sums over the harmonics: checked against that formula written out in full."""
    rng = np.random.default_rng(4)
    det = HumDetector(8000)
    evidence = np.clip(rng.normal(0, 8, (37, det._nbins)), 0, 30)
    grid = 50 + np.arange(-1.1, 1.1025, 0.005)
    k_max = int(min(40, (det._nbins - 3) * det._df / grid.max()))
    lo = np.floor(np.arange(1, k_max + 1)[:, None] * grid[None, :] / det._df).astype(np.int64)
    expected = np.maximum(evidence[:, lo], evidence[:, lo + 1]).sum(axis=1)
    np.testing.assert_array_equal(det._score(det._straddle(evidence), grid), expected)


def test_measurements_follow_new_samples() -> None:
    """The decision and levels of a detector fed more samples equal a fresh detector's on all of
    them (what result() and level_db() share is recomputed when samples arrive)."""
    sr = 8000
    rng = np.random.default_rng(5)
    t = np.arange(sr * 60) / sr
    hum = 0.05 * np.sin(2 * np.pi * 50.05 * t) + 0.02 * np.sin(2 * np.pi * 150.15 * t)
    loud = 0.02 * rng.standard_normal(t.size) + hum
    quiet = 0.02 * rng.standard_normal(sr * 5)
    det = HumDetector(sr)
    det.update(quiet)
    assert not det.result().has_hum
    before = det.level_db(50.05, 3)
    det.update(loud)
    fresh = HumDetector(sr)
    fresh.update(np.concatenate([quiet, loud]))
    assert det.result() == fresh.result() and det.result().has_hum
    assert det.level_db(50.05, 3) == fresh.level_db(50.05, 3) > before + 10


def _switched(x: np.ndarray, hum: np.ndarray, at_s: float, on: bool, snr_db: float) -> np.ndarray:
    """``x`` plus ``hum`` switched on (or off) at ``at_s``, at ``snr_db`` over the part where it runs."""
    part = (np.arange(x.size) / 16000 >= at_s) == on
    gated = hum * part
    g = math.sqrt(float(np.mean(x[part] ** 2)) / float(np.mean(gated[part] ** 2))) / 10 ** (snr_db / 20)
    return x + g * gated


def _long_takes(kind: str) -> list[np.ndarray]:
    """The test split's files of one kind, three end to end (about 90 s each)."""
    files = _files("test", kind)
    return [np.concatenate([_read(p) for p in files[i : i + 3]]) for i in range(0, len(files) - 2, 3)]


@pytest.mark.parametrize("on", [True, False])
def test_hum_for_part_of_a_recording_is_found(corpus: Path, on: bool) -> None:
    """A unit switched on (or off) part-way through a 90 s take: hum in 40 to 60 % of it fails the
    whole-file test of stationarity (and was passed through untouched); the part is judged on its own."""
    rng = np.random.default_rng(99)
    takes = _long_takes("speech")[::2] + _long_takes("music")
    spans = found = 0
    for i, x in enumerate(takes):
        dur = x.size / 16000
        at_s = dur * (0.4 if on else 0.6)
        mains = 50 if i % 2 else 60
        hum, info = synth_hum(x.size, 16000, rng, mains_hz=mains, profile=PROFILES[i % len(PROFILES)])
        r = detect_hum(_switched(x, hum, at_s, on, (0.0, 5.0, 10.0)[i % 3]), 16000)
        if not r.has_hum:
            continue
        found += 1
        assert r.mains_hz == mains and r.f0_hz is not None and abs(r.f0_hz - info.f0_hz) <= 0.05, (info, r)
        if r.span_s is None:  # its lines stood out in enough of the whole take after all
            continue
        spans += 1
        lo, hi = (at_s, dur) if on else (0.0, at_s)
        # the part where it was found steady: inside the hum's (to a frame), most of it
        assert lo - 1.5 <= r.span_s[0] < r.span_s[1] <= hi + 1.5, (i, (lo, hi), r.span_s)
        assert r.span_s[1] - r.span_s[0] >= 0.6 * (hi - lo), (i, (lo, hi), r.span_s)
    # on 90 s takes of the validation and test splits at SNR 0-15 (benchmark-style), 16 of 20 were found
    # (the misses at SNR 10-15); none before
    assert takes and found >= 0.75 * len(takes), (found, len(takes))
    assert spans >= len(takes) // 2, "the part-of-a-recording path was hardly used"


def test_hum_throughout_has_no_span(corpus: Path) -> None:
    x = _long_takes("speech")[0]
    hum, _ = synth_hum(x.size, 16000, np.random.default_rng(3), mains_hz=50, profile=PROFILES[0])
    r = detect_hum(add_hum(x, hum, 5.0)[0], 16000)
    assert r.has_hum and r.span_s is None, r


@pytest.mark.parametrize("seed,exact", [(12000, False), (12110, True), (12127, False)])
def test_organ_notes_at_the_mains_for_20_seconds_are_not_hum(seed: int, exact: bool, monkeypatch) -> None:
    """90 s of held organ pedal notes at and near the mains (`humclean dataset bass` material, seeds
    12000 on) whose lines run on for 19 to 23 s: as steady as hum over that stretch. A part must last
    30 s to be judged on its own; at 10 s these clips (and 21 % of 150 such clips) were taken for hum,
    and the model then removed notes (one clip came out at 11.6 dB)."""
    import humclean.detect as detect
    from training.bass import bass_clip

    clip = bass_clip(seed, 90.0, 16000, exact, "organ")
    assert not detect_hum(clip, 16000).has_hum
    monkeypatch.setattr(detect, "MIN_SPAN_SECONDS", 10.0)
    shorter = detect_hum(clip, 16000)
    assert shorter.has_hum and shorter.span_s is not None, "the case this guards against"


def test_a_part_after_digital_silence_is_placed_in_time() -> None:
    """Silent frames carry no evidence and are skipped, but they take time: a splice with 20 s of digital
    silence before the hummed part must not move the part 20 s earlier (it did)."""
    rate = 8000
    n = rate * 110
    t = np.arange(n) / rate
    x = 0.05 * np.random.default_rng(5).standard_normal(n)
    x += 0.05 * np.cos(2 * np.pi * 50.0 * t) * (t >= 60.0) + 0.02 * np.cos(2 * np.pi * 100.0 * t + 1) * (t >= 60.0)
    x[: 20 * rate] = 0.0
    r = detect_hum(x, rate)
    assert r.has_hum and r.span_s is not None, r
    assert abs(r.span_s[0] - 60.0) <= 1.5 and abs(r.span_s[1] - 110.0) <= 1.5, r.span_s
