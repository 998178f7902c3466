"""Byte-exact IFF chunk carry-over for AIFF and AIFF-C outputs.

libsndfile writes only ``COMM``, ``SSND`` (plus ``FVER``/``PEAK`` for AIFF-C float and its own
string chunks) and drops ``MARK``, ``INST``, ``COMT``, ``APPL``, ``ID3 `` and anything unknown. So
a cleaned AIFF is assembled here from the original file's chunks, in the original order and byte
for byte, with only these changes:

* ``SSND``: the payload of the file libsndfile wrote (its 8-byte offset/blockSize header and our
  quantised samples), copied verbatim; libsndfile's ``COMM`` must describe the same layout as the
  original's (channels, sample frames, bits, rate, sample coding), else :class:`EncodeError`;
* ``PEAK``: where the original has one and libsndfile wrote one of the same size, libsndfile's
  (the peak values describe the new audio);
* the ``FORM`` size field: recomputed.

Everything libsndfile added beyond that is dropped. IFF is big-endian; every chunk is an 8-byte
header (id, u32 size) and a payload padded to an even length. ``SSND`` is never read into memory;
payloads are streamed in 1 MiB blocks. Sizes are payload sizes (without header and pad byte).
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from humclean.errors import DecodeError, EncodeError
from humclean.riff import copy_range

__all__ = [
    "Comm",
    "IffChunk",
    "IffLayout",
    "compatible",
    "extended_to_float",
    "is_aiff",
    "read_iff",
    "rebuild_aiff",
]

_FORM_TYPES = (b"AIFF", b"AIFC")
_MAX_HEADER_CHUNK = 1 << 20
# AIFF-C compression types -> how the sample bytes are laid out (AIFF itself is big-endian PCM)
_CODING = {
    b"NONE": "pcm_be",
    b"twos": "pcm_be",
    b"in24": "pcm_be",
    b"in32": "pcm_be",
    b"fl32": "float",
    b"FL32": "float",
    b"fl64": "float",
    b"FL64": "float",
}


@dataclass(frozen=True)
class IffChunk:
    """One chunk: ``offset`` of its 8-byte header, ``size`` of its payload (without pad byte)."""

    id: bytes
    offset: int
    size: int

    @property
    def payload_offset(self) -> int:
        return self.offset + 8

    @property
    def padded_size(self) -> int:
        return self.size + (self.size & 1)


@dataclass(frozen=True)
class Comm:
    """Fields of a ``COMM`` chunk; ``compression`` is None for plain AIFF."""

    channels: int
    frames: int
    bits: int
    sample_rate: float
    compression: bytes | None

    @property
    def coding(self) -> str:
        """How samples are stored: ``pcm_be``, ``float`` or the raw compression id."""
        if self.compression is None:
            return "pcm_be"
        return _CODING.get(self.compression, self.compression.decode("latin-1"))

    @property
    def frame_bytes(self) -> int:
        return self.channels * ((self.bits + 7) // 8)


@dataclass(frozen=True)
class IffLayout:
    """Parsed outline of an AIFF/AIFF-C file; nothing of ``SSND``'s samples is read."""

    path: Path
    form_type: bytes
    file_size: int
    chunks: tuple[IffChunk, ...]
    comm: Comm
    ssnd: IffChunk

    def find(self, chunk_id: bytes) -> IffChunk | None:
        return next((c for c in self.chunks if c.id == chunk_id), None)


# ----------------------------------------------------------------------------------------------
# parsing


def is_aiff(path: Path) -> bool:
    """True when ``path`` starts like an IFF ``FORM`` of type AIFF/AIFC (cheap, 12 bytes)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return len(head) == 12 and head[:4] == b"FORM" and head[8:12] in _FORM_TYPES


def _name(cid: bytes) -> str:
    return cid.decode("latin-1").encode("unicode_escape").decode("ascii")


def extended_to_float(raw: bytes) -> float:
    """IEEE 754 80-bit extended (big-endian, explicit integer bit) to float."""
    (se, mant) = struct.unpack(">HQ", raw)
    exp = se & 0x7FFF
    if exp == 0 and mant == 0:
        return 0.0
    if exp == 0x7FFF:
        return math.inf
    value = math.ldexp(mant, exp - 16383 - 63)
    return -value if se & 0x8000 else value


def _parse_comm(payload: bytes, form_type: bytes) -> Comm:
    if len(payload) < 18:
        raise DecodeError(f"COMM chunk too short ({len(payload)} bytes)")
    channels, frames, bits = struct.unpack_from(">hIh", payload)
    rate = extended_to_float(payload[8:18])
    compression = None
    if form_type == b"AIFC":
        if len(payload) < 22:
            raise DecodeError(f"AIFC COMM chunk too short ({len(payload)} bytes)")
        compression = payload[18:22]
    return Comm(channels, frames, bits, rate, compression)


def read_iff(path: Path) -> IffLayout:
    """Parse the chunk list of an AIFF/AIFF-C file without reading ``SSND``'s samples.

    Chunks are read up to the end of the file (not the FORM size field). A missing pad byte after
    the very last chunk is tolerated. Raises :class:`DecodeError` (one line) for a file that is not
    FORM AIFF/AIFC, a truncated chunk header, a chunk running past the end of the file, and a
    missing or repeated ``COMM``/``SSND``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _parse(fh, path, os.fstat(fh.fileno()).st_size)
    except OSError as exc:
        raise DecodeError(f"cannot read {path.name}: {exc.strerror or exc}") from None


def _parse(fh: BinaryIO, path: Path, file_size: int) -> IffLayout:
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"FORM" or head[8:12] not in _FORM_TYPES:
        raise DecodeError("not an AIFF/AIFF-C file")
    form_type = head[8:12]
    chunks: list[IffChunk] = []
    comm: Comm | None = None
    ssnd: IffChunk | None = None
    pos = 12
    while pos < file_size:
        if pos + 8 > file_size:
            raise DecodeError(f"truncated chunk header at byte {pos} ({file_size - pos} stray bytes)")
        fh.seek(pos)
        cid, size = struct.unpack(">4sI", fh.read(8))
        if pos + 8 + size > file_size:
            raise DecodeError(
                f"chunk {_name(cid)!r} at byte {pos} claims {size} bytes, file holds {file_size - pos - 8}"
            )
        chunk = IffChunk(cid, pos, size)
        if cid == b"COMM":
            if comm is not None:
                raise DecodeError("more than one COMM chunk")
            if size > _MAX_HEADER_CHUNK:
                raise DecodeError(f"COMM chunk implausibly large ({size} bytes)")
            comm = _parse_comm(fh.read(size), form_type)
        elif cid == b"SSND":
            if ssnd is not None:
                raise DecodeError("more than one SSND chunk")
            if size < 8:
                raise DecodeError(f"SSND chunk too short ({size} bytes)")
            ssnd = chunk
        chunks.append(chunk)
        pos += 8 + chunk.padded_size
    if comm is None:
        raise DecodeError("no COMM chunk")
    if ssnd is None:
        raise DecodeError("no SSND chunk")
    return IffLayout(path, form_type, file_size, tuple(chunks), comm, ssnd)


def _ssnd_sample_bytes(path: Path, layout: IffLayout) -> int:
    """Bytes of sample data in SSND (payload minus the 8-byte header and the ``offset`` skip)."""
    with open(path, "rb") as fh:
        fh.seek(layout.ssnd.payload_offset)
        offset, _block = struct.unpack(">II", fh.read(8))
    return layout.ssnd.size - 8 - offset


def compatible(path: Path, channels: int, frames: int, bits: int | None, sample_rate: int) -> bool:
    """True when ``path`` parses and libsndfile's AIFF output for this layout can take its COMM.

    For callers deciding whether to use :func:`rebuild_aiff`: the original must hold all its
    samples (no truncated SSND), big-endian PCM or float coding, and the given layout.
    """
    try:
        layout = read_iff(path)
        sample_bytes = _ssnd_sample_bytes(path, layout)
    except (DecodeError, OSError, struct.error):
        return False
    c = layout.comm
    return (
        c.coding in ("pcm_be", "float")
        and (c.channels, c.frames, c.bits, c.sample_rate) == (channels, frames, bits, float(sample_rate))
        and sample_bytes >= frames * c.frame_bytes
    )


# ----------------------------------------------------------------------------------------------
# rebuilding


def _check_comm(a: Comm, b: Comm) -> None:
    got = (a.channels, a.frames, a.bits, a.sample_rate, a.coding)
    new = (b.channels, b.frames, b.bits, b.sample_rate, b.coding)
    if got != new:
        raise EncodeError(
            "COMM mismatch between original and encoded AIFF "
            f"({a.channels}/{b.channels} ch, {a.frames}/{b.frames} frames, {a.bits}/{b.bits} bit, "
            f"{a.sample_rate:g}/{b.sample_rate:g} Hz, {a.coding}/{b.coding})"
        )


@dataclass
class _Out:
    id: bytes
    size: int
    src: Path
    src_offset: int


def rebuild_aiff(original: Path, new_audio: Path, dest: Path) -> list[str]:
    """Write ``dest``: ``original``'s chunks in order, with ``new_audio``'s ``SSND`` payload.

    ``new_audio`` is an AIFF/AIFF-C libsndfile wrote with the same layout (checked against the
    original's COMM). Returns the ids of the carried-over chunks other than COMM and SSND, in order.
    Raises :class:`DecodeError` when either file cannot be parsed, :class:`EncodeError` when the
    layouts disagree or ``dest`` cannot be written. ``dest`` is overwritten; callers pass a temp.
    """
    original, new_audio, dest = Path(original), Path(new_audio), Path(dest)
    src = read_iff(original)
    new = read_iff(new_audio)
    _check_comm(src.comm, new.comm)
    # libsndfile 1.2.2 counts the pad byte of odd sample data in the SSND size (24-bit mono with
    # an odd frame count gives an even size one too large); the carried payload stops at the
    # last sample, so the pad byte is a real pad byte again
    needed = new.comm.frames * new.comm.frame_bytes
    extra = _ssnd_sample_bytes(new_audio, new) - needed
    if extra not in (0, 1):
        raise EncodeError(f"encoded SSND does not hold {new.comm.frames} frames of {new.comm.frame_bytes} bytes")
    ssnd_size = new.ssnd.size - extra
    new_peak = new.find(b"PEAK")

    plan: list[_Out] = []
    carried: list[str] = []
    for c in src.chunks:
        if c.id == b"SSND":
            plan.append(_Out(c.id, ssnd_size, new_audio, new.ssnd.payload_offset))
            continue
        if c.id != b"COMM":
            carried.append(c.id.decode("latin-1").strip())
        if c.id == b"PEAK" and new_peak is not None and new_peak.size == c.size:
            plan.append(_Out(c.id, c.size, new_audio, new_peak.payload_offset))
        else:
            plan.append(_Out(c.id, c.size, original, c.payload_offset))

    form_size = 4 + sum(8 + o.size + (o.size & 1) for o in plan)
    if form_size > 0xFFFFFFFF:
        raise EncodeError(f"AIFF output would be {form_size} bytes, over the 4 GiB IFF limit")
    try:
        with open(dest, "wb") as out:
            out.write(struct.pack(">4sI4s", b"FORM", form_size, src.form_type))
            for o in plan:
                out.write(struct.pack(">4sI", o.id, o.size))
                copy_range(o.src, o.src_offset, o.size, out)
                if o.size & 1:
                    out.write(b"\x00")
            out.flush()
    except OSError as exc:
        with contextlib.suppress(OSError):
            dest.unlink()
        raise EncodeError(f"writing {dest.name}: {exc.strerror or exc}") from None
    return carried
