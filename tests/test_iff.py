"""Byte-exact IFF chunk carry-over (humclean.iff) for AIFF/AIFF-C through AtomicWriter.

Fixtures are assembled by hand with struct (big-endian) so every chunk's bytes are known.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from humclean.audio_io import AtomicWriter, BlockReader, probe
from humclean.errors import DecodeError, EncodeError
from humclean.iff import extended_to_float, read_iff, rebuild_aiff


def _extended(value: float) -> bytes:
    """80-bit IEEE extended, big-endian, explicit integer bit (positive finite values)."""
    if value == 0:
        return bytes(10)
    mant, exp = math.frexp(value)  # value = mant * 2**exp, 0.5 <= mant < 1
    return struct.pack(">HQ", exp - 1 + 16383, int(mant * 2**64))


def _comm(channels: int, frames: int, bits: int, rate: int, compression: bytes | None = None) -> bytes:
    body = struct.pack(">hIh", channels, frames, bits) + _extended(rate)
    if compression is not None:
        name = b"not compressed"
        body += compression + bytes([len(name)]) + name + b"\0" * ((len(name) + 1) & 1)
    return body


def _id3() -> bytes:
    text = b"\x00ID3 title"
    frame = b"TIT2" + struct.pack(">I", len(text)) + b"\x00\x00" + text
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame


def _samples(frames: int, channels: int, bits: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hi = 2 ** (bits - 1) - 1
    return rng.integers(-hi // 4, hi // 4, size=(frames, channels))


def _pcm_be(ints: np.ndarray, bits: int) -> bytes:
    raw = ints.astype(">i4").reshape(-1).view(np.uint8).reshape(-1, 4)
    return raw[:, 4 - bits // 8 :].tobytes()


def _from_pcm_be(raw: bytes, bits: int, channels: int) -> np.ndarray:
    b = np.frombuffer(raw, np.uint8).reshape(-1, bits // 8).astype(np.int64)
    ints = np.zeros(len(b), np.int64)
    for i in range(bits // 8):
        ints = ints << 8 | b[:, i]
    return np.where(ints >= 2 ** (bits - 1), ints - 2**bits, ints).reshape(-1, channels)


def _rich_chunks(
    form_type: bytes, channels: int, bits: int, frames: int, ints: np.ndarray
) -> list[tuple[bytes, bytes]]:
    mark = (
        struct.pack(">H", 2) + struct.pack(">hI", 1, 0) + b"\x05start" + struct.pack(">hI", 2, frames // 2) + b"\x03mid"
    )
    comt = struct.pack(">H", 1) + struct.pack(">IhH", 3_000_000_000, 1, 5) + b"hum!!" + b"\0"
    chunks: list[tuple[bytes, bytes]] = []
    if form_type == b"AIFC":
        chunks.append((b"FVER", struct.pack(">I", 0xA2805140)))
    chunks += [
        (b"COMM", _comm(channels, frames, bits, 48000, b"NONE" if form_type == b"AIFC" else None)),
        (b"MARK", mark),
        (b"COMT", comt),
        (b"NAME", b"Tape 12, side A"),  # 15 bytes: odd, padded
        (b"INST", bytes([60, 0, 0, 127, 1, 127]) + struct.pack(">h", 0) + struct.pack(">hhh", 1, 1, 2) * 2),
        (b"(c) ", b"1973 Archive"),
        (b"ANNO", b"transfer from 1/4 inch, odd"),
        (b"APPL", b"hcln" + bytes(range(9))),
        (b"XYZ1", b"unknown, odd"),  # 13 bytes
        (b"SSND", struct.pack(">II", 0, 0) + _pcm_be(ints, bits)),
        (b"ID3 ", _id3()),
        (b"AUTH", b"A. Nonymous"),
    ]
    return chunks


def _assemble(form_type: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(struct.pack(">4sI", cid, len(p)) + p + b"\0" * (len(p) & 1) for cid, p in chunks)
    return struct.pack(">4sI4s", b"FORM", 4 + len(body), form_type) + body


def _make(path: Path, form_type: bytes, channels: int, bits: int, frames: int) -> np.ndarray:
    ints = _samples(frames, channels, bits)
    path.write_bytes(_assemble(form_type, _rich_chunks(form_type, channels, bits, frames, ints)))
    return ints


def _payloads(path: Path) -> list[tuple[bytes, bytes]]:
    layout = read_iff(path)
    raw = path.read_bytes()
    return [(c.id, raw[c.payload_offset : c.payload_offset + c.size]) for c in layout.chunks]


def _check_structure(path: Path) -> None:
    raw = path.read_bytes()
    layout = read_iff(path)
    end = 12
    for c in layout.chunks:
        assert c.offset == end
        if c.size & 1:
            assert raw[c.payload_offset + c.size] == 0
        end = c.payload_offset + c.padded_size
    assert end == len(raw)
    assert struct.unpack_from(">I", raw, 4)[0] == len(raw) - 8


def _clean_pass(src: Path, dest: Path, gain: float = 0.5) -> np.ndarray:
    info = probe(src)
    written = []
    with BlockReader(info) as reader, AtomicWriter(dest, info, dither_seed=7) as w:
        for block in reader.blocks(777):
            out = block * gain
            written.append(out)
            w.write(out)
        w.commit()
    return np.concatenate(written)


def _expect_ints(written: np.ndarray, bits: int) -> np.ndarray:
    return np.clip(np.rint(written * 2 ** (bits - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).astype(np.int64)


def test_extended_round_trip() -> None:
    for rate in (8000, 44100, 48000, 96000, 192000, 22050.5):
        assert extended_to_float(_extended(rate)) == rate
    assert _extended(44100) == bytes.fromhex("400eac44000000000000")


@pytest.mark.parametrize(
    ("form_type", "channels", "bits", "frames"),
    [(b"AIFF", 2, 16, 3001), (b"AIFF", 1, 24, 1001), (b"AIFC", 2, 16, 2000), (b"AIFC", 1, 24, 999)],
)
def test_round_trip_keeps_every_chunk(tmp_path: Path, form_type: bytes, channels: int, bits: int, frames: int) -> None:
    src = tmp_path / "in.aif"
    ints = _make(src, form_type, channels, bits, frames)
    info = probe(src)
    assert info.container == "AIFF" and info.frames == frames
    dest = tmp_path / "out" / "in.aif"
    written = _clean_pass(src, dest)

    a, b = _payloads(src), _payloads(dest)
    assert [cid for cid, _ in a] == [cid for cid, _ in b]
    for (cid, pa), (_, pb) in zip(a, b, strict=True):
        if cid != b"SSND":
            assert pa == pb, cid
    assert dest.read_bytes()[8:12] == form_type
    _check_structure(dest)

    expect = _expect_ints(written, bits)
    assert not np.array_equal(expect, ints)  # the audio did change
    ssnd = dict(b)[b"SSND"]
    assert ssnd[:8] == bytes(8)
    assert np.array_equal(_from_pcm_be(ssnd[8:], bits, channels), expect)
    got, rate = sf.read(str(dest), dtype="int32", always_2d=True)
    assert rate == 48000 and got.shape == (frames, channels)
    assert np.array_equal(got.astype(np.int64) >> (32 - bits), expect)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["in.aif"]  # no temp left behind

    import mutagen.aiff

    tags = mutagen.aiff.AIFF(str(dest)).tags
    assert tags is not None and str(tags["TIT2"]) == "ID3 title"


@pytest.mark.parametrize(("form_type", "channels", "bits", "frames"), [(b"AIFF", 2, 16, 1500), (b"AIFC", 1, 24, 1001)])
def test_untouched_audio_gives_identical_bytes(
    tmp_path: Path, form_type: bytes, channels: int, bits: int, frames: int
) -> None:
    """Odd sample data (24-bit mono, odd frames): libsndfile counts the pad in SSND's size; we don't."""
    src = tmp_path / "in.aiff"
    _make(src, form_type, channels, bits, frames)
    dest = tmp_path / "out.aiff"
    _clean_pass(src, dest, gain=1.0)
    assert dest.read_bytes() == src.read_bytes()


def test_tags_copied_lists_carried_chunks(tmp_path: Path) -> None:
    src = tmp_path / "in.aiff"
    _make(src, b"AIFF", 1, 16, 100)
    info = probe(src)
    with BlockReader(info) as r, AtomicWriter(tmp_path / "o.aiff", info, dither_seed=1) as w:
        for block in r.blocks(64):
            w.write(block)
        w.commit()
    assert w.tags_copied == ["MARK", "COMT", "NAME", "INST", "(c)", "ANNO", "APPL", "XYZ1", "ID3", "AUTH"]


def test_flac_override_leaves_iff_path_alone(tmp_path: Path) -> None:
    src = tmp_path / "in.aiff"
    _make(src, b"AIFF", 1, 16, 100)
    info = probe(src)
    w = AtomicWriter(tmp_path / "o.flac", info, dither_seed=1, format_override="FLAC")
    assert not w._iff_copy
    w.abort()
    w2 = AtomicWriter(tmp_path / "o.aiff", info, dither_seed=1)
    assert w2._iff_copy
    w2.abort()


def test_little_endian_aifc_falls_back(tmp_path: Path) -> None:
    """'sowt' (little-endian) AIFF-C: libsndfile writes big-endian AIFF, so no chunk carry-over."""
    ints = _samples(200, 1, 16)
    raw = ints.astype("<i2").tobytes()
    chunks = [
        (b"FVER", struct.pack(">I", 0xA2805140)),
        (b"COMM", _comm(1, 200, 16, 48000, b"sowt")),
        (b"SSND", struct.pack(">II", 0, 0) + raw),
    ]
    src = tmp_path / "in.aifc"
    src.write_bytes(_assemble(b"AIFC", chunks))
    info = probe(src)
    w = AtomicWriter(tmp_path / "o.aifc", info, dither_seed=1)
    assert not w._iff_copy
    w.abort()
    # rebuilding anyway refuses: the codings disagree
    new = tmp_path / "new.aiff"
    sf.write(str(new), ints.astype(np.int16), 48000, subtype="PCM_16", format="AIFF")
    with pytest.raises(EncodeError, match="COMM mismatch"):
        rebuild_aiff(src, new, tmp_path / "x.aiff")


def test_comm_mismatch_raises(tmp_path: Path) -> None:
    src = tmp_path / "in.aiff"
    _make(src, b"AIFF", 2, 16, 300)
    new = tmp_path / "new.aiff"
    sf.write(str(new), np.zeros((300, 2)), 44100, subtype="PCM_16", format="AIFF")
    with pytest.raises(EncodeError, match="COMM mismatch"):
        rebuild_aiff(src, new, tmp_path / "x.aiff")
    assert not (tmp_path / "x.aiff").exists()


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda raw: b"RIFF" + raw[4:], "not an AIFF"),
        (lambda raw: raw[:8] + b"WAVE" + raw[12:], "not an AIFF"),
        (lambda raw: raw + b"\x01\x02\x03", "truncated chunk header"),
        (lambda raw: raw[: raw.index(b"SSND") + 20], "claims"),
        (lambda raw: raw.replace(b"COMM", b"CXMM"), "no COMM"),
        (lambda raw: raw.replace(b"SSND", b"SXND"), "no SSND"),
    ],
)
def test_malformed_raises_one_line(tmp_path: Path, mutate: object, pattern: str) -> None:
    src = tmp_path / "in.aiff"
    _make(src, b"AIFF", 1, 16, 50)
    bad = tmp_path / "bad.aiff"
    bad.write_bytes(mutate(src.read_bytes()))  # type: ignore[operator]
    with pytest.raises(DecodeError, match=pattern) as exc:
        read_iff(bad)
    assert "\n" not in str(exc.value)


def test_missing_final_pad_byte_is_tolerated(tmp_path: Path) -> None:
    chunks = [(b"COMM", _comm(1, 10, 16, 48000)), (b"SSND", bytes(8) + bytes(20)), (b"NAME", b"odd")]
    raw = _assemble(b"AIFF", chunks)[:-1]
    src = tmp_path / "in.aiff"
    src.write_bytes(raw)
    assert [c.id for c in read_iff(src).chunks] == [b"COMM", b"SSND", b"NAME"]
