"""audio_io / metadata on real files written under tmp_path, one case per container and subtype."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from humclean.audio_io import (
    AtomicWriter,
    AudioInfo,
    BlockReader,
    cleanup_stale_temps,
    copy_atomic,
    probe,
)
from humclean.errors import DecodeError, EncodeError
from humclean.metadata import copy_tags

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")

FRAMES = 9000  # > 8193 so that block size 8193 splits the file
BLOCK_SIZES = (1, 64, 65, 8193, FRAMES + 100)
PCM_BITS = {"PCM_U8": 8, "PCM_S8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64}
EXT = {
    "WAV": "wav",
    "WAVEX": "wav",
    "RF64": "wav",
    "W64": "w64",
    "FLAC": "flac",
    "AIFF": "aiff",
    "OGG": "ogg",
    "MP3": "mp3",
}

# (container, subtype, [(sample_rate, channels), ...]): every rate and channel count each format allows
MATRIX: list[tuple[str, str, list[tuple[int, int]]]] = [
    ("WAV", "PCM_U8", [(8000, 1), (44100, 2)]),
    ("WAV", "PCM_16", [(8000, 1), (44100, 2), (192000, 6)]),
    ("WAV", "PCM_24", [(48000, 2), (96000, 6)]),
    ("WAV", "PCM_32", [(44100, 1), (192000, 2)]),
    ("WAV", "FLOAT", [(48000, 2), (96000, 6)]),
    ("WAV", "DOUBLE", [(8000, 1), (48000, 2)]),
    ("WAVEX", "PCM_16", [(44100, 2), (48000, 6)]),
    ("WAVEX", "PCM_24", [(96000, 6)]),
    ("WAVEX", "FLOAT", [(48000, 1)]),
    ("RF64", "PCM_24", [(48000, 2)]),
    ("RF64", "PCM_16", [(8000, 1)]),
    ("W64", "PCM_16", [(44100, 2)]),
    ("W64", "FLOAT", [(192000, 6)]),
    ("FLAC", "PCM_S8", [(8000, 1)]),
    ("FLAC", "PCM_16", [(8000, 1), (44100, 2), (192000, 6)]),
    ("FLAC", "PCM_24", [(48000, 2), (96000, 6)]),
    ("AIFF", "PCM_16", [(44100, 2), (8000, 1)]),
    ("AIFF", "PCM_24", [(96000, 6)]),
    ("OGG", "VORBIS", [(8000, 1), (44100, 2), (96000, 6)]),
    ("OGG", "OPUS", [(8000, 1), (48000, 2), (48000, 6)]),
    ("MP3", "MPEG_LAYER_III", [(8000, 1), (44100, 2), (48000, 2)]),
]
CASES = [pytest.param(c, s, r, ch, id=f"{c}-{s}-{r}-{ch}ch") for c, s, pairs in MATRIX for r, ch in pairs]
PCM_CASES = [
    pytest.param(c, s, id=f"{c}-{s}") for c, s, _ in MATRIX if s.startswith("PCM_") or s in ("FLOAT", "DOUBLE")
]


def _signal(frames: int, channels: int, seed: int = 0, peak: float = 0.8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-peak, peak, (frames, channels))


def _write(tmp_path: Path, container: str, subtype: str, rate: int, channels: int, frames: int = FRAMES) -> Path:
    path = tmp_path / f"src_{container}_{subtype}_{rate}_{channels}.{EXT[container]}"
    sf.write(str(path), _signal(frames, channels), rate, subtype=subtype, format=container)
    return path


def _one_shot(path: Path, subtype: str) -> np.ndarray:
    # SoundFile.read, not sf.read: sf.read seeks to 0 first, and after a seek libsndfile's MP3
    # decoder rounds some samples differently (~1e-8) from a plain sequential read
    with sf.SoundFile(str(path)) as f:
        if subtype.startswith("PCM_"):
            return f.read(dtype="int32", always_2d=True).astype(np.float64) / 2**31
        return f.read(dtype="float64", always_2d=True)


def _roundtrip(info: AudioInfo, dest: Path, block: int = 4096, **kw: object) -> AtomicWriter:
    with BlockReader(info) as reader, AtomicWriter(dest, info, dither_seed=7, **kw) as writer:  # type: ignore[arg-type]
        for b in reader.blocks(block):
            writer.write(b)
        writer.commit()
    return writer


# ------------------------------------------------------------------------------------------------
# probe + blockwise reading


@pytest.mark.parametrize(("container", "subtype", "rate", "channels"), CASES)
def test_probe_and_blocks(tmp_path: Path, container: str, subtype: str, rate: int, channels: int) -> None:
    path = _write(tmp_path, container, subtype, rate, channels)
    info = probe(path)
    assert info.backend == "soundfile"
    assert info.container == sf.info(str(path)).format
    assert info.subtype == subtype
    assert (info.sample_rate, info.channels) == (rate, channels)
    lossy = subtype in ("VORBIS", "OPUS", "MPEG_LAYER_III")
    assert info.lossless is not lossy
    assert info.bits_per_sample == (None if lossy else PCM_BITS[subtype])
    if lossy:
        assert info.bitrate is not None and info.bitrate > 0
    else:
        assert info.bitrate is None
        assert info.frames == FRAMES
    assert info.duration_s == pytest.approx(info.frames / rate)

    ref = _one_shot(path, subtype)
    for bs in BLOCK_SIZES:
        with BlockReader(info) as reader:
            blocks = list(reader.blocks(bs))
        assert all(b.shape == (bs, channels) for b in blocks[:-1])
        assert all(b.dtype == np.float64 for b in blocks)
        got = np.concatenate(blocks)
        assert 0 < blocks[-1].shape[0] <= bs
        assert got.shape == ref.shape
        assert np.array_equal(got, ref), f"block size {bs}"
        if not lossy:
            assert got.shape[0] == info.frames
    # single precision (the analysis pass): the same samples, rounded once
    with BlockReader(info) as reader:
        single = np.concatenate(list(reader.blocks(BLOCK_SIZES[0], np.float32)))
    assert single.dtype == np.float32
    assert np.array_equal(single, ref.astype(np.float32))


# ------------------------------------------------------------------------------------------------
# writing


@pytest.mark.parametrize(("container", "subtype"), PCM_CASES)
def test_untouched_pcm_roundtrips_bit_identically(tmp_path: Path, container: str, subtype: str) -> None:
    channels = 2
    src = _write(tmp_path, container, subtype, 44100, channels)
    info = probe(src)
    dest = tmp_path / "out" / f"x.{EXT[container]}"
    with BlockReader(info) as reader, AtomicWriter(dest, info, dither_seed=1) as writer:
        for i, b in enumerate(reader.blocks(1000)):
            # alternate "no mask" and "mask with nothing flagged": both must leave samples alone
            writer.write(b, None if i % 2 else np.zeros(channels, dtype=bool))
        assert writer.clipped_samples == 0
        writer.commit()
    assert writer.frames_written == FRAMES
    out = sf.info(str(dest))
    assert (out.format, out.subtype, out.samplerate, out.channels, out.frames) == (
        container,
        subtype,
        44100,
        channels,
        FRAMES,
    )
    dtype = "float64" if subtype in ("FLOAT", "DOUBLE") else "int32"
    a, _ = sf.read(str(src), dtype=dtype)
    b, _ = sf.read(str(dest), dtype=dtype)
    assert np.array_equal(a, b)


def test_dither_on_flagged_channel_only(tmp_path: Path) -> None:
    src = _write(tmp_path, "WAV", "PCM_16", 48000, 2, frames=60000)
    info = probe(src)
    with BlockReader(info) as reader:
        x = np.concatenate(list(reader.blocks(60000)))
    lsb = 2.0**-15
    y = x.copy()
    y[:, 0] += 0.37 * lsb  # a "modified" channel 0 that is no longer on the 16-bit grid

    def encode(seed: int, name: str) -> np.ndarray:
        dest = tmp_path / name
        with AtomicWriter(dest, info, dither_seed=seed) as w:
            for start in range(0, len(y), 7000):
                w.write(y[start : start + 7000], np.array([True, False]))
            w.commit()
        data, _ = sf.read(str(dest), dtype="int32")
        return data.astype(np.float64) / 2**31

    a = encode(123, "a.wav")
    assert np.array_equal(a[:, 1], x[:, 1])  # unflagged channel bit-identical
    err = (a[:, 0] - y[:, 0]) / lsb
    assert np.abs(err).max() <= 1.5
    assert abs(err.mean()) < 0.02
    plain = np.rint(y[:, 0] / lsb) * lsb
    assert np.count_nonzero(a[:, 0] != plain) > 0.2 * len(a)  # dither really moved LSBs
    assert np.array_equal(a, encode(123, "b.wav"))  # deterministic
    assert not np.array_equal(a, encode(124, "c.wav"))


def test_24bit_is_never_dithered(tmp_path: Path) -> None:
    src = _write(tmp_path, "WAV", "PCM_24", 48000, 1)
    info = probe(src)
    y = np.full((100, 1), 0.3 * 2.0**-23)
    with AtomicWriter(tmp_path / "o.wav", info, dither_seed=0) as w:
        w.write(y, np.array([True]))
        w.commit()
    out, _ = sf.read(str(tmp_path / "o.wav"), dtype="int32")
    assert not out.any()


@pytest.mark.parametrize(("subtype", "bits"), [("PCM_16", 16), ("PCM_24", 24), ("PCM_U8", 8)])
def test_clipping_not_wrapping(tmp_path: Path, subtype: str, bits: int) -> None:
    info = probe(_write(tmp_path, "WAV", subtype, 8000, 2, frames=10))
    block = np.array([[1.5, -1.5], [1.0, -1.0], [0.25, -0.25], [2.0**30, -3.0]])
    with AtomicWriter(tmp_path / "c.wav", info, dither_seed=0) as w:
        w.write(block, np.array([True, True]))
        assert w.clipped_samples == 5  # 1.5, -1.5, 1.0 (one step above max), 2**30, -3.0
        w.commit()
    out, _ = sf.read(str(tmp_path / "c.wav"), dtype="int32")
    top = (2 ** (bits - 1) - 1) << (32 - bits)
    assert out[0].tolist() == [top, -(2**31)]
    assert out[1].tolist() == [top, -(2**31)]
    assert out[3].tolist() == [top, -(2**31)]


def test_float_outputs_are_neither_clipped_nor_counted(tmp_path: Path) -> None:
    info = probe(_write(tmp_path, "WAV", "FLOAT", 8000, 1, frames=10))
    with AtomicWriter(tmp_path / "f.wav", info, dither_seed=0) as w:
        w.write(np.array([[1.5], [-2.0]]))
        assert w.clipped_samples == 0
        w.commit()
    out, _ = sf.read(str(tmp_path / "f.wav"))
    assert out.tolist() == [1.5, -2.0]


def test_lossy_output_clips_and_counts(tmp_path: Path) -> None:
    info = probe(_write(tmp_path, "OGG", "VORBIS", 44100, 1, frames=4410))
    with AtomicWriter(tmp_path / "v.ogg", info, dither_seed=0) as w:
        w.write(np.array([[1.5], [-1.2], [0.5]] * 1000))
        assert w.clipped_samples == 2000
        w.commit()
    assert probe(tmp_path / "v.ogg").subtype == "VORBIS"


def test_nonfinite_output_is_an_encode_error(tmp_path: Path) -> None:
    info = probe(_write(tmp_path, "WAV", "PCM_16", 8000, 1, frames=10))
    dest = tmp_path / "n.wav"
    with pytest.raises(EncodeError, match="non-finite"), AtomicWriter(dest, info, dither_seed=0) as w:
        w.write(np.array([[np.nan]]))
    assert not dest.exists()
    assert not list(tmp_path.glob(".*humclean-tmp*"))


@pytest.mark.parametrize(
    ("container", "subtype", "rate", "channels", "bitrate_level"),
    [
        ("MP3", "MPEG_LAYER_III", 44100, 2, 0.65),  # ~128 kb/s CBR
        ("MP3", "MPEG_LAYER_III", 22050, 1, 0.6),
        ("OGG", "VORBIS", 44100, 2, None),
        ("OGG", "OPUS", 48000, 2, 0.6),
    ],
)
def test_lossy_reencode_keeps_codec_and_bitrate(
    tmp_path: Path, container: str, subtype: str, rate: int, channels: int, bitrate_level: float | None
) -> None:
    src = tmp_path / f"s.{EXT[container]}"
    kw: dict[str, object] = {}
    if bitrate_level is not None:
        kw["compression_level"] = bitrate_level
    if subtype == "MPEG_LAYER_III":
        kw["bitrate_mode"] = "CONSTANT"
    # 3 s of band-limited noise: content a codec has to spend bits on
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.standard_normal((rate * 3, channels)), axis=0)
    x = 0.4 * (x - x.mean(axis=0)) / np.abs(x - x.mean(axis=0)).max() + 0.02 * rng.standard_normal(x.shape)
    with sf.SoundFile(str(src), "w", rate, channels, subtype, format=container, **kw) as f:  # type: ignore[arg-type]
        f.write(x)
    info = probe(src)
    dest = tmp_path / "o" / src.name
    _roundtrip(info, dest)
    out = probe(dest)
    assert (out.container, out.subtype, out.sample_rate, out.channels) == (container, subtype, rate, channels)
    assert info.bitrate and out.bitrate
    assert 0.7 < out.bitrate / info.bitrate < 1.4, (info.bitrate, out.bitrate)
    assert abs(out.frames - info.frames) <= rate // 10


@pytest.mark.parametrize(
    ("container", "subtype", "expect"),
    [
        ("WAV", "PCM_16", "PCM_16"),
        ("WAV", "PCM_U8", "PCM_16"),
        ("WAV", "PCM_24", "PCM_24"),
        ("WAV", "FLOAT", "PCM_24"),
        ("MP3", "MPEG_LAYER_III", "PCM_24"),
    ],
)
def test_format_override_flac(tmp_path: Path, container: str, subtype: str, expect: str) -> None:
    info = probe(_write(tmp_path, container, subtype, 44100, 2, frames=4000))
    dest = tmp_path / "o.flac"
    _roundtrip(info, dest, format_override="FLAC")
    out = sf.info(str(dest))
    assert (out.format, out.subtype, out.samplerate, out.channels) == ("FLAC", expect, 44100, 2)
    if container == "WAV" and subtype == "PCM_16":
        assert np.array_equal(sf.read(str(dest), dtype="int32")[0], sf.read(str(info.path), dtype="int32")[0])


# ------------------------------------------------------------------------------------------------
# atomicity


def test_exception_leaves_no_temp_and_no_dest(tmp_path: Path) -> None:
    info = probe(_write(tmp_path, "WAV", "PCM_16", 8000, 1, frames=100))
    dest = tmp_path / "deep" / "er" / "x.wav"
    with pytest.raises(RuntimeError, match="boom"), AtomicWriter(dest, info, dither_seed=0) as w:
        w.write(np.zeros((50, 1)))
        assert w.temp.exists() and w.temp.parent == dest.parent and w.temp.name.startswith(".x.wav.humclean-tmp-")
        raise RuntimeError("boom")
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_no_commit_leaves_nothing(tmp_path: Path) -> None:
    info = probe(_write(tmp_path, "FLAC", "PCM_16", 8000, 1, frames=100))
    dest = tmp_path / "o" / "x.flac"
    with AtomicWriter(dest, info, dither_seed=0) as w:
        w.write(np.zeros((50, 1)))
    assert list(dest.parent.iterdir()) == []


def test_commit_replaces_existing_dest(tmp_path: Path) -> None:
    info = probe(_write(tmp_path, "WAV", "PCM_16", 8000, 1, frames=100))
    dest = tmp_path / "x.wav"
    dest.write_bytes(b"old contents")
    with AtomicWriter(dest, info, dither_seed=0) as w:
        w.write(np.full((100, 1), 0.5))
        assert dest.read_bytes() == b"old contents"  # untouched until commit
        assert w.commit() == dest
    assert sf.read(str(dest))[0].tolist() == [0.5] * 100
    assert not list(tmp_path.glob(".*humclean-tmp*"))


def test_copy_atomic(tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(os.urandom(3_000_000))
    dest = tmp_path / "x" / "y" / "a.bin"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"old")
    copy_atomic(src, dest)
    assert dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.bin"]


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_cleanup_stale_temps(tmp_path: Path) -> None:
    dead = _dead_pid()
    (tmp_path / "a" / "b").mkdir(parents=True)
    stale = [
        tmp_path / f".x.wav.humclean-tmp-{dead}-0a1b2c3d",
        tmp_path / "a" / "b" / f".y.flac.humclean-tmp-{dead}-ff",
    ]
    live = tmp_path / "a" / f".z.wav.humclean-tmp-{os.getpid()}-1234abcd"
    keep = [tmp_path / "x.wav", tmp_path / "a" / "humclean-tmp-1-2", live]
    for p in stale + keep:
        p.write_bytes(b"x")
    assert cleanup_stale_temps(tmp_path) == 2
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)
    assert cleanup_stale_temps(tmp_path, skip_live=False) == 1
    assert not live.exists()


# ------------------------------------------------------------------------------------------------
# bad inputs


def _wav_bytes(tmp_path: Path, subtype: str = "PCM_16") -> bytes:
    p = tmp_path / "good.wav"
    sf.write(str(p), _signal(8000, 2), 8000, subtype=subtype)
    return p.read_bytes()


def _expect_decode_error(path: Path, pattern: str) -> None:
    with pytest.raises(DecodeError, match=pattern) as ei:
        info = probe(path)
        with BlockReader(info) as r:
            for _ in r.blocks(1024):
                pass
    assert "\n" not in str(ei.value)
    assert "Traceback" not in str(ei.value)


def test_zero_length_file(tmp_path: Path) -> None:
    (tmp_path / "e.wav").write_bytes(b"")
    _expect_decode_error(tmp_path / "e.wav", "^empty file")


def test_text_file_named_wav(tmp_path: Path) -> None:
    (tmp_path / "t.wav").write_text("# not audio\nhello, world\n")
    _expect_decode_error(tmp_path / "t.wav", "^not an audio file: looks like text$")


def test_binary_junk(tmp_path: Path) -> None:
    (tmp_path / "j.wav").write_bytes(bytes(range(256)) * 8)
    _expect_decode_error(tmp_path / "j.wav", "^not an audio file")


def test_truncated_header(tmp_path: Path) -> None:
    (tmp_path / "h.wav").write_bytes(_wav_bytes(tmp_path)[:30])
    _expect_decode_error(tmp_path / "h.wav", "^truncated header")


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "pattern"),
    [(24, "<I", 0, "^unsupported sample rate 0 Hz$"), (22, "<H", 0, "^0 channels$")],
)
def test_bad_fmt_fields(tmp_path: Path, offset: int, fmt: str, value: int, pattern: str) -> None:
    import struct

    data = bytearray(_wav_bytes(tmp_path))
    struct.pack_into(fmt, data, offset, value)
    (tmp_path / "b.wav").write_bytes(bytes(data))
    _expect_decode_error(tmp_path / "b.wav", pattern)


def test_truncated_or_absurdly_sized_wav_data_is_an_error(tmp_path: Path) -> None:
    """libsndfile would quietly read what is there; an archive tool reports the damage instead."""
    import struct

    data = _wav_bytes(tmp_path)
    (tmp_path / "d.wav").write_bytes(data[: 44 + 4 * 3000 + 2])  # 3000.5 frames of audio left
    _expect_decode_error(tmp_path / "d.wav", "^truncated data: the data chunk declares")
    absurd = bytearray(data)
    struct.pack_into("<I", absurd, 40, 0x7FFFFFF0)
    (tmp_path / "a.wav").write_bytes(bytes(absurd))
    _expect_decode_error(tmp_path / "a.wav", "^truncated data: the data chunk declares 2147483632 bytes")


def test_truncated_flac_data_raises(tmp_path: Path) -> None:
    p = tmp_path / "g.flac"
    sf.write(str(p), _signal(48000, 2), 48000, subtype="PCM_16")
    data = p.read_bytes()
    (tmp_path / "t.flac").write_bytes(data[: len(data) // 2])
    _expect_decode_error(tmp_path / "t.flac", "^truncated data")


def test_nan_in_float_wav(tmp_path: Path) -> None:
    x = _signal(5000, 2)
    x[4321, 1] = np.nan
    sf.write(str(tmp_path / "n.wav"), x, 8000, subtype="FLOAT")
    _expect_decode_error(tmp_path / "n.wav", "^non-finite samples .* frame 4321$")


def test_missing_file(tmp_path: Path) -> None:
    _expect_decode_error(tmp_path / "nope.wav", "^no such file")


# ------------------------------------------------------------------------------------------------
# ffmpeg backend


def _ffmpeg_make(
    path: Path,
    seconds: float,
    rate: int,
    channels: int,
    codec_args: list[str],
    meta: dict[str, str] | None = None,
) -> None:
    assert FFMPEG is not None
    meta_args = [a for k, v in (meta or {}).items() for a in ("-metadata", f"{k}={v}")]
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"anoisesrc=d={seconds}:c=pink:r={rate}:a=0.3",
            "-ac",
            str(channels),
            *codec_args,
            *meta_args,
            str(path),
        ],
        check=True,
    )


@needs_ffmpeg
@pytest.mark.parametrize(("rate", "channels", "kbps"), [(44100, 2, 128), (8000, 1, 24), (96000, 6, 384)])
def test_ffmpeg_m4a_aac(tmp_path: Path, rate: int, channels: int, kbps: int) -> None:
    src = tmp_path / "a.m4a"
    _ffmpeg_make(src, 1.0, rate, channels, ["-c:a", "aac", "-b:a", f"{kbps}k"], {"title": "Hum Test", "artist": "Me"})
    info = probe(src)
    assert (info.backend, info.container, info.subtype) == ("ffmpeg", "M4A", "aac")
    assert (info.sample_rate, info.channels) == (rate, channels)
    assert info.frames == rate and info.frames_exact
    assert not info.lossless and info.bits_per_sample is None
    assert info.bitrate and 0.6 < info.bitrate / (kbps * 1000) < 1.4

    ref: np.ndarray | None = None
    for bs in (64, 65, 8193, rate * 2):
        with BlockReader(info) as r:
            blocks = list(r.blocks(bs))
        got = np.concatenate(blocks)
        assert all(b.shape == (bs, channels) for b in blocks[:-1])
        if ref is None:
            ref = got
        assert np.array_equal(got, ref)
    assert ref is not None and ref.shape == (info.frames, channels)  # AAC end padding trimmed

    dest = tmp_path / "out" / "a.m4a"
    w = _roundtrip(info, dest)
    assert "©nam" in w.tags_copied
    out = probe(dest)
    assert (out.backend, out.container, out.subtype, out.sample_rate, out.channels) == (
        "ffmpeg",
        "M4A",
        "aac",
        rate,
        channels,
    )
    assert out.bitrate and 0.7 < out.bitrate / info.bitrate < 1.4
    assert abs(out.frames - info.frames) <= 2048
    from mutagen.mp4 import MP4

    assert MP4(str(dest)).tags["©nam"] == ["Hum Test"]


@needs_ffmpeg
def test_ffmpeg_decode_streams(tmp_path: Path) -> None:
    src = tmp_path / "long.m4a"
    _ffmpeg_make(src, 60.0, 48000, 2, ["-c:a", "aac", "-b:a", "64k"])
    info = probe(src)
    with BlockReader(info) as r:
        it = r.blocks(4800)
        first = next(it)
        assert first.shape == (4800, 2)
        proc = r._proc
        # 60 s of stereo float64 is 46 MB; the pipe holds 64 kB, so a streaming decoder is still busy
        assert proc is not None and proc.poll() is None
        total = first.shape[0] + sum(b.shape[0] for b in it)
    assert total == info.frames == 60 * 48000
    assert r._proc is None and proc.poll() is not None


@needs_ffmpeg
def test_ffmpeg_reader_killed_on_early_close(tmp_path: Path) -> None:
    src = tmp_path / "long.m4a"
    _ffmpeg_make(src, 20.0, 44100, 2, ["-c:a", "aac", "-b:a", "64k"])
    r = BlockReader(probe(src))
    with r:
        it = r.blocks(1024)
        next(it)
        proc = r._proc
        assert proc is not None and proc.poll() is None
    assert r._proc is None and proc.poll() is not None  # killed and reaped, not left running


@needs_ffmpeg
def test_ffmpeg_writer_abort_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "a.m4a"
    _ffmpeg_make(src, 0.5, 44100, 2, ["-c:a", "aac", "-b:a", "96k"])
    info = probe(src)
    dest = tmp_path / "o" / "a.m4a"
    with pytest.raises(KeyError), AtomicWriter(dest, info, dither_seed=0) as w:
        w.write(np.zeros((4096, 2)))
        raise KeyError("x")
    assert list(dest.parent.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# tags


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_flac_tags_and_picture_survive(tmp_path: Path) -> None:
    from mutagen.flac import FLAC, Picture

    src = _write(tmp_path, "FLAC", "PCM_16", 44100, 2, frames=2000)
    f = FLAC(str(src))
    f["title"] = "A Title"
    f["artist"] = ["One", "Two"]
    f["x_custom"] = "kept"
    pic = Picture()
    pic.data, pic.mime, pic.type = _png(), "image/png", 3
    f.add_picture(pic)
    f.save()
    dest = tmp_path / "o.flac"
    w = _roundtrip(probe(src), dest)
    assert {"title", "artist", "x_custom", "picture"} <= set(w.tags_copied)
    g = FLAC(str(dest))
    assert g["title"] == ["A Title"] and g["artist"] == ["One", "Two"] and g["x_custom"] == ["kept"]
    assert len(g.pictures) == 1 and g.pictures[0].data == _png()


def test_ogg_tags_survive(tmp_path: Path) -> None:
    from mutagen.oggvorbis import OggVorbis

    src = _write(tmp_path, "OGG", "VORBIS", 44100, 2, frames=4000)
    f = OggVorbis(str(src))
    f["title"] = "Ogg T"
    f["comment"] = "two\nlines"
    f.save()
    dest = tmp_path / "o.ogg"
    _roundtrip(probe(src), dest)
    g = OggVorbis(str(dest))
    assert g["title"] == ["Ogg T"] and g["comment"] == ["two\nlines"]


def test_mp3_id3_survives(tmp_path: Path) -> None:
    from mutagen.id3 import APIC, COMM, ID3, TIT2, TPE1

    src = _write(tmp_path, "MP3", "MPEG_LAYER_III", 44100, 2, frames=4000)
    tags = ID3()
    tags.add(TIT2(encoding=3, text="Mp3 Title"))
    tags.add(TPE1(encoding=3, text="Artist"))
    tags.add(COMM(encoding=3, lang="eng", desc="", text="c"))
    tags.add(APIC(encoding=3, mime="image/png", type=3, desc="cover", data=_png()))
    tags.save(str(src))
    dest = tmp_path / "o.mp3"
    _roundtrip(probe(src), dest)
    got = ID3(str(dest))
    assert str(got["TIT2"]) == "Mp3 Title" and str(got["TPE1"]) == "Artist"
    assert got.getall("APIC")[0].data == _png()
    assert got.getall("COMM")[0].text == ["c"]


def test_copy_tags_direct_and_no_tags(tmp_path: Path) -> None:
    from mutagen.flac import FLAC

    a = _write(tmp_path, "FLAC", "PCM_16", 8000, 1, frames=100)
    b = tmp_path / "b.flac"
    shutil.copy(a, b)
    assert copy_tags(a, b) == []  # no tags: nothing copied, no error
    f = FLAC(str(a))
    f["album"] = "Al"
    f.save()
    assert copy_tags(a, b) == ["album"]
    assert FLAC(str(b))["album"] == ["Al"]
    txt = tmp_path / "t.txt"
    txt.write_text("hi")
    assert copy_tags(txt, b) == []


def test_mp3_tags_to_flac_override(tmp_path: Path) -> None:
    from mutagen.flac import FLAC
    from mutagen.id3 import APIC, ID3, TIT2

    src = _write(tmp_path, "MP3", "MPEG_LAYER_III", 44100, 2, frames=4000)
    tags = ID3()
    tags.add(TIT2(encoding=3, text="Cross"))
    tags.add(APIC(encoding=3, mime="image/png", type=3, desc="", data=_png()))
    tags.save(str(src))
    dest = tmp_path / "o.flac"
    _roundtrip(probe(src), dest, format_override="FLAC")
    g = FLAC(str(dest))
    assert g["title"] == ["Cross"]
    assert g.pictures and g.pictures[0].data == _png()


def test_wav_info_strings_survive(tmp_path: Path) -> None:
    src = tmp_path / "s.wav"
    with sf.SoundFile(str(src), "w", 8000, 1, "PCM_16") as f:
        f.title = "Wav Title"
        f.artist = "Wav Artist"
        f.comment = "note"
        f.write(np.zeros(100))
    dest = tmp_path / "o.wav"
    _roundtrip(probe(src), dest)
    with sf.SoundFile(str(dest)) as g:
        assert (g.title, g.artist, g.comment) == ("Wav Title", "Wav Artist", "note")


@needs_ffmpeg
@pytest.mark.parametrize(
    ("rate", "bits", "fmt_args"),
    [
        (44100, 16, ["-sample_fmt", "s16p"]),
        (48000, 24, ["-sample_fmt", "s32p", "-bits_per_raw_sample", "24"]),
    ],
)
def test_ffmpeg_alac_untouched_roundtrip_is_bit_identical(
    tmp_path: Path, rate: int, bits: int, fmt_args: list[str]
) -> None:
    src = tmp_path / "a.m4a"
    _ffmpeg_make(src, 0.5, rate, 2, ["-c:a", "alac", *fmt_args])
    info = probe(src)
    assert (info.subtype, info.lossless, info.bits_per_sample, info.bitrate) == ("alac", True, bits, None)
    dest = tmp_path / "o" / "a.m4a"
    _roundtrip(info, dest)
    assert probe(dest).bits_per_sample == bits

    def pcm(p: Path) -> bytes:
        assert FFMPEG is not None
        return subprocess.run(
            [FFMPEG, "-v", "error", "-i", str(p), "-f", "s32le", "-"], capture_output=True, check=True
        ).stdout

    assert pcm(src) == pcm(dest)
