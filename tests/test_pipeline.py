"""The pipeline's arithmetic, proven with an oracle model and a seeded network."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from humclean.discover import discover
from humclean.models.base import ModelCard
from humclean.models.oracle import HarmonicHum, OracleEstimator
from humclean.models.tiny import TinyConvHum
from humclean.models.torch_estimator import TorchEstimator
from humclean.pipeline import Pipeline, RunOptions
from humclean.report import Manifest

from .conftest import noise, tree_digest, write_audio

HUM = HarmonicHum(
    50.0, amplitudes=[0.05, 0.02, 0.03, 0.01, 0.012], phases=[0.3, 1.1, 2.0, 0.5, 4.0], am_depth=0.2, am_hz=0.3
)


def _run(src: Path, dst: Path, estimator, **kw) -> list:
    tasks, problems = discover([src], dst)
    assert not problems
    records = Pipeline(estimator, RunOptions(**kw), Manifest(dst / ".humclean" / "m.jsonl")).run(tasks)
    return sorted(records, key=lambda r: r.path)


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_oracle_output_equals_clean(tmp_path: Path, rate: int, channels: int) -> None:
    n = int(3.3 * rate) + 17
    clean = noise(n, channels, seed=rate + channels, level=0.05)
    t = np.arange(n) / rate
    hum = HUM(t)
    mix = clean + (hum[:, None] if channels > 1 else hum)
    subtype = {16000: "PCM_24", 44100: "FLOAT", 48000: "DOUBLE"}[rate]
    write_audio(tmp_path / "in" / "a.wav", mix, rate, subtype)
    mix_read, _ = sf.read(tmp_path / "in" / "a.wav", always_2d=True)

    recs = _run(tmp_path / "in", tmp_path / "out", OracleEstimator(HUM), force=True, segment_seconds=1.0, jobs=1)
    assert [r.status for r in recs] == ["cleaned"], recs
    out, out_rate = sf.read(tmp_path / "out" / "a.wav", always_2d=True)
    assert out_rate == rate and out.shape == mix_read.shape
    assert sf.info(str(tmp_path / "out" / "a.wav")).subtype == subtype
    clean2 = clean.reshape(n, channels)
    assert np.max(np.abs(out - clean2)) < 1e-4

    # no gain change: the output regresses on the clean signal with slope 1
    slope = np.sum(out * clean2) / np.sum(clean2 * clean2)
    assert abs(slope - 1) < 1e-4
    # content above 8 kHz is untouched: the change we made has no energy there
    if rate > 16000:
        change = np.fft.rfft(out - mix_read, axis=0)
        freqs = np.fft.rfftfreq(n, 1 / rate)
        hi = np.abs(change[freqs > 8100]).max()
        assert hi < 1e-3 * np.abs(change).max()


def _stereo_hum_and_tiny_model(path: Path, n: int, rate: int, seed: int, subtype: str) -> TorchEstimator:
    """Write a stereo file of noise plus hum; return a seeded tiny network (16 kHz, 0.5 s chunks)."""
    write_audio(path, noise(n, 2, seed) + HUM(np.arange(n) / rate)[:, None], rate, subtype)
    torch.manual_seed(0)
    return TorchEstimator(TinyConvHum(), ModelCard("tiny", 16000, 8000, 1000), torch.device("cpu"))


def test_segment_size_does_not_change_the_result(tmp_path: Path) -> None:
    rate = 44100
    est = _stereo_hum_and_tiny_model(tmp_path / "in" / "a.wav", int(5.5 * rate) + 3, rate, 3, "FLOAT")
    _run(tmp_path / "in", tmp_path / "o1", est, force=True, segment_seconds=1.0)
    _run(tmp_path / "in", tmp_path / "o2", est, force=True, segment_seconds=60.0)
    a, _ = sf.read(tmp_path / "o1" / "a.wav")
    b, _ = sf.read(tmp_path / "o2" / "a.wav")
    np.testing.assert_allclose(a, b, atol=2e-6)


def test_chunks_at_segment_boundaries_are_estimated_once(tmp_path: Path) -> None:
    """Neighbouring segments share the chunks around their boundary (the grid is absolute): the engine
    sees each chunk once however the file is cut, and the output is that of one long segment."""
    rate = 44100
    est = _stereo_hum_and_tiny_model(tmp_path / "in" / "a.wav", int(5.5 * rate) + 3, rate, 4, "FLOAT")
    counts = []
    for name, seconds in (("short", 1.0), ("long", 60.0)):
        tasks, _ = discover([tmp_path / "in"], tmp_path / name)
        pipe = Pipeline(est, RunOptions(force=True, segment_seconds=seconds))
        assert [r.status for r in pipe.run(tasks)] == ["cleaned"]
        assert pipe.engine_stats is not None
        counts.append(pipe.engine_stats.chunks)
    assert counts[0] == counts[1] > 0
    a, _ = sf.read(tmp_path / "short" / "a.wav")
    b, _ = sf.read(tmp_path / "long" / "a.wav")
    np.testing.assert_allclose(a, b, atol=2e-6)


def test_channels_with_the_same_samples_share_one_estimate(tmp_path: Path, monkeypatch) -> None:
    """A mono transfer stored as stereo costs one channel's model time: where both channels hold the same
    samples, the second shares the first's chunks (the engine sees half as many), and the output is the
    same bytes as estimating both; where they part, each has its own again. (Channels with other mains
    hints never share: see ``_twin``.)"""
    import humclean.pipeline as pipeline_mod

    rate = 16000
    n = int(5.5 * rate) + 7
    # no hum: no channel gets a mains hint, so the hints agree and only the samples decide
    mono = noise(n, 1, seed=8)
    twin = np.stack([mono, mono], axis=1)
    parted = twin.copy()
    parted[int(3.5 * rate) :, 1] += noise(n - int(3.5 * rate), 1, seed=9)  # the last two segments differ
    write_audio(tmp_path / "in" / "twin.wav", twin, rate, "PCM_24")
    write_audio(tmp_path / "in" / "parted.wav", parted, rate, "PCM_24")
    write_audio(tmp_path / "mono" / "mono.wav", mono, rate, "PCM_24")
    torch.manual_seed(0)
    est = TorchEstimator(TinyConvHum(), ModelCard("tiny", 16000, 8000, 1000), torch.device("cpu"))

    def chunks_seen(src: Path, dst: Path) -> int:
        tasks, _ = discover([src], dst)
        # one chunk per batch: a convolution's float rounding depends on the batch's size
        pipe = Pipeline(est, RunOptions(force=True, segment_seconds=1.0, batch_size=1))
        assert [r.status for r in pipe.run(tasks)] == ["cleaned"] * len(tasks)
        assert pipe.engine_stats is not None
        return pipe.engine_stats.chunks

    shared = chunks_seen(tmp_path / "in", tmp_path / "shared")
    mono_chunks = chunks_seen(tmp_path / "mono", tmp_path / "mono-out")
    monkeypatch.setattr(pipeline_mod, "_twin", lambda *args: None)
    separate = chunks_seen(tmp_path / "in", tmp_path / "separate")
    assert separate == 4 * mono_chunks
    assert mono_chunks < shared - mono_chunks < 2 * mono_chunks  # twin.wav: one channel's; parted.wav: more
    for name in ("twin.wav", "parted.wav"):
        assert (tmp_path / "shared" / name).read_bytes() == (tmp_path / "separate" / name).read_bytes()
    out, _ = sf.read(tmp_path / "shared" / "twin.wav", dtype="int32")
    np.testing.assert_array_equal(out[:, 0], out[:, 1])
    alone, _ = sf.read(tmp_path / "mono-out" / "mono.wav", dtype="int32")
    np.testing.assert_array_equal(out[:, 0], alone)


def test_a_twin_needs_the_same_samples_and_the_same_mains_hint() -> None:
    from concurrent.futures import Future

    from humclean.pipeline import _ChannelHum, _twin

    y = np.zeros((100, 3), dtype=np.float32)
    y[:, 0] = y[:, 1] = np.linspace(-1, 1, 100)
    y[:, 2] = y[:, 0]
    y[50, 2] += 1e-6
    job = _ChannelHum(0, Future(), np.arange(3), 0, 0, 100, 50.0)
    got = _twin([job], y, 1, 50.0)
    assert got is not None and got.channel == 1 and got.future is job.future
    assert _twin([job], y, 1, 60.0) is None  # another hint: another estimate
    assert _twin([job], y, 2, 50.0) is None  # one sample apart
    unhinted = _ChannelHum(0, Future(), np.arange(3), 0, 0, 100, math.nan)
    assert _twin([unhinted], y, 1, math.nan) is not None


@pytest.mark.parametrize("frames", [5, 999, 1000, 1001, 3000, 4567])
@pytest.mark.parametrize(("core", "context"), [(1000, 0), (1000, 300), (500, 1200)])
def test_segments_are_the_file_with_context_and_zeros_beyond(
    tmp_path: Path, frames: int, core: int, context: int
) -> None:
    """Every segment's window is the decoded file at [start - context, start + padded core + context),
    zeros outside it; the store is reused, so each window is copied before the next is asked for."""
    from humclean.audio_io import BlockReader, probe
    from humclean.pipeline import _segments

    period = 100
    path = write_audio(tmp_path / "a.wav", noise(frames, 2, seed=frames), 8000, "FLOAT")
    data, _ = sf.read(path, always_2d=True)
    padded_file = np.concatenate([np.zeros((context, 2)), data, np.zeros((core + context + period, 2))])
    with BlockReader(probe(path)) as reader:
        got = [(s.start, s.core_frames, s.padded.copy()) for s in _segments(reader, 2, core, context, period)]
    assert [g[0] for g in got] == list(range(0, frames, core))
    for start, n, window in got:
        assert n == min(core, frames - start)
        assert window.shape[0] == context + -(-n // period) * period + context
        np.testing.assert_array_equal(window, padded_file[start : start + window.shape[0]])


@pytest.mark.parametrize("frames", [5, 1000, 1001, 4567])
@pytest.mark.parametrize(("core", "context"), [(1000, 0), (1000, 300), (500, 1200)])
def test_segments_with_stores_of_their_own_stay_intact(tmp_path: Path, frames: int, core: int, context: int) -> None:
    """With ``spare``, a segment's window stays valid while later ones are read, and changing it in place
    (the pipeline subtracts the hum into it) changes no later window; stores given back are reused, so a
    long file needs only a few of them."""
    from humclean.audio_io import BlockReader, probe
    from humclean.pipeline import _segments

    period = 100
    path = write_audio(tmp_path / "a.wav", noise(frames, 2, seed=frames), 8000, "FLOAT")
    data, _ = sf.read(path, always_2d=True)
    padded_file = np.concatenate([np.zeros((context, 2)), data, np.zeros((core + context + period, 2))])
    spare: list[np.ndarray] = []
    held = []
    stores = set()
    with BlockReader(probe(path)) as reader:
        for seg in _segments(reader, 2, core, context, period, spare=spare):
            stores.add(id(seg.store))
            held.append((seg.start, seg.padded, seg.padded.copy(), seg.store))
            if len(held) > 1:  # the one before is finished now: in place, as the pipeline does
                start, window, expected, store = held[-2]
                np.testing.assert_array_equal(window, expected)
                window[:] = -1.0
            if len(held) > 2:
                spare.append(held[-3][3])
    assert [h[0] for h in held] == list(range(0, frames, core))
    for start, _, expected, _ in held:
        np.testing.assert_array_equal(expected, padded_file[start : start + expected.shape[0]])
    assert len(stores) <= 3


@pytest.mark.parametrize("budget", [0, 1_000_000])
@pytest.mark.parametrize("rate", [48000, 16000])
def test_model_rate_cache_does_not_change_the_output(tmp_path: Path, monkeypatch, budget: int, rate: int) -> None:
    """The first pass keeps model-rate segments for the second within a byte budget; with no budget
    (every segment resampled again) or a budget that holds only some of them, the output is the same,
    also for a file at the model's rate (16 kHz), whose segments are not resampled at all."""
    import humclean.pipeline as pipeline_mod

    est = _stereo_hum_and_tiny_model(tmp_path / "in" / "a.wav", int(7.5 * rate) + 11, rate, 5, "PCM_24")
    # one chunk per batch: a convolution's float rounding depends on the batch's size, and which chunks
    # share a batch depends on timing (segments are queued ahead of the one being finished)
    opts = dict(force=True, segment_seconds=2.0, batch_size=1)
    _run(tmp_path / "in", tmp_path / "all", est, **opts)
    monkeypatch.setattr(pipeline_mod, "MODEL_RATE_CACHE_BYTES", budget)
    _run(tmp_path / "in", tmp_path / "some", est, **opts)
    assert (tmp_path / "all" / "a.wav").read_bytes() == (tmp_path / "some" / "a.wav").read_bytes()


@pytest.mark.parametrize(("lookahead", "write_frames"), [(0, 1 << 18), (3, 1 << 18), (1, 1000)])
def test_segments_in_flight_and_write_size_do_not_change_the_output(
    tmp_path: Path, monkeypatch, lookahead: int, write_frames: int
) -> None:
    """The second pass queues segments ahead of the one it finishes and encodes in slices; neither
    the depth of the queue nor the slice size changes the output or the reference scores."""
    import humclean.pipeline as pipeline_mod

    rate = 48000
    n = int(7.5 * rate) + 11
    # a row-wise model: a batched network's float rounding depends on which chunks share a batch,
    # which the queue depth changes (see test_files_in_one_batch_equal_each_alone)
    est = OracleEstimator(HUM)
    write_audio(tmp_path / "in" / "a.wav", noise(n, 2, 7) + HUM(np.arange(n) / rate)[:, None], rate, "PCM_24")
    write_audio(tmp_path / "ref" / "a.wav", noise(n, 2, 7), rate, "FLOAT")
    opts = dict(force=True, segment_seconds=2.0, reference_root=tmp_path / "ref")
    base = _run(tmp_path / "in", tmp_path / "base", est, **opts)
    monkeypatch.setattr(pipeline_mod, "_LOOKAHEAD", lookahead)
    monkeypatch.setattr(pipeline_mod, "WRITE_FRAMES", write_frames)
    other = _run(tmp_path / "in", tmp_path / "other", est, **opts)
    assert (tmp_path / "base" / "a.wav").read_bytes() == (tmp_path / "other" / "a.wav").read_bytes()
    assert base[0].si_sdr_out == other[0].si_sdr_out and np.isfinite(base[0].si_sdr_out)
    assert base[0].hum_db_out == other[0].hum_db_out


@pytest.mark.parametrize("workers", [1, 3])
def test_files_in_one_batch_equal_each_alone(tmp_path: Path, workers: int) -> None:
    """Chunks of many files packed into shared batches (run by one or several engine workers, whose
    batches then split a file's chunks between them) come out as each file run alone."""
    specs = [(16000, 1, 2.0), (44100, 2, 3.1), (48000, 2, 1.3), (22050, 1, 0.7)]
    for i, (rate, ch, sec) in enumerate(specs):
        n = int(sec * rate)
        write_audio(
            tmp_path / "in" / f"f{i}.wav",
            noise(n, ch, i) + (HUM(np.arange(n) / rate)[:, None] if ch > 1 else HUM(np.arange(n) / rate)),
            rate,
            "FLOAT",
        )
    torch.manual_seed(0)
    est = TorchEstimator(TinyConvHum(), ModelCard("tiny", 16000, 4000, 500), torch.device("cpu"))
    batch = 16 if workers == 1 else 3
    together = _run(
        tmp_path / "in", tmp_path / "together", est, force=True, jobs=4, batch_size=batch, model_workers=workers
    )
    assert all(r.status == "cleaned" for r in together)
    for i in range(len(specs)):
        single = tmp_path / f"single{i}"
        single.mkdir()
        (single / f"f{i}.wav").write_bytes((tmp_path / "in" / f"f{i}.wav").read_bytes())
        _run(single, tmp_path / f"alone{i}", est, force=True, jobs=1, batch_size=1)
        a, _ = sf.read(tmp_path / "together" / f"f{i}.wav")
        b, _ = sf.read(tmp_path / f"alone{i}" / f"f{i}.wav")
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_channel_without_hum_is_untouched(tmp_path: Path) -> None:
    """A stereo file with hum on the left only: the right channel comes out bit-identical."""
    rate = 16000
    n = rate * 8
    left = noise(n, 1, 5, 0.05) + HUM(np.arange(n) / rate)
    right = noise(n, 1, 6, 0.05)
    write_audio(tmp_path / "in" / "s.wav", np.stack([left, right], 1), rate, "PCM_16")
    recs = _run(tmp_path / "in", tmp_path / "out", OracleEstimator(HUM))
    assert recs[0].status == "cleaned"
    a, _ = sf.read(tmp_path / "in" / "s.wav", dtype="int16")
    b, _ = sf.read(tmp_path / "out" / "s.wav", dtype="int16")
    np.testing.assert_array_equal(a[:, 1], b[:, 1])
    assert not np.array_equal(a[:, 0], b[:, 0])
    assert recs[0].f0_hz == pytest.approx(50.0, abs=0.05)
    assert recs[0].hum_db_out < recs[0].hum_db_in - 30


def test_file_without_hum_is_copied_byte_for_byte(tmp_path: Path) -> None:
    write_audio(tmp_path / "in" / "quiet.flac", noise(16000 * 4, 2, 9, 0.05), 16000, "PCM_16")
    recs = _run(tmp_path / "in", tmp_path / "out", OracleEstimator(HUM))
    assert recs[0].status == "no_hum"
    assert (tmp_path / "out" / "quiet.flac").read_bytes() == (tmp_path / "in" / "quiet.flac").read_bytes()


def test_reference_scores(tmp_path: Path) -> None:
    rate = 48000
    n = rate * 3
    clean = noise(n, 2, 11, 0.05)
    write_audio(tmp_path / "ref" / "x.wav", clean, rate, "FLOAT")
    write_audio(tmp_path / "in" / "x.wav", clean + HUM(np.arange(n) / rate)[:, None], rate, "FLOAT")
    before = tree_digest(tmp_path / "ref")
    recs = _run(tmp_path / "in", tmp_path / "out", OracleEstimator(HUM), force=True, reference_root=tmp_path / "ref")
    assert tree_digest(tmp_path / "ref") == before, "references are only read"
    r = recs[0]
    assert r.si_sdr_in < 5
    assert r.si_sdr_out > 60
    assert r.si_sdr_gain == pytest.approx(r.si_sdr_out - r.si_sdr_in)
    assert r.psnr_out > r.psnr_in + 40


def test_rerun_skips_up_to_date_outputs(tmp_path: Path) -> None:
    rate = 16000
    write_audio(tmp_path / "in" / "a.wav", noise(rate * 2, 1, 1) + HUM(np.arange(rate * 2) / rate), rate)
    first = _run(tmp_path / "in", tmp_path / "out", OracleEstimator(HUM), force=True)
    second = _run(tmp_path / "in", tmp_path / "out", OracleEstimator(HUM), force=True)
    assert first[0].status == "cleaned" and second[0].status == "skipped"
    third = _run(tmp_path / "in", tmp_path / "out", OracleEstimator(HUM), force=True, overwrite=True)
    assert third[0].status == "cleaned"
    # a changed model is a changed option: redone
    fourth = _run(tmp_path / "in", tmp_path / "out", OracleEstimator(HUM, chunk_samples=8000), force=True)
    assert fourth[0].status == "cleaned"


FORMATS = [
    ("wav", "WAV", "PCM_U8", 8000, 1),
    ("wav", "WAV", "PCM_16", 22050, 2),
    ("wav", "WAV", "PCM_32", 96000, 1),
    ("wav", "WAV", "FLOAT", 192000, 1),
    ("rf64", "RF64", "PCM_24", 48000, 2),
    ("flac", "FLAC", "PCM_24", 88200, 2),
    ("aiff", "AIFF", "PCM_16", 32000, 1),
    ("ogg", "OGG", "VORBIS", 44100, 2),
    ("mp3", "MP3", "MPEG_LAYER_III", 44100, 1),
    ("wav", "WAV", "PCM_24", 48000, 8),
]


@pytest.mark.parametrize(("ext", "fmt", "subtype", "rate", "channels"), FORMATS)
def test_every_format_keeps_its_shape(
    tmp_path: Path, ext: str, fmt: str, subtype: str, rate: int, channels: int
) -> None:
    n = int(1.5 * rate) + 11
    hum = HUM(np.arange(n) / rate)
    x = noise(n, channels, 1, 0.05) + (hum[:, None] if channels > 1 else hum)
    write_audio(tmp_path / "in" / f"a.{ext}", x, rate, subtype, fmt)
    recs = _run(tmp_path / "in", tmp_path / "out", OracleEstimator(HUM), force=True, jobs=1)
    assert recs[0].status == "cleaned", recs[0].error
    i, o = sf.info(str(tmp_path / "in" / f"a.{ext}")), sf.info(str(tmp_path / "out" / f"a.{ext}"))
    assert (o.format, o.subtype, o.samplerate, o.channels) == (i.format, i.subtype, i.samplerate, i.channels)
    if fmt not in ("MP3",):
        assert o.frames == i.frames
    if subtype in ("PCM_24", "PCM_32", "FLOAT"):
        out, _ = sf.read(str(tmp_path / "out" / f"a.{ext}"), always_2d=True)
        clean = x.reshape(n, channels) - hum[:, None]
        assert np.max(np.abs(out - clean)) < 1e-4


def test_m4a_through_ffmpeg(tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    rate, n = 44100, 44100 * 2
    write_audio(tmp_path / "w.wav", noise(n, 2, 3, 0.05) + HUM(np.arange(n) / rate)[:, None], rate, "PCM_16")
    (tmp_path / "in").mkdir()
    m4a = tmp_path / "in" / "talk.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "w.wav"), "-c:a", "aac", "-b:a", "128k", str(m4a)],
                   check=True)  # fmt: skip
    recs = _run(tmp_path / "in", tmp_path / "out", OracleEstimator(HUM), jobs=1)
    assert recs[0].status == "cleaned", recs[0].error
    assert recs[0].format.upper() in ("M4A", "MP4")
    assert recs[0].hum_db_out < recs[0].hum_db_in - 20
    cmd = ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,sample_rate,channels", "-of", "csv=p=0",
           str(tmp_path / "out" / "talk.m4a")]  # fmt: skip
    probe = subprocess.run(cmd, capture_output=True, text=True)
    assert probe.stdout.strip() == "aac,44100,2"


def test_flac_application_and_cuesheet_blocks_survive(tmp_path: Path) -> None:
    from mutagen.flac import FLAC, CueSheet, CueSheetTrack, MetadataBlock, Picture

    rate, n = 44100, 44100 * 3
    path = write_audio(
        tmp_path / "in" / "a.flac", noise(n, 2, 1, 0.05) + HUM(np.arange(n) / rate)[:, None], rate, "PCM_16"
    )
    f = FLAC(str(path))
    f["title"] = "Reel 12"
    pic = Picture()
    pic.data, pic.mime, pic.type = b"\x89PNG fake", "image/png", 3
    f.add_picture(pic)
    app = MetadataBlock(b"ACME" + b"archive-id:42")
    app.code = 2
    cue = CueSheet(None)
    cue.media_catalog_number, cue.lead_in_samples, cue.compact_disc = b"", 0, False
    cue.tracks = [CueSheetTrack(1, 0), CueSheetTrack(255, n)]
    f.metadata_blocks += [app, cue]
    f.save()
    recs = _run(tmp_path / "in", tmp_path / "out", OracleEstimator(HUM), force=True)
    assert recs[0].status == "cleaned"
    g = FLAC(str(tmp_path / "out" / "a.flac"))
    assert g["title"] == ["Reel 12"] and g.pictures[0].data == b"\x89PNG fake"

    def blocks(x: FLAC, code: int) -> list[bytes]:
        return [b.write() for b in x.metadata_blocks if b.code == code]

    assert blocks(g, 2) == blocks(FLAC(str(path)), 2) != []
    assert blocks(g, 5) == blocks(FLAC(str(path)), 5) != []


def test_checksum_reads_the_input_only_when_size_and_mtime_agree(tmp_path: Path, monkeypatch) -> None:
    """``--checksum``: new inputs are not hashed for the up-to-date check (only once, for the manifest); an
    input edited in place with its size and mtime put back is redone, an untouched one skipped."""
    import humclean.pipeline as pipeline_mod

    rate = 16000
    src = tmp_path / "in" / "a.wav"
    x = noise(rate * 2, 1, 1) + HUM(np.arange(rate * 2) / rate)
    write_audio(src, x, rate, "FLOAT")
    hashed: list[Path] = []
    real = pipeline_mod.sha256_file

    def counting(path: Path) -> str:
        hashed.append(Path(path))
        return real(path)

    monkeypatch.setattr(pipeline_mod, "sha256_file", counting)

    def status(**kw: object) -> str:
        return _run(tmp_path / "in", tmp_path / "out", OracleEstimator(HUM), force=True, **kw)[0].status

    assert status(checksum=True) == "cleaned" and hashed == [src]  # the manifest's digest only
    assert status(checksum=True) == "skipped" and hashed == [src, src]
    st = os.stat(src)
    write_audio(src, x * 0.5, rate, "FLOAT")  # same size
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert status() == "skipped"
    assert status(checksum=True) == "cleaned"


class _NeedsHalfASecond(OracleEstimator):
    """The oracle, but like the tracker-fed models it returns no hum for a chunk with less than half a
    second of audio in it (zero padding beyond the file's edges does not count)."""

    def __init__(self, hum: HarmonicHum) -> None:
        super().__init__(hum, sample_rate=8000, chunk_samples=64000, overlap_samples=8000)
        self.sent: list[int] = []

    def estimate(self, chunks: np.ndarray, starts: np.ndarray, f0_hz: np.ndarray) -> np.ndarray:
        out = super().estimate(chunks, starts, f0_hz)
        for i, row in enumerate(chunks):
            nz = np.flatnonzero(np.abs(row) > 1e-6)
            self.sent.append(int(starts[i]))
            if nz.size == 0 or nz[-1] - nz[0] < 4000:
                out[i] = 0.0
        return out


@pytest.mark.parametrize("segment_seconds", [3.0, 60.0])
def test_a_file_ending_inside_a_cross_fade_keeps_its_hum_estimate_to_the_end(
    tmp_path: Path, segment_seconds: float
) -> None:
    # chunks of 8 s every 7 s start at 13 s: the file ends 0.3 s into that chunk's ramp-in, so the chunk
    # before it holds all of the file's last second; cross-fading in the new chunk's empty estimate left
    # up to 30 % of the hum in the last 0.3 s
    rate = 16000
    n = int(13.3 * rate)
    clean = noise(n, 1, seed=5, level=0.02)
    write_audio(tmp_path / "in" / "a.wav", clean + HUM(np.arange(n) / rate), rate, "FLOAT")
    est = _NeedsHalfASecond(HUM)
    recs = _run(tmp_path / "in", tmp_path / "out", est, force=True, segment_seconds=segment_seconds, jobs=1)
    assert [r.status for r in recs] == ["cleaned"]
    out, _ = sf.read(tmp_path / "out" / "a.wav")
    err = out - clean
    assert np.max(np.abs(err[-int(0.5 * rate) :])) < 1e-4  # as exact at the end as everywhere
    assert np.max(np.abs(err)) < 1e-4
    # no chunk is sent whose audio lies wholly in one of its ramps: not the one after 13 s, nor the one
    # ending where the file begins
    assert sorted(est.sent) == [-8000, 48000]


def test_hum_switched_on_part_way_is_removed_where_it_runs(tmp_path: Path) -> None:
    """Hum from 40 s of a 90 s take on (a unit switched on): the detector finds it in that part (it used to
    pass the take through untouched), the default model removes it there and leaves the first part all but
    alone."""
    from humclean import zoo

    rate = 16000
    n = rate * 90
    t = np.arange(n) / rate
    programme = noise(n, 1, 21, 0.05)
    hum = HUM(t) * (t >= 40.0)
    write_audio(tmp_path / "in" / "take.wav", programme + hum, rate, "FLOAT")
    (rec,) = _run(tmp_path / "in", tmp_path / "out", zoo.load("default", "cpu"))
    assert rec.status == "cleaned", rec
    lo, hi = rec.extra["hum_span_s"]
    assert 38.0 <= lo <= 42.0 and hi >= 88.0, rec.extra
    assert rec.action == f"clean: hum {lo:.0f}-{hi:.0f} s"
    (dry,) = _run(tmp_path / "in", tmp_path / "dry", zoo.load("dsp", "cpu"), dry_run=True)
    assert dry.action == rec.action and dry.extra["hum_span_s"] == [lo, hi], "a dry run says the same"
    out, _ = sf.read(tmp_path / "out" / "take.wav")
    err = out - programme

    def db(v: np.ndarray, ref: np.ndarray) -> float:
        return 10 * math.log10(float(np.mean(v**2)) / float(np.mean(ref**2)))

    after, before = t >= 42.0, t < 33.0  # the chunk that holds the switch aside
    assert db(err[after], hum[after]) < -20, "hum left where it runs"
    assert db(err[before], programme[before]) < -35, "the part without hum was changed"


def test_a_part_is_reported_only_when_no_channel_hums_throughout(tmp_path: Path) -> None:
    """Stereo: the left channel hums from 40 s on, the right throughout; the take is not reported as hummed
    in part (and a channel of its own, alone, would be)."""
    rate = 8000
    n = rate * 90
    t = np.arange(n) / rate
    left = noise(n, 1, 31, 0.05) + HUM(t) * (t >= 40.0)
    right = noise(n, 1, 32, 0.05) + HUM(t)
    write_audio(tmp_path / "in" / "both.wav", np.stack([left, right], 1), rate, "FLOAT")
    write_audio(tmp_path / "in" / "left.wav", left, rate, "FLOAT")
    recs = {r.path: r for r in _run(tmp_path / "in", tmp_path / "out", OracleEstimator(HUM), dry_run=True)}
    assert recs["both.wav"].action == "clean" and "hum_span_s" not in recs["both.wav"].extra
    assert recs["left.wav"].action.startswith("clean: hum 4"), recs["left.wav"].action
