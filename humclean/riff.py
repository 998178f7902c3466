"""Byte-exact RIFF/WAVE chunk carry-over for WAV, BWF and RF64/BW64 outputs.

libsndfile writes only the chunks it knows (``fmt ``, ``data``, ``fact``, ``PEAK``, ``LIST``/INFO)
and drops the rest (``bext``, ``iXML``, ``cue ``, ``axml``, ``chna``, ...); ffmpeg rewrites ``bext``
into INFO; mutagen only knows ID3 inside WAV. So a cleaned WAV is assembled here from the original
file's chunks, in the original order and byte for byte, with only these changes:

* ``data``: the payload of the file libsndfile wrote (our quantised samples), copied verbatim;
* ``bext``: one EBU R98 CodingHistory line inserted after the existing history text (in RF64
  outputs plus one NUL where the line would make an even ``bext`` odd: libsndfile 1.2.2's RF64
  reader skips no pad byte and cannot open a file with an odd-sized chunk);
* RIFF/RF64 size fields and the ``ds64`` sizes: recomputed;
* ``PEAK``: where the original has one and libsndfile wrote one of the same size, libsndfile's
  (the peak values describe the new audio, like the size fields);
* ``fact``: the original's if it has one; else libsndfile's where the codec is not PCM (float),
  which the WAV spec requires;
* a RIFF file that would pass 4 GiB becomes RF64 (a leading 28-byte ``JUNK`` reserve becomes the
  ``ds64``, as EBU Tech 3306 intends; otherwise a ``ds64`` is inserted first).

Everything else libsndfile added (its ``LIST``/INFO, ``PEAK``/``fact`` the original lacked) is
dropped, so the output has the original's chunk set. Chunk payloads are streamed in blocks; only
``fmt ``, ``ds64``, ``bext``, ``fact`` and ``PEAK`` are held in memory.

Offsets and sizes are in bytes. Sizes are payload sizes (without the 8-byte header and the pad
byte that follows an odd-sized payload).
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from humclean.errors import DecodeError, EncodeError

__all__ = [
    "Chunk",
    "RiffLayout",
    "BEXT_HISTORY_OFFSET",
    "RIFF_SIZE_LIMIT",
    "coding_history_line",
    "insert_coding_history",
    "is_riff_wave",
    "read_chunks",
    "rebuild",
]

#: CodingHistory starts here in a ``bext`` payload (EBU Tech 3285 v0/v1/v2 all put it at 602).
BEXT_HISTORY_OFFSET = 602
#: Largest value a 32-bit RIFF size field can hold.
RIFF_SIZE_LIMIT = 0xFFFFFFFF
_FORMS = (b"RIFF", b"RF64", b"BW64")
_U32_MAX = 0xFFFFFFFF
_COPY_BLOCK = 1 << 20
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_WAVE_FORMAT_PCM = 0x0001
_MAX_HEADER_CHUNK = 1 << 20
_JUNK_DS64_SIZE = 28  # riffSize, dataSize, sampleCount (u64 each) + tableLength (u32)


@dataclass(frozen=True)
class Chunk:
    """One chunk of a RIFF/WAVE file.

    ``offset``: byte position of the 8-byte header; ``size``: payload bytes (the 64-bit size from
    ``ds64`` where the 32-bit field holds 0xFFFFFFFF); ``size_field``: the raw 32-bit field.
    """

    id: bytes
    offset: int
    size: int
    size_field: int

    @property
    def payload_offset(self) -> int:
        return self.offset + 8

    @property
    def padded_size(self) -> int:
        """Payload plus the pad byte an odd size needs (word alignment)."""
        return self.size + (self.size & 1)


@dataclass(frozen=True)
class RiffLayout:
    """Parsed outline of a RIFF/WAVE, RF64/WAVE or BW64/WAVE file; nothing of ``data`` is read.

    ``data_truncated``: the data chunk claimed more bytes than the file holds and ``data.size``
    was clamped to what is present (only with ``allow_truncated_data``; libsndfile does the same).
    """

    path: Path
    form: bytes
    file_size: int
    chunks: tuple[Chunk, ...]
    fmt: bytes
    data: Chunk
    ds64: bytes | None = None
    data_truncated: bool = False

    @property
    def data_offset(self) -> int:
        return self.data.payload_offset

    @property
    def data_size(self) -> int:
        return self.data.size

    def find(self, chunk_id: bytes) -> Chunk | None:
        """First chunk with ``chunk_id``, or None."""
        return next((c for c in self.chunks if c.id == chunk_id), None)


# ----------------------------------------------------------------------------------------------
# parsing


def is_riff_wave(path: Path) -> bool:
    """True when ``path`` starts like a RIFF/RF64/BW64 WAVE file (cheap, 12 bytes)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return len(head) == 12 and head[:4] in _FORMS and head[8:12] == b"WAVE"


def _chunk_name(cid: bytes) -> str:
    return cid.decode("latin-1").encode("unicode_escape").decode("ascii")


def read_chunks(path: Path, *, allow_truncated_data: bool = False) -> RiffLayout:
    """Parse the chunk list of a WAVE file without reading ``data``.

    Chunks are read up to the end of the file (not the header's size field, which some writers
    get wrong). A missing pad byte after the very last chunk is tolerated. Raises
    :class:`DecodeError` (one line) for a file that is not RIFF/RF64/BW64 WAVE, a truncated
    chunk header, a chunk running past the end of the file (except ``data`` as the last chunk
    with ``allow_truncated_data``), RF64 without ``ds64``, and a missing or repeated
    ``fmt ``/``data``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _parse(fh, path, os.fstat(fh.fileno()).st_size, allow_truncated_data)
    except OSError as exc:
        raise DecodeError(f"cannot read {path.name}: {exc.strerror or exc}") from None


def _parse(fh: BinaryIO, path: Path, file_size: int, allow_truncated_data: bool) -> RiffLayout:
    head = fh.read(12)
    if len(head) < 12 or head[:4] not in _FORMS or head[8:12] != b"WAVE":
        raise DecodeError("not a RIFF/RF64 WAVE file")
    form = head[:4]
    rf64 = form != b"RIFF"
    ds64: bytes | None = None
    ds64_data_size: int | None = None
    table: list[tuple[bytes, int]] = []  # ds64 table: 64-bit sizes of other big chunks, in order
    chunks: list[Chunk] = []
    fmt: bytes | None = None
    data: Chunk | None = None
    truncated = False
    pos = 12
    while pos < file_size:
        if pos + 8 > file_size:
            raise DecodeError(f"truncated chunk header at byte {pos} ({file_size - pos} stray bytes)")
        fh.seek(pos)
        cid, field = struct.unpack("<4sI", fh.read(8))
        size = field
        if rf64 and field == _U32_MAX and cid != b"ds64":
            if cid == b"data":
                if ds64_data_size is None:
                    raise DecodeError("RF64 data size 0xFFFFFFFF without a ds64 chunk")
                size = ds64_data_size
            else:
                hit = next((i for i, (tid, _) in enumerate(table) if tid == cid), None)
                if hit is None:
                    raise DecodeError(f"RF64 chunk {_chunk_name(cid)!r} size 0xFFFFFFFF not in ds64 table")
                size = table.pop(hit)[1]
        end = pos + 8 + size
        if end > file_size:
            if cid == b"data" and allow_truncated_data:
                size, truncated = file_size - pos - 8, True
            else:
                raise DecodeError(
                    f"chunk {_chunk_name(cid)!r} at byte {pos} claims {size} bytes, file holds {file_size - pos - 8}"
                )
        chunk = Chunk(cid, pos, size, field)
        if cid in (b"fmt ", b"ds64") and size > _MAX_HEADER_CHUNK:
            # both are read into memory; real ones are tens of bytes
            raise DecodeError(f"chunk {_chunk_name(cid)!r} implausibly large ({size} bytes)")
        if cid == b"ds64":
            if not rf64:
                raise DecodeError("ds64 chunk in a RIFF (not RF64) file")
            if ds64 is not None or chunks:
                raise DecodeError("ds64 chunk is not the first chunk")
            if size < _JUNK_DS64_SIZE:
                raise DecodeError(f"ds64 chunk too short ({size} bytes)")
            ds64 = fh.read(size)
            _riff64, ds64_data_size, _samples, n_table = struct.unpack_from("<QQQI", ds64)
            if _JUNK_DS64_SIZE + 12 * n_table > size:
                raise DecodeError(f"ds64 table of {n_table} entries does not fit in {size} bytes")
            for i in range(n_table):
                tid, tsize = struct.unpack_from("<4sQ", ds64, _JUNK_DS64_SIZE + 12 * i)
                table.append((tid, tsize))
        elif cid == b"fmt ":
            if fmt is not None:
                raise DecodeError("more than one fmt chunk")
            fmt = fh.read(size)
        elif cid == b"data":
            if data is not None:
                raise DecodeError("more than one data chunk")
            data = chunk
        chunks.append(chunk)
        pos = end + (size & 1)
        if truncated:
            break
    if rf64 and ds64 is None:
        raise DecodeError(f"{form.decode()} file without a ds64 chunk")
    if fmt is None:
        raise DecodeError("no fmt chunk")
    if len(fmt) < 16:
        raise DecodeError(f"fmt chunk too short ({len(fmt)} bytes)")
    if data is None:
        raise DecodeError("no data chunk")
    return RiffLayout(path, form, file_size, tuple(chunks), fmt, data, ds64, truncated)


# ----------------------------------------------------------------------------------------------
# fmt


@dataclass(frozen=True)
class _Fmt:
    codec: int  # format tag, resolved through WAVE_FORMAT_EXTENSIBLE's sub-format GUID
    channels: int
    sample_rate: int
    block_align: int
    bits: int


def _fmt_fields(fmt: bytes) -> _Fmt:
    tag, channels, rate, _byte_rate, align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 40:
        # the sub-format GUID starts with the 16-bit format tag it stands for
        (tag,) = struct.unpack_from("<H", fmt, 24)
    return _Fmt(tag, channels, rate, align, bits)


def _check_fmt(original: bytes, written: bytes) -> _Fmt:
    """The original's fmt must describe the data libsndfile wrote; return its fields.

    Byte equality is too strict: libsndfile writes WAVE_FORMAT_EXTENSIBLE for every RF64 and its
    own channel mask, where the original may hold a plain 16-byte PCM fmt or another mask. What
    must agree is how the data bytes are laid out: codec, channels, rate, block align, container
    bits. The original's fmt is then kept byte for byte.
    """
    a, b = _fmt_fields(original), _fmt_fields(written)
    if a != b:
        raise EncodeError(
            "fmt mismatch between original and encoded WAV "
            f"(codec {a.codec:#06x}/{b.codec:#06x}, {a.channels}/{b.channels} ch, "
            f"{a.sample_rate}/{b.sample_rate} Hz, align {a.block_align}/{b.block_align}, "
            f"{a.bits}/{b.bits} bit)"
        )
    if a.block_align <= 0:
        raise EncodeError(f"fmt block align {a.block_align}")
    return a


# ----------------------------------------------------------------------------------------------
# CodingHistory


def coding_history_line(
    sample_rate: int,
    bits: int | None,
    channels: int,
    model_ident: str,
    f0_hz: float | None,
    *,
    version: str | None = None,
) -> str:
    """One EBU R98 CodingHistory line describing this pass, CR/LF terminated.

    e.g. ``A=PCM,F=48000,W=24,M=stereo,T=humclean 0.1.0; model=dsp; f0=50.02Hz\\r\\n``.
    ``sample_rate`` in Hz, ``bits`` per sample (None: left out), ``f0_hz`` the detected mains
    fundamental in Hz (None or NaN: ``f0=none``). R98 defines M= only for mono/stereo; more
    channels are written as ``M=<n>ch``. Commas and line breaks are removed from the free text
    because R98 separates fields with commas and lines with CR/LF.
    """
    if version is None:
        from humclean import __version__ as version
    mode = {1: "mono", 2: "stereo"}.get(channels, f"{channels}ch")
    f0 = f"{f0_hz:.2f}Hz" if f0_hz is not None and f0_hz == f0_hz else "none"
    text = f"humclean {version}; model={model_ident}; f0={f0}"
    text = re.sub(r"[,\r\n\x00]", " ", text).encode("ascii", "replace").decode("ascii")
    fields = ["A=PCM", f"F={int(sample_rate)}"]
    if bits:
        fields.append(f"W={int(bits)}")
    fields += [f"M={mode}", f"T={text}"]
    return ",".join(fields) + "\r\n"


def insert_coding_history(bext: bytes, line: str | bytes) -> bytes:
    """``bext`` payload with ``line`` added to the end of its CodingHistory text.

    The line goes right after the last non-NUL byte of the history (never behind NUL padding,
    where readers that stop at the first NUL would not see it); the padding and every other byte
    stay as they were, so the result is the original with one run of bytes inserted. A history
    whose last line lacks its CR/LF gets one first. A payload shorter than 602 bytes has no
    CodingHistory field and is returned unchanged.
    """
    raw = line.encode("ascii") if isinstance(line, str) else bytes(line)
    if len(bext) < BEXT_HISTORY_OFFSET or not raw:
        return bext
    if not raw.endswith(b"\r\n"):
        raw = raw.rstrip(b"\r\n") + b"\r\n"
    history = bext[BEXT_HISTORY_OFFSET:]
    text_end = BEXT_HISTORY_OFFSET + len(history.rstrip(b"\x00"))
    if text_end > BEXT_HISTORY_OFFSET and not bext[:text_end].endswith(b"\n"):
        raw = b"\r\n" + raw
    return bext[:text_end] + raw + bext[text_end:]


# ----------------------------------------------------------------------------------------------
# rebuilding


@dataclass
class _Out:
    """One chunk of the output: payload from ``src`` (file range) or from ``blob``."""

    id: bytes
    size: int
    src: Path | None = None
    src_offset: int = 0
    blob: bytes | None = None
    size_field: int | None = None  # None: the real size (or 0xFFFFFFFF when it does not fit)


def _read_payload(path: Path, chunk: Chunk) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(chunk.payload_offset)
        payload = fh.read(chunk.size)
    if len(payload) != chunk.size:
        raise DecodeError(f"short read of chunk {_chunk_name(chunk.id)!r} in {path.name}")
    return payload


def rebuild(
    original: Path,
    new_audio: Path,
    dest: Path,
    bext_coding_history_line: str | None,
    *,
    riff_limit: int | None = None,
) -> list[str]:
    """Write ``dest``: ``original``'s chunks in order, with ``new_audio``'s ``data`` payload.

    ``new_audio`` is a WAVE file libsndfile wrote with the same sample layout (checked, see
    :func:`_check_fmt`). ``bext_coding_history_line`` is appended to ``bext``'s CodingHistory when
    both exist. ``riff_limit``: the largest RIFF size field allowed before switching to RF64
    (default :data:`RIFF_SIZE_LIMIT`, read at call time so tests can lower it). Returns the
    ids of the carried-over non-audio chunks, in order.

    Raises :class:`DecodeError` when either file cannot be parsed, :class:`EncodeError` when the
    formats disagree or ``dest`` cannot be written. ``dest`` is overwritten; callers pass a temp.
    """
    original, new_audio, dest = Path(original), Path(new_audio), Path(dest)
    limit = RIFF_SIZE_LIMIT if riff_limit is None else riff_limit
    # libsndfile reads a data chunk cut short by the end of the file as far as it goes, so the
    # audio we carry is that much; the output then states the true size.
    src = read_chunks(original, allow_truncated_data=True)
    new = read_chunks(new_audio)
    layout = _check_fmt(src.fmt, new.fmt)
    if new.data.size % layout.block_align:
        raise EncodeError(f"encoded data ({new.data.size} bytes) is not whole frames of {layout.block_align}")
    new_fact = new.find(b"fact")
    new_peak = new.find(b"PEAK")
    has_fact = src.find(b"fact") is not None

    plan: list[_Out] = []
    carried: list[str] = []
    for c in src.chunks:
        if c.id == b"ds64":
            plan.append(_Out(b"ds64", c.size, blob=src.ds64))  # sizes filled in below
            continue
        if c.id == b"data":
            plan.append(_Out(b"data", new.data.size, src=new_audio, src_offset=new.data.payload_offset))
            continue
        if c.id != b"fmt ":
            carried.append(c.id.decode("latin-1").strip())
        if c.id == b"bext" and bext_coding_history_line:
            blob = insert_coding_history(_read_payload(original, c), bext_coding_history_line)
            plan.append(_Out(c.id, len(blob), blob=blob))
        elif c.id == b"PEAK" and new_peak is not None and new_peak.size == c.size:
            plan.append(_Out(c.id, c.size, src=new_audio, src_offset=new_peak.payload_offset))
        else:
            field = c.size_field if c.size_field == _U32_MAX and c.size > _U32_MAX else None
            plan.append(_Out(c.id, c.size, src=original, src_offset=c.payload_offset, size_field=field))
        if c.id == b"fmt " and not has_fact and layout.codec != _WAVE_FORMAT_PCM and new_fact is not None:
            # non-PCM WAV (float) requires fact; the original lacks one, so keep libsndfile's
            plan.append(_Out(b"fact", new_fact.size, src=new_audio, src_offset=new_fact.payload_offset))

    form = src.form
    if form == b"RIFF" and (_riff_size(plan) > limit or any(o.size > _U32_MAX for o in plan)):
        form = b"RF64"
    if form != b"RIFF" and not any(o.id == b"ds64" for o in plan):
        first = plan[0] if plan else None
        if first is not None and first.id == b"JUNK" and first.size == _JUNK_DS64_SIZE:
            plan.pop(0)  # the reserve EBU Tech 3306 asks BWF writers to leave for exactly this
            carried.remove("JUNK")
        plan.insert(0, _Out(b"ds64", _JUNK_DS64_SIZE, blob=struct.pack("<QQQI", 0, 0, 0, 0)))
    if form != b"RIFF":
        bext = next((o for o in plan if o.id == b"bext" and o.blob is not None), None)
        src_bext = src.find(b"bext")
        if bext is not None and bext.blob is not None and bext.size & 1 and src_bext and not src_bext.size & 1:
            # libsndfile 1.2.2's RF64 reader skips no pad byte, so an odd chunk makes the file
            # unreadable to it; a NUL after the history (occupying the pad byte's place) keeps an
            # originally even bext even
            bext.blob += b"\x00"
            bext.size += 1
        _fill_ds64(plan, src, layout.block_align)

    _write(dest, form, plan, src)
    return carried


def _riff_size(plan: Iterable[_Out]) -> int:
    """Value of the RIFF size field: "WAVE" plus every chunk with header and pad byte."""
    return 4 + sum(8 + o.size + (o.size & 1) for o in plan)


def _fill_ds64(plan: list[_Out], src: RiffLayout, block_align: int) -> None:
    """Recompute the ds64 payload: riff size, data size, sample count; keep its table and tail."""
    ds = next(o for o in plan if o.id == b"ds64")
    data = next(o for o in plan if o.id == b"data")
    assert ds.blob is not None
    tail = ds.blob[24:]  # tableLength, table entries and any trailing bytes, as the source had them
    riff = _riff_size(plan)
    ds.blob = struct.pack("<QQQ", riff, data.size, data.size // block_align) + tail
    ds.size = len(ds.blob)
    # mirror the source's convention for the 32-bit fields where the value fits: libsndfile and
    # most writers put 0xFFFFFFFF there; a source with real values keeps real values
    src_data_field = src.data.size_field
    if src.form == b"RIFF" or src_data_field == _U32_MAX or data.size > _U32_MAX:
        data.size_field = _U32_MAX


def _header_size_field(form: bytes, plan: list[_Out], src: RiffLayout) -> int:
    riff = _riff_size(plan)
    if form == b"RIFF":
        return riff
    with open(src.path, "rb") as fh:
        fh.seek(4)
        (src_field,) = struct.unpack("<I", fh.read(4))
    if src.form == b"RIFF" or src_field == _U32_MAX or riff > _U32_MAX:
        return _U32_MAX
    return riff


def _write(dest: Path, form: bytes, plan: list[_Out], src: RiffLayout) -> None:
    header = struct.pack("<4sI4s", form, _header_size_field(form, plan, src), b"WAVE")
    try:
        with open(dest, "wb") as out:
            out.write(header)
            for o in plan:
                field = o.size_field if o.size_field is not None else (o.size if o.size <= _U32_MAX else _U32_MAX)
                out.write(struct.pack("<4sI", o.id, field))
                if o.blob is not None:
                    out.write(o.blob)
                else:
                    assert o.src is not None
                    copy_range(o.src, o.src_offset, o.size, out)
                if o.size & 1:
                    out.write(b"\x00")
            out.flush()
    except OSError as exc:
        with contextlib.suppress(OSError):
            dest.unlink()
        raise EncodeError(f"writing {dest.name}: {exc.strerror or exc}") from None


def copy_range(path: Path, offset: int, size: int, out: BinaryIO) -> None:
    """Stream ``size`` bytes from ``path`` at ``offset`` into ``out`` in bounded blocks."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        left = size
        while left > 0:
            buf = fh.read(min(_COPY_BLOCK, left))
            if not buf:
                raise DecodeError(f"{path.name} ended {left} bytes early")
            out.write(buf)
            left -= len(buf)
