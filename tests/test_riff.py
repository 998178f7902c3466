"""Byte-exact RIFF chunk carry-over (humclean.riff) through AtomicWriter, like a pipeline pass.

Fixtures are assembled by hand with struct so every chunk's bytes are known; one fixture written
by ffmpeg (-write_bext 1) lives in tests/fixtures/ffmpeg_bwf.wav.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from humclean import riff
from humclean.audio_io import AtomicWriter, BlockReader, probe
from humclean.errors import DecodeError, EncodeError
from humclean.riff import (
    BEXT_HISTORY_OFFSET,
    coding_history_line,
    insert_coding_history,
    read_chunks,
    rebuild,
)

FIXTURES = Path(__file__).parent / "fixtures"
LINE = "A=PCM,F=48000,W=24,M=stereo,T=humclean 0.1.0; model=dsp; f0=50.02Hz\r\n"
OLD_HISTORY = b"A=ANALOGUE,M=stereo,T=Studer A807; 15 ips\r\n"

# ----------------------------------------------------------------------------------------------
# hand-made fixtures


def _fmt(tag: int, channels: int, rate: int, bits: int) -> bytes:
    align = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def _bext(history: bytes = OLD_HISTORY) -> bytes:
    head = (
        b"Side A, take 3".ljust(256, b"\0")
        + b"Archive Lab".ljust(32, b"\0")
        + b"REF-0042".ljust(32, b"\0")
        + b"1973-05-04"
        + b"12:34:56"
        + struct.pack("<II", 123_456_789, 1)  # time reference, samples since midnight
        + struct.pack("<H", 1)  # version
        + bytes(range(64))  # UMID
        + bytes(190)  # v1: 10 reserved loudness bytes + 180 reserved
    )
    assert len(head) == BEXT_HISTORY_OFFSET
    return head + history


def _list(kind: bytes, subchunks: list[tuple[bytes, bytes]]) -> bytes:
    body = kind
    for cid, payload in subchunks:
        body += struct.pack("<4sI", cid, len(payload)) + payload + b"\0" * (len(payload) & 1)
    return body


def _id3() -> bytes:
    text = b"\x00ID3 title"
    frame = b"TIT2" + struct.pack(">I", len(text)) + b"\x00\x00" + text
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame


def _pcm_bytes(ints: np.ndarray, bits: int) -> bytes:
    """Little-endian PCM bytes of int array ``[n, C]``."""
    flat = ints.astype("<i4").reshape(-1)
    if bits == 8:
        return (flat + 128).astype(np.uint8).tobytes()
    raw = flat.view(np.uint8).reshape(-1, 4)
    return raw[:, : bits // 8].tobytes()


def _assemble(form: bytes, chunks: list[tuple[bytes, bytes]], frames: int, align: int) -> bytes:
    """RIFF or RF64 bytes; for RF64 a ds64 goes first and the 32-bit sizes hold 0xFFFFFFFF."""
    body = b""
    for cid, payload in chunks:
        size = len(payload)
        field = 0xFFFFFFFF if form != b"RIFF" and cid == b"data" else size
        body += struct.pack("<4sI", cid, field) + payload + b"\0" * (size & 1)
    if form == b"RIFF":
        return struct.pack("<4sI4s", b"RIFF", 4 + len(body), b"WAVE") + body
    data_size = len(dict(chunks)[b"data"])
    ds64_len = 8 + 28
    riff_size = 4 + ds64_len + len(body)
    ds64 = struct.pack("<4sIQQQI", b"ds64", 28, riff_size, data_size, frames, 0)
    return struct.pack("<4sI4s", form, 0xFFFFFFFF, b"WAVE") + ds64 + body


def _samples(frames: int, channels: int, bits: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hi = 2 ** (bits - 1) - 1
    return rng.integers(-hi // 4, hi // 4, size=(frames, channels))


def _rich_chunks(fmt: bytes, data: bytes) -> list[tuple[bytes, bytes]]:
    """Every kind of chunk an archive WAV carries, before and after data, with odd sizes."""
    return [
        (b"JUNK", bytes(28)),
        (b"bext", _bext()),
        (b"fmt ", fmt),
        (b"iXML", b'<?xml version="1.0"?><BWFXML><PROJECT>hum</PROJECT></BWFXML>'),
        (b"LIST", _list(b"INFO", [(b"INAM", b"Tape 12\0"), (b"ICMT", b"odd\0\0")])),
        (b"XYZ1", b"unknown, odd"),  # 13 bytes: needs a pad byte
        (b"chna", struct.pack("<HH", 1, 1) + b"\x01\x00" + b"ATU_00000001" + b"AT_00010001_01" + bytes(1)),
        (b"data", data),
        (b"cue ", struct.pack("<I", 1) + struct.pack("<II4sIII", 1, 0, b"data", 0, 0, 1000)),
        (b"LIST", _list(b"adtl", [(b"labl", struct.pack("<I", 1) + b"marker one\0")])),
        (b"smpl", struct.pack("<9I", 0, 0, 20833, 60, 0, 0, 0, 0, 0)),
        (b"axml", b"<ebuCoreMain>core</ebuCoreMain>"),
        (b"ID3 ", _id3()),
        (b"PAD ", bytes(7)),
    ]


def _make_rich(path: Path, form: bytes, channels: int, bits: int, frames: int, tag: int = 1) -> np.ndarray:
    """Write a hand-made WAV; return its samples as ints ``[frames, C]``."""
    ints = _samples(frames, channels, bits)
    fmt = _fmt(tag, channels, 48000, bits)
    path.write_bytes(_assemble(form, _rich_chunks(fmt, _pcm_bytes(ints, bits)), frames, channels * bits // 8))
    return ints


def _payloads(path: Path) -> list[tuple[bytes, bytes]]:
    """(id, payload) of every chunk; data payload included."""
    layout = read_chunks(path)
    raw = path.read_bytes()
    return [(c.id, raw[c.payload_offset : c.payload_offset + c.size]) for c in layout.chunks]


def _check_structure(path: Path) -> None:
    """Sizes and padding are self-consistent: header size, every chunk, pad bytes zero."""
    raw = path.read_bytes()
    layout = read_chunks(path)
    end = 12
    for c in layout.chunks:
        assert c.offset == end
        if c.size & 1:
            assert raw[c.payload_offset + c.size] == 0
        end = c.payload_offset + c.padded_size
    assert end == len(raw)
    (field,) = struct.unpack_from("<I", raw, 4)
    if layout.form == b"RIFF":
        assert field == len(raw) - 8
    else:
        riff_size, data_size, _, _ = struct.unpack_from("<QQQI", layout.ds64 or b"")
        assert field == 0xFFFFFFFF and riff_size == len(raw) - 8 and data_size == layout.data.size


def _data_ints24(path: Path, channels: int) -> np.ndarray:
    """24-bit PCM data chunk of ``path`` as ints ``[n, C]``, read without libsndfile."""
    layout = read_chunks(path)
    raw = path.read_bytes()[layout.data_offset : layout.data_offset + layout.data.size]
    b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int64)
    ints = b[:, 0] | b[:, 1] << 8 | b[:, 2] << 16
    return np.where(ints >= 2**23, ints - 2**24, ints).reshape(-1, channels)


def _clean_pass(src: Path, dest: Path, history: str | None = LINE, gain: float = 0.5) -> np.ndarray:
    """A pipeline-like pass: BlockReader blocks, modified samples, AtomicWriter.commit().

    Returns the float64 ``[n, C]`` blocks that were written.
    """
    info = probe(src)
    written = []
    with BlockReader(info) as reader, AtomicWriter(dest, info, dither_seed=7, coding_history=history) as w:
        for block in reader.blocks(777):
            out = block * gain
            written.append(out)
            w.write(out)
        w.commit()
    return np.concatenate(written)


def _expect_ints(written: np.ndarray, bits: int) -> np.ndarray:
    return np.clip(np.rint(written * 2 ** (bits - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).astype(np.int64)


def _assert_carried(src: Path, dest: Path, line: str | None) -> None:
    """Same chunk list; every chunk but data and bext byte-identical; bext = old + line inserted."""
    a, b = _payloads(src), _payloads(dest)
    assert [cid for cid, _ in a] == [cid for cid, _ in b]
    for (cid, pa), (_, pb) in zip(a, b, strict=True):
        if cid in (b"data", b"ds64"):
            continue
        if cid == b"bext" and line is not None:
            k = BEXT_HISTORY_OFFSET + len(pa[BEXT_HISTORY_OFFSET:].rstrip(b"\0"))
            assert pb == pa[:k] + line.encode() + pa[k:]
        else:
            assert pa == pb, cid


# ----------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize(
    ("channels", "bits", "frames"),
    [(2, 24, 3001), (1, 24, 1001), (1, 8, 999), (2, 16, 4096)],
)
def test_bwf_round_trip_keeps_every_chunk(tmp_path: Path, channels: int, bits: int, frames: int) -> None:
    src = tmp_path / "in.wav"
    _make_rich(src, b"RIFF", channels, bits, frames)
    dest = tmp_path / "out" / "in.wav"
    written = _clean_pass(src, dest)

    _assert_carried(src, dest, LINE)
    _check_structure(dest)
    got, rate = sf.read(str(dest), dtype="int32", always_2d=True)
    assert rate == 48000 and got.shape == (frames, channels)
    assert np.array_equal(got.astype(np.int64) >> (32 - bits), _expect_ints(written, bits))
    # the data chunk is exactly what libsndfile encodes for these samples
    layout = read_chunks(dest)
    assert layout.data.size == frames * channels * bits // 8
    assert sorted(p.name for p in dest.parent.iterdir()) == ["in.wav"]  # no temp left behind

    import mutagen.wave

    tags = mutagen.wave.WAVE(str(dest)).tags
    assert tags is not None and str(tags["TIT2"]) == "ID3 title"
    hist = dict(_payloads(dest))[b"bext"][BEXT_HISTORY_OFFSET:]
    assert hist == OLD_HISTORY + LINE.encode()


def test_no_history_line_copies_bext_unchanged(tmp_path: Path) -> None:
    src = tmp_path / "in.wav"
    _make_rich(src, b"RIFF", 2, 24, 500)
    _clean_pass(src, tmp_path / "o.wav", history=None)
    _assert_carried(src, tmp_path / "o.wav", None)


def test_untouched_audio_without_line_gives_identical_bytes(tmp_path: Path) -> None:
    src = tmp_path / "in.wav"
    _make_rich(src, b"RIFF", 2, 24, 2000)
    _clean_pass(src, tmp_path / "o.wav", history=None, gain=1.0)
    assert (tmp_path / "o.wav").read_bytes() == src.read_bytes()


def test_rf64_with_ds64_round_trip(tmp_path: Path) -> None:
    # even-sized chunks only: libsndfile 1.2.2 reads RF64 only without pad bytes
    frames = 1501
    ints = _samples(frames, 2, 24)
    chunks = [
        (b"fmt ", _fmt(1, 2, 48000, 24)),
        (b"bext", _bext(OLD_HISTORY + b"\0")),
        (b"iXML", b"<BWFXML/>\0"),
        (b"data", _pcm_bytes(ints, 24)),
        (b"axml", b"<ebuCoreMain/>"),
    ]
    src = tmp_path / "in.wav"
    src.write_bytes(_assemble(b"RF64", chunks, frames, 6))
    assert probe(src).container == "RF64"
    dest = tmp_path / "o.wav"
    written = _clean_pass(src, dest)
    layout = read_chunks(dest)
    assert layout.form == b"RF64" and [c.id for c in layout.chunks] == [b"ds64", *(cid for cid, _ in chunks)]
    assert layout.data.size_field == 0xFFFFFFFF
    _, _, samples, table = struct.unpack_from("<QQQI", layout.ds64 or b"")
    assert samples == frames and table == 0
    _check_structure(dest)
    a, b = dict(_payloads(src)), dict(_payloads(dest))
    assert all(a[k] == b[k] for k in (b"fmt ", b"iXML", b"axml"))
    # the 69-byte line would make bext odd: one NUL keeps it even for libsndfile's RF64 reader
    assert b[b"bext"] == a[b"bext"][:-1] + LINE.encode() + b"\0\0"
    got, _ = sf.read(str(dest), dtype="int32", always_2d=True)
    assert sf.info(str(dest)).format == "RF64"
    assert np.array_equal(got.astype(np.int64) >> 8, _expect_ints(written, 24))


def test_rf64_with_odd_chunks_goes_through_ffmpeg(tmp_path: Path) -> None:
    # libsndfile cannot open this RF64 (odd chunks); ffmpeg decodes and encodes, the copier
    # still rebuilds the original's chunks around ffmpeg's data
    src = tmp_path / "in.wav"
    frames = 1501
    _make_rich(src, b"RF64", 2, 24, frames)
    info = probe(src)
    assert info.backend == "ffmpeg"
    dest = tmp_path / "o.wav"
    written = _clean_pass(src, dest)
    layout = read_chunks(dest)
    assert layout.form == b"RF64" and layout.data.size_field == 0xFFFFFFFF
    _, _, samples, table = struct.unpack_from("<QQQI", layout.ds64 or b"")
    assert samples == frames and table == 0
    _assert_carried(src, dest, LINE)  # bext was odd already: no NUL added
    _check_structure(dest)
    assert np.array_equal(_data_ints24(dest, 2), _expect_ints(written, 24))


def test_float_wav_keeps_original_fact_and_drops_libsndfile_peak(tmp_path: Path) -> None:
    frames = 800
    x = (np.random.default_rng(1).standard_normal((frames, 2)) * 0.1).astype("<f4")
    chunks = [(b"fmt ", _fmt(3, 2, 48000, 32)), (b"bext", _bext()), (b"data", x.tobytes())]
    src = tmp_path / "f.wav"
    src.write_bytes(_assemble(b"RIFF", chunks, frames, 8))
    dest = tmp_path / "o.wav"
    _clean_pass(src, dest)
    # libsndfile wrote fact + PEAK + nothing else; float needs fact, the original had none
    assert [c.id for c in read_chunks(dest).chunks] == [b"fmt ", b"fact", b"bext", b"data"]
    assert struct.unpack("<I", dict(_payloads(dest))[b"fact"]) == (frames,)
    got, _ = sf.read(str(dest), dtype="float32", always_2d=True)
    assert np.array_equal(got, x * np.float32(0.5))

    with_fact = tmp_path / "g.wav"
    chunks.insert(1, (b"fact", struct.pack("<I", frames)))
    with_fact.write_bytes(_assemble(b"RIFF", chunks, frames, 8))
    _clean_pass(with_fact, tmp_path / "p.wav")
    _assert_carried(with_fact, tmp_path / "p.wav", LINE)

    # an original PEAK is kept in place but holds libsndfile's values for the new audio
    with_peak = tmp_path / "h.wav"
    chunks.insert(2, (b"PEAK", struct.pack("<II", 1, 0) + struct.pack("<fI", 9.0, 0) * 2))
    with_peak.write_bytes(_assemble(b"RIFF", chunks, frames, 8))
    _clean_pass(with_peak, tmp_path / "q.wav")
    out = dict(_payloads(tmp_path / "q.wav"))
    assert [c.id for c in read_chunks(tmp_path / "q.wav").chunks] == [c for c, _ in chunks]
    peak_ch0 = struct.unpack_from("<f", out[b"PEAK"], 8)[0]
    assert peak_ch0 == pytest.approx(float(np.abs(x[:, 0] * np.float32(0.5)).max()))


def test_ffmpeg_bwf_fixture(tmp_path: Path) -> None:
    src = FIXTURES / "ffmpeg_bwf.wav"
    assert src.stat().st_size < 50_000
    dest = tmp_path / "o.wav"
    written = _clean_pass(src, dest)
    assert [c.id for c in read_chunks(dest).chunks] == [b"fmt ", b"bext", b"LIST", b"data"]
    _assert_carried(src, dest, LINE)
    _check_structure(dest)
    bext = dict(_payloads(dest))[b"bext"]
    assert bext[:16] == b"humclean fixture"
    # ffmpeg ends the history with a NUL: the new line goes before it
    assert bext[BEXT_HISTORY_OFFSET:].endswith(b"T=ffmpeg\r\n" + LINE.encode() + b"\0")
    got, _ = sf.read(str(dest), dtype="int16", always_2d=True)
    assert np.array_equal(got.astype(np.int64), _expect_ints(written, 16))
    with sf.SoundFile(str(dest)) as f:
        assert f.title == "Fixture title"


def test_wav_without_extra_chunks_drops_libsndfile_info(tmp_path: Path) -> None:
    ints = _samples(300, 1, 16)
    src = tmp_path / "plain.wav"
    src.write_bytes(_assemble(b"RIFF", [(b"fmt ", _fmt(1, 1, 8000, 16)), (b"data", _pcm_bytes(ints, 16))], 300, 2))
    _clean_pass(src, tmp_path / "o.wav")
    assert [c.id for c in read_chunks(tmp_path / "o.wav").chunks] == [b"fmt ", b"data"]


def test_flac_override_leaves_riff_path_alone(tmp_path: Path) -> None:
    # no ID3 chunk here: metadata.copy_tags cannot yet map WAV ID3 frames to FLAC (separate bug)
    src = tmp_path / "in.wav"
    ints = _samples(500, 2, 24)
    chunks = [c for c in _rich_chunks(_fmt(1, 2, 48000, 24), _pcm_bytes(ints, 24)) if c[0] != b"ID3 "]
    src.write_bytes(_assemble(b"RIFF", chunks, 500, 6))
    info = probe(src)
    with BlockReader(info) as r, AtomicWriter(tmp_path / "o.flac", info, dither_seed=1, format_override="FLAC") as w:
        for block in r.blocks(4096):
            w.write(block)
        w.commit()
    assert sf.info(str(tmp_path / "o.flac")).format == "FLAC"
    got, _ = sf.read(str(tmp_path / "o.flac"), dtype="int32")
    assert np.array_equal(got >> 8, ints)
    with sf.SoundFile(str(tmp_path / "o.flac")) as f:
        assert f.title == "Tape 12"  # INFO strings still travel through libsndfile for non-WAV


# ----------------------------------------------------------------------------------------------
# RIFF -> RF64 past the 4 GiB limit (threshold lowered; no 4 GiB file is written)


@pytest.mark.parametrize("junk_first", [True, False])
def test_riff_becomes_rf64_past_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, junk_first: bool) -> None:
    src = tmp_path / "in.wav"
    frames = 1200
    ints = _make_rich(src, b"RIFF", 2, 24, frames)
    if not junk_first:
        raw = src.read_bytes()
        src.write_bytes(struct.pack("<4sI4s", b"RIFF", len(raw) - 8 - 36, b"WAVE") + raw[12 + 36 :])
    size_before = src.stat().st_size
    monkeypatch.setattr(riff, "RIFF_SIZE_LIMIT", size_before - 8)  # the grown bext pushes it over
    dest = tmp_path / "o.wav"
    _clean_pass(src, dest, gain=1.0)
    layout = read_chunks(dest)
    assert layout.form == b"RF64" and layout.chunks[0].id == b"ds64"
    src_ids = [c.id for c in read_chunks(src).chunks]
    # the 28-byte JUNK reserve at the front becomes the ds64; otherwise ds64 is inserted
    expect = [b"ds64", *src_ids[1:]] if junk_first else [b"ds64", *src_ids]
    assert [c.id for c in layout.chunks] == expect
    _check_structure(dest)
    _, _, samples, _ = struct.unpack_from("<QQQI", layout.ds64 or b"")
    assert samples == frames
    # read the data chunk ourselves: libsndfile 1.2.2 cannot open RF64 with odd-sized chunks
    assert np.array_equal(_data_ints24(dest, 2), ints)


def test_rebuild_stays_riff_below_limit(tmp_path: Path) -> None:
    src = tmp_path / "in.wav"
    _make_rich(src, b"RIFF", 1, 16, 100)
    rebuild(src, src, tmp_path / "o.wav", LINE, riff_limit=10**9)
    assert read_chunks(tmp_path / "o.wav").form == b"RIFF"


# ----------------------------------------------------------------------------------------------
# malformed input, mismatched formats


def _minimal(tmp_path: Path) -> bytes:
    ints = _samples(100, 1, 16)
    return _assemble(
        b"RIFF", [(b"fmt ", _fmt(1, 1, 8000, 16)), (b"data", _pcm_bytes(ints, 16)), (b"XYZ1", b"abc")], 100, 2
    )


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda b: b + b"\x01\x02\x03", r"^truncated chunk header at byte \d+ \(3 stray bytes\)$"),
        (lambda b: b[:-3], r"^chunk 'XYZ1' at byte \d+ claims 3 bytes, file holds 1$"),
        (lambda b: b"RF64" + b[4:], r"^RF64 file without a ds64 chunk$"),
        (lambda b: b[:8] + b"WAVX" + b[12:], r"^not a RIFF/RF64 WAVE file$"),
        (lambda b: b[:36], r"^no data chunk$"),
        (lambda b: b[:40] + struct.pack("<I", 10**6) + b[44:], r"^chunk 'data' at byte 36 claims 1000000 bytes"),
    ],
)
def test_malformed_raises_one_line(tmp_path: Path, mutate: object, pattern: str) -> None:
    p = tmp_path / "bad.wav"
    p.write_bytes(mutate(_minimal(tmp_path)))  # type: ignore[operator]
    with pytest.raises(DecodeError, match=pattern) as err:
        read_chunks(p)
    assert "\n" not in str(err.value)


def test_missing_final_pad_byte_is_tolerated(tmp_path: Path) -> None:
    p = tmp_path / "nopad.wav"
    p.write_bytes(_minimal(tmp_path)[:-1])
    assert read_chunks(p).chunks[-1].id == b"XYZ1"


def test_truncated_data_is_refused_at_probe_and_clamped_by_rebuild(tmp_path: Path) -> None:
    ints = _samples(1000, 1, 16)
    full = _assemble(b"RIFF", [(b"fmt ", _fmt(1, 1, 8000, 16)), (b"data", _pcm_bytes(ints, 16))], 1000, 2)
    src = tmp_path / "cut.wav"
    src.write_bytes(full[: 44 + 2 * 600])
    assert read_chunks(src, allow_truncated_data=True).data_truncated
    # the pipeline never cleans a damaged file: probe reports it
    with pytest.raises(DecodeError, match="^truncated data"):
        probe(src)
    # rebuild itself, called directly, keeps what is there and writes a consistent size
    new = tmp_path / "new.wav"
    sf.write(str(new), ints[:600, 0].astype(np.int16), 8000, subtype="PCM_16")
    rebuild(src, new, tmp_path / "o.wav", None)
    _check_structure(tmp_path / "o.wav")
    got, _ = sf.read(str(tmp_path / "o.wav"), dtype="int16")
    assert np.array_equal(got, ints[:600, 0])


def test_fmt_mismatch_raises(tmp_path: Path) -> None:
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(str(a), np.zeros(10), 8000, subtype="PCM_16")
    sf.write(str(b), np.zeros(10), 16000, subtype="PCM_16")
    with pytest.raises(EncodeError, match="fmt mismatch"):
        rebuild(a, b, tmp_path / "o.wav", None)


def test_wavex_fmt_with_other_mask_is_kept_byte_exact(tmp_path: Path) -> None:
    # WAVE_FORMAT_EXTENSIBLE, 2 ch, 24 bit, mask 0 (libsndfile would write mask 3)
    guid_pcm = struct.pack("<H", 1) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    fmt = _fmt(0xFFFE, 2, 48000, 24) + struct.pack("<HHI", 22, 24, 0) + guid_pcm
    ints = _samples(400, 2, 24)
    src = tmp_path / "x.wav"
    src.write_bytes(_assemble(b"RIFF", [(b"fmt ", fmt), (b"bext", _bext()), (b"data", _pcm_bytes(ints, 24))], 400, 6))
    _clean_pass(src, tmp_path / "o.wav")
    _assert_carried(src, tmp_path / "o.wav", LINE)  # fmt byte-identical, no libsndfile fact


# ----------------------------------------------------------------------------------------------
# CodingHistory


def test_coding_history_line() -> None:
    assert coding_history_line(48000, 24, 2, "dsp", 50.0213, version="0.1.0") == LINE
    assert coding_history_line(8000, 16, 6, "u,net", float("nan"), version="9") == (
        "A=PCM,F=8000,W=16,M=6ch,T=humclean 9; model=u net; f0=none\r\n"
    )


def test_insert_coding_history_cases() -> None:
    base = _bext(b"")
    assert insert_coding_history(base, "X\r\n") == base + b"X\r\n"
    no_crlf = _bext(b"A=ANALOGUE")
    assert insert_coding_history(no_crlf, "X\r\n") == no_crlf + b"\r\nX\r\n"
    padded = _bext(OLD_HISTORY + bytes(5))
    assert insert_coding_history(padded, "X") == _bext(OLD_HISTORY + b"X\r\n" + bytes(5))
    short = b"\x01" * 100
    assert insert_coding_history(short, "X\r\n") == short


# ----------------------------------------------------------------------------------------------
# through the pipeline


def test_pipeline_appends_coding_history(tmp_path: Path) -> None:
    from humclean.discover import discover
    from humclean.models.oracle import HarmonicHum, OracleEstimator
    from humclean.pipeline import Pipeline, RunOptions
    from humclean.report import Manifest

    rate, n = 16000, 16000 * 2 + 5
    hum = HarmonicHum(50.0, amplitudes=[0.05, 0.02, 0.03], phases=[0.3, 1.1, 2.0])
    rng = np.random.default_rng(3)
    mix = rng.standard_normal((n, 2)) * 0.02 + hum(np.arange(n) / rate)[:, None]
    ints = np.rint(mix * 2**23).astype(np.int64)
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / "a.wav"
    chunks = _rich_chunks(_fmt(1, 2, rate, 24), _pcm_bytes(ints, 24))
    src.write_bytes(_assemble(b"RIFF", chunks, n, 6))
    estimator = OracleEstimator(hum)
    tasks, problems = discover([tmp_path / "in"], tmp_path / "out")
    assert not problems
    opts = RunOptions(segment_seconds=1.0, jobs=1)
    recs = Pipeline(estimator, opts, Manifest(tmp_path / "out" / ".humclean" / "m.jsonl")).run(tasks)
    assert [r.status for r in recs] == ["cleaned"], recs
    dest = tmp_path / "out" / "a.wav"
    history = dict(_payloads(dest))[b"bext"][BEXT_HISTORY_OFFSET:]
    assert history.startswith(OLD_HISTORY)
    line = history[len(OLD_HISTORY) :].decode("ascii")
    assert line.startswith("A=PCM,F=16000,W=24,M=stereo,T=humclean ") and line.endswith("Hz\r\n")
    assert f"model={estimator.card.ident};" in line and "f0=50.0" in line
    _assert_carried(src, dest, line)
    _check_structure(dest)
