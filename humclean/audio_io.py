"""Decode and encode audio blockwise, and write outputs atomically.

Two backends:

* ``soundfile`` (libsndfile) for WAV/WAVEX/RF64/W64/AIFF/FLAC/OGG(Vorbis, Opus)/MP3 and the rest of
  what libsndfile opens. PCM is read as left-justified int32 and scaled by ``2**-31`` so every sample
  is an exact float64 and re-quantising an untouched sample gives back the identical integer.
* ``ffmpeg`` for what libsndfile cannot open (M4A/AAC, ALAC, Matroska, ...), streamed through a
  subprocess as raw little-endian float64; nothing is loaded whole.

Samples travel as float64 arrays of shape ``[n, C]`` (frames by channels), full scale = 1.0.

Truncated data: libsndfile clamps a WAV/AIFF whose data chunk claims more bytes than the file holds
to what is present, so such a file probes with the shorter length and reads without error. Where
the decoder stops early or fails mid-stream on a lossless file (e.g. a cut-off FLAC), ``BlockReader``
raises :class:`DecodeError` ("truncated data ..."). Lossy decoders (MP3, Vorbis, Opus, ffmpeg) may
deliver a slightly different count than probed; the reader yields what they deliver.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import shutil
import struct
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import soundfile as sf

from humclean.errors import DecodeError, EncodeError
from humclean.iff import compatible as iff_compatible
from humclean.iff import rebuild_aiff
from humclean.riff import is_riff_wave, read_chunks, rebuild

__all__ = [
    "AudioInfo",
    "AtomicWriter",
    "BlockReader",
    "cleanup_stale_temps",
    "copy_atomic",
    "probe",
]

MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64
TEMP_MARKER = ".humclean-tmp-"

_PCM_BITS: dict[str, int] = {
    "PCM_S8": 8,
    "PCM_U8": 8,
    "PCM_16": 16,
    "PCM_24": 24,
    "PCM_32": 32,
}
_FLOAT_BITS: dict[str, int] = {"FLOAT": 32, "DOUBLE": 64}
_SF_LOSSY = {"VORBIS", "OPUS", "MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III"}
# ffmpeg codecs that keep every bit; everything else from ffmpeg is treated as lossy.
_FFMPEG_LOSSLESS = {"alac", "flac", "wavpack", "tta", "ape", "mlp", "truehd", "shorten", "als"}
# ffmpeg "format_name" -> (our container name, muxer to write it with)
_FFMPEG_CONTAINERS: dict[str, tuple[str, str]] = {
    "matroska,webm": ("MATROSKA", "matroska"),
    "matroska": ("MATROSKA", "matroska"),
    "webm": ("WEBM", "webm"),
    "aac": ("ADTS", "adts"),
    "asf": ("ASF", "asf"),
    "wv": ("WV", "wv"),
    "ape": ("APE", "ape"),
    "tta": ("TTA", "tta"),
    "ac3": ("AC3", "ac3"),
    "eac3": ("EAC3", "eac3"),
    "caf": ("CAF", "caf"),
    "ogg": ("OGG", "ogg"),
    "mp3": ("MP3", "mp3"),
    "flac": ("FLAC", "flac"),
    "wav": ("WAV", "wav"),
    "aiff": ("AIFF", "aiff"),
}
# ffprobe codec name -> ffmpeg encoder, where they differ
_FFMPEG_ENCODERS = {"mp3": "libmp3lame", "vorbis": "libvorbis", "opus": "libopus"}
_MP4_MUXERS = {"M4A": "ipod", "MP4": "mp4", "MOV": "mov", "3GP": "3gp"}
# libsndfile containers whose output is rebuilt chunk by chunk from a RIFF-family source (see
# humclean.riff); the encoder's own chunks (INFO, PEAK, ...) give way to the source's
_RIFF_CONTAINERS = {"WAV", "WAVEX", "RF64"}
# Magic numbers of containers libsndfile owns: when libsndfile rejects one of these its own
# message is more telling than ffprobe's, so that message wins if ffmpeg fails too.
_SF_MAGICS = (b"RIFF", b"RIFX", b"RF64", b"FORM", b"fLaC", b"OggS", b"riff", b"BW64")


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`probe` learns from a file's header.

    ``frames_exact`` is False where the length is only an estimate (ffmpeg streams without an exact
    duration in the sample rate's time base). ``codec_bits`` is the sample depth of an ffmpeg
    lossless codec (ALAC 16/24, ...); soundfile inputs derive depth from ``subtype``.
    """

    path: Path
    backend: str
    container: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int
    bitrate: int | None
    frames_exact: bool = True
    codec_bits: int | None = None

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate > 0 else 0.0

    @property
    def bits_per_sample(self) -> int | None:
        """8/16/24/32 for PCM, 32/64 for float, None for lossy."""
        if self.backend == "soundfile":
            return _PCM_BITS.get(self.subtype) or _FLOAT_BITS.get(self.subtype)
        return self.codec_bits if self.lossless else None

    @property
    def lossless(self) -> bool:
        if self.backend == "soundfile":
            return self.subtype in _PCM_BITS or self.subtype in _FLOAT_BITS
        return self.subtype in _FFMPEG_LOSSLESS or self.subtype.startswith("pcm_")

    @property
    def is_float(self) -> bool:
        """True for FLOAT/DOUBLE sample formats (never clipped, never dithered)."""
        return self.backend == "soundfile" and self.subtype in _FLOAT_BITS


# ----------------------------------------------------------------------------------------------
# probing


def _one_line(text: str, limit: int = 200) -> str:
    """Last non-empty line of a tool's output, trimmed; error messages must be one line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _sf_message(exc: Exception) -> str:
    """libsndfile's reason without the "Error opening '...': " prefix."""
    msg = str(exc)
    msg = re.sub(r"^Error opening .*?: ", "", msg)
    msg = re.sub(r"^Error\s*:\s*", "", msg)
    return _one_line(msg).rstrip(".") or "unknown libsndfile error"


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a multibyte sequence cut at the end of the sniffed head is still text
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.97 * len(text)


def _diagnose_riff(head: bytes, size: int) -> str | None:
    """A specific reason a RIFF/RF64 WAV failed to open, from its own fmt chunk, or None."""
    if head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        cid = head[pos : pos + 4]
        (clen,) = struct.unpack_from("<I", head, pos + 4)
        if cid == b"fmt ":
            if pos + 8 + 16 > len(head):
                return "truncated header"
            channels, rate = struct.unpack_from("<HI", head, pos + 8 + 2)
            if channels == 0:
                return "0 channels"
            if not 1 <= rate <= MAX_SAMPLE_RATE:
                return f"unsupported sample rate {rate} Hz"
            return None
        if cid == b"data":
            return None
        pos += 8 + clen + (clen & 1)
    return "truncated header" if pos + 8 > size or size < 44 else None


def _validate(info: AudioInfo) -> AudioInfo:
    if not 1 <= info.sample_rate <= MAX_SAMPLE_RATE:
        raise DecodeError(f"unsupported sample rate {info.sample_rate} Hz")
    if info.channels < 1:
        raise DecodeError(f"{info.channels} channels")
    if info.channels > MAX_CHANNELS:
        raise DecodeError(f"{info.channels} channels (at most {MAX_CHANNELS} supported)")
    if info.frames < 0:
        raise DecodeError(f"negative frame count {info.frames}")
    return info


def _ogg_nominal_bitrate(path: Path) -> int | None:
    """Nominal bit rate from a Vorbis identification header (first Ogg page), or None."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    i = head.find(b"\x01vorbis")
    if i < 0 or i + 7 + 4 + 1 + 4 + 12 > len(head):
        return None
    _max, nominal, _min = struct.unpack_from("<iii", head, i + 7 + 4 + 1 + 4)
    return nominal if nominal > 0 else None


def _lossy_bitrate(path: Path, container: str, subtype: str, duration_s: float) -> int | None:
    if subtype not in _SF_LOSSY:
        return None
    if subtype == "MPEG_LAYER_III" or container == "MP3":
        with contextlib.suppress(Exception):
            import mutagen.mp3

            rate = int(mutagen.mp3.MP3(path).info.bitrate)
            if rate > 0:
                return rate
    if subtype == "VORBIS":
        nominal = _ogg_nominal_bitrate(path)
        if nominal:
            return nominal
    if duration_s <= 0:
        return None
    return int(round(path.stat().st_size * 8 / duration_s))


def _probe_soundfile(path: Path) -> AudioInfo:
    info = sf.info(str(path))
    container, subtype = info.format, info.subtype
    duration = info.frames / info.samplerate if info.samplerate > 0 else 0.0
    return AudioInfo(
        path=path,
        backend="soundfile",
        container=container,
        subtype=subtype,
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        bitrate=_lossy_bitrate(path, container, subtype, duration),
        # libsndfile's MP3 length comes from the LAME/Xing tag when there is one, else an estimate
        frames_exact=subtype not in ("MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III"),
    )


def _pydub_utils() -> Any:
    # pydub.utils imports the stdlib's deprecated audioop; keep that warning out of our callers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import pydub.utils
    return pydub.utils


def _ffmpeg_exe() -> str:
    utils = _pydub_utils()
    which, get_encoder_name = utils.which, utils.get_encoder_name

    exe = which("ffmpeg") or get_encoder_name()
    if not exe or not shutil.which(exe):
        raise DecodeError("ffmpeg not found (needed for this format)")
    return exe


def _ffprobe_exe() -> str:
    utils = _pydub_utils()
    which, get_prober_name = utils.which, utils.get_prober_name

    exe = which("ffprobe") or get_prober_name()
    if not exe or not shutil.which(exe):
        raise DecodeError("ffprobe not found (needed for this format)")
    return exe


def _ffprobe_json(path: Path) -> dict[str, Any]:
    cmd = [
        _ffprobe_exe(),
        "-v",
        "error",
        "-of",
        "json",
        "-show_format",
        "-show_streams",
        "-select_streams",
        "a:0",
        "--",
        str(path),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DecodeError(f"ffprobe failed: {exc}") from None
    err = _one_line(proc.stderr.decode("utf-8", "replace"))
    if proc.returncode != 0:
        raise DecodeError(err.replace(str(path) + ": ", "") or f"ffprobe exit {proc.returncode}")
    try:
        data: dict[str, Any] = json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError:
        raise DecodeError("ffprobe returned unreadable output") from None
    return data


def _container_from_ffprobe(fmt: dict[str, Any]) -> str:
    name = str(fmt.get("format_name", ""))
    if name.startswith("mov,mp4"):
        brand = str(fmt.get("tags", {}).get("major_brand", "")).strip().upper()
        if brand.startswith("M4A") or brand.startswith("M4B"):
            return "M4A"
        if brand.startswith("QT"):
            return "MOV"
        if brand.startswith("3G"):
            return "3GP"
        ext = Path(str(fmt.get("filename", ""))).suffix.lower()
        return {".m4a": "M4A", ".m4b": "M4A", ".mov": "MOV", ".3gp": "3GP"}.get(ext, "MP4")
    if name in _FFMPEG_CONTAINERS:
        return _FFMPEG_CONTAINERS[name][0]
    return name


def _probe_ffmpeg(path: Path) -> AudioInfo:
    data = _ffprobe_json(path)
    streams = data.get("streams") or []
    if not streams:
        raise DecodeError("no audio stream")
    st = streams[0]
    fmt = data.get("format") or {}
    rate = int(st.get("sample_rate") or 0)
    channels = int(st.get("channels") or 0)
    frames, exact = 0, False
    tb = str(st.get("time_base", ""))
    if st.get("duration_ts") is not None and rate > 0 and tb == f"1/{rate}":
        frames, exact = int(st["duration_ts"]), True
    else:
        dur = st.get("duration") or fmt.get("duration")
        if dur not in (None, "N/A") and rate > 0:
            frames = int(round(float(dur) * rate))
    codec = str(st.get("codec_name", "unknown"))
    lossless = codec in _FFMPEG_LOSSLESS or codec.startswith("pcm_")
    bits: int | None = None
    if lossless:
        raw = st.get("bits_per_raw_sample") or st.get("bits_per_sample") or 0
        bits = int(raw) or {"s16": 16, "s16p": 16, "s32": 32, "s32p": 32, "u8": 8, "u8p": 8}.get(
            str(st.get("sample_fmt")), None
        )
    bitrate = None
    if not lossless:
        br = st.get("bit_rate") or fmt.get("bit_rate")
        bitrate = int(br) if br not in (None, "N/A") else None
        if bitrate is None and frames and rate:
            bitrate = int(round(path.stat().st_size * 8 / (frames / rate)))
    return AudioInfo(
        path=path,
        backend="ffmpeg",
        container=_container_from_ffprobe(fmt),
        subtype=codec,
        sample_rate=rate,
        channels=channels,
        frames=frames,
        bitrate=bitrate,
        frames_exact=exact,
        codec_bits=bits,
    )


def _declared_length_problem(path: Path, head: bytes) -> str | None:
    """A WAV whose data chunk declares more than the file holds (cut short, or an absurd size field).

    libsndfile quietly reads what is there; an archive tool must not turn a damaged file into a
    plausible-looking one, so this is reported as an error instead.
    """
    if head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:12] != b"WAVE":
        return None
    try:
        layout = read_chunks(path, allow_truncated_data=True)
    except (DecodeError, OSError):
        return None  # libsndfile read it; leave odd-but-readable layouts to it
    if not layout.data_truncated:
        return None
    return (
        f"truncated data: the data chunk declares {layout.data.size_field} bytes, "
        f"the file holds {layout.data.size} (cut short or corrupt header)"
    )


def probe(path: Path) -> AudioInfo:
    """Read a file's header (cheap) and describe it.

    libsndfile first; ffmpeg (ffprobe) for what libsndfile cannot open, except for files that
    are empty or look like text. Raises :class:`DecodeError` with one specific line.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except FileNotFoundError:
        raise DecodeError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise DecodeError(f"is a directory: {path}") from None
    except OSError as exc:
        raise DecodeError(f"cannot read: {exc.strerror or exc}") from None
    if size == 0:
        raise DecodeError("empty file (0 bytes)")
    try:
        info = _validate(_probe_soundfile(path))
    except DecodeError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        sf_reason = _sf_message(exc)
    else:
        problem = _declared_length_problem(path, head)
        if problem:
            raise DecodeError(problem)
        return info
    if _looks_like_text(head):
        raise DecodeError("not an audio file: looks like text")
    specific = _diagnose_riff(head, size)
    if specific:
        raise DecodeError(specific)
    owned = head[:4] in _SF_MAGICS
    if owned and size < 64:
        raise DecodeError(f"truncated header ({size} bytes)")
    try:
        return _validate(_probe_ffmpeg(path))
    except DecodeError as exc:
        if owned:
            raise DecodeError(f"{sf_reason}") from None
        if "not recognised" in sf_reason.lower():
            raise DecodeError(f"not an audio file: {exc}") from None
        raise DecodeError(str(exc)) from None


# ----------------------------------------------------------------------------------------------
# reading


class BlockReader:
    """Sequential block reader; a context manager.

    ``blocks(block_frames)`` yields float64 arrays ``[n, C]``; ``n == block_frames`` except for the
    last block. PCM values are ``int32 / 2**31`` (exact). The decoder is always driven in the same
    fixed-size reads (``READ_FRAMES``) whatever ``block_frames`` is, so the samples never depend on
    the block size: libsndfile 1.2.2 decodes the final partial Opus packet wrongly when a small read
    starts on it, which a large read that spans the tail avoids.
    """

    READ_FRAMES = 1 << 16

    def __init__(self, info: AudioInfo) -> None:
        self.info = info
        self._sf: sf.SoundFile | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._started = False
        self.frames_read = 0

    def __enter__(self) -> BlockReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the file and stop a running decoder subprocess. Safe to call twice."""
        if self._sf is not None:
            self._sf.close()
            self._sf = None
        if self._proc is not None:
            _kill(self._proc)
            self._proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def blocks(self, block_frames: int, dtype: type[np.floating] = np.float64) -> Iterator[np.ndarray]:
        """Yield ``[n, C]`` blocks from the start of the file; single use. ``np.float32`` (for analysis:
        the resampler computes in single precision anyway) rounds 32-bit PCM and float64 data."""
        if block_frames < 1:
            raise ValueError("block_frames must be >= 1")
        if self._started:
            raise RuntimeError("BlockReader.blocks() can be iterated only once")
        self._started = True
        chunks = self._sf_chunks(dtype) if self.info.backend == "soundfile" else self._ffmpeg_chunks(dtype)
        try:
            yield from _reblock(chunks, block_frames, self.info.channels)
        finally:
            self.close()

    def _sf_chunks(self, dtype: type[np.floating]) -> Iterator[np.ndarray]:
        info = self.info
        pcm = info.subtype in _PCM_BITS
        try:
            self._sf = sf.SoundFile(str(info.path))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise DecodeError(_sf_message(exc)) from None
        step = self.READ_FRAMES
        while True:
            want = step
            if info.frames - self.frames_read < 2 * step:
                # take the whole tail in one read (see class docstring); "+ step" catches
                # decoders that deliver more than the header promised
                want = max(info.frames - self.frames_read, 0) + step
            try:
                raw = self._sf.read(want, dtype="int32" if pcm else "float64", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise DecodeError(f"truncated data at frame {self.frames_read}: {_sf_message(exc)}") from None
            n = raw.shape[0]
            if n == 0:
                break
            if pcm:
                block = raw.astype(dtype)
                block *= dtype(2.0**-31)  # a power of two: exact in either precision
            else:
                finite = np.isfinite(raw).all(axis=1)
                if not finite.all():
                    bad = self.frames_read + int(np.argmin(finite))
                    raise DecodeError(f"non-finite samples (NaN/Inf) at frame {bad}")
                block = raw.astype(dtype, copy=False)
            self.frames_read += n
            yield block
            if n < want:
                break
        if info.lossless and self.frames_read < info.frames:
            raise DecodeError(f"truncated data: got {self.frames_read} of {info.frames} frames")

    def _ffmpeg_chunks(self, dtype: type[np.floating]) -> Iterator[np.ndarray]:
        info = self.info
        channels = info.channels
        cmd = [
            _ffmpeg_exe(),
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(info.path),
            "-map",
            "0:a:0",
            "-ac",
            str(channels),
            "-ar",
            str(info.sample_rate),
            "-f",
            "f64le",
            "-acodec",
            "pcm_f64le",
            "-",
        ]
        # stderr goes to a file, not a pipe: a chatty ffmpeg must never block on a full pipe
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise DecodeError(f"cannot start ffmpeg: {exc}") from None
        assert self._proc.stdout is not None
        stdout = self._proc.stdout
        frame_bytes = 8 * channels
        # ffmpeg keeps AAC end padding; an exact container duration says where the audio ends
        limit = info.frames if info.frames_exact and info.frames > 0 else None
        while True:
            want = self.READ_FRAMES
            if limit is not None:
                want = min(want, limit - self.frames_read)
                if want <= 0:
                    return  # rest is padding; close() stops ffmpeg
            buf = bytearray(want * frame_bytes)
            view = memoryview(buf)
            got = 0
            while got < len(buf):
                k = stdout.readinto(view[got:])
                if not k:
                    break
                got += k
            n = got // frame_bytes
            if n:
                block = np.frombuffer(buf, dtype="<f8", count=n * channels).reshape(n, channels)
                if not np.isfinite(block).all():
                    raise DecodeError(f"non-finite samples (NaN/Inf) near frame {self.frames_read}")
                self.frames_read += n
                yield block.astype(dtype, copy=False)
            if got < len(buf):
                break
        rc = self._proc.wait(timeout=60)
        if rc != 0:
            self._stderr.seek(0)
            msg = _one_line(self._stderr.read().decode("utf-8", "replace"))
            raise DecodeError(f"ffmpeg decode failed: {msg or f'exit {rc}'}")


def _reblock(chunks: Iterator[np.ndarray], block_frames: int, channels: int) -> Iterator[np.ndarray]:
    """Re-cut arbitrary ``[m, C]`` chunks into ``[block_frames, C]`` blocks (last one shorter)."""
    pending: list[np.ndarray] = []
    have = 0
    for chunk in chunks:
        pos = 0
        m = chunk.shape[0]
        if have:
            take = min(block_frames - have, m)
            pending.append(chunk[:take])
            have += take
            pos = take
            if have < block_frames:
                continue
            yield np.concatenate(pending)
            pending, have = [], 0
        while m - pos >= block_frames:
            yield chunk[pos : pos + block_frames]
            pos += block_frames
        if pos < m:
            # copy: the tail outlives this chunk and must not pin it
            pending.append(chunk[pos:].copy())
            have = m - pos
    if have:
        yield np.concatenate(pending)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


# ----------------------------------------------------------------------------------------------
# writing


class _Quantiser:
    """Float64 ``[n, C]`` -> integers of ``bits`` depth, with per-channel TPDF dither at <= 16 bit.

    Inputs are in ``int32 / 2**31`` scale, so ``x * 2**(bits-1)`` is exact and an untouched sample
    rounds to itself. The dither stream continues across blocks (one Generator).
    """

    def __init__(self, bits: int, seed: int) -> None:
        self.bits = bits
        self.scale = float(2 ** (bits - 1))
        self.lo = -(2 ** (bits - 1))
        self.hi = 2 ** (bits - 1) - 1
        self.rng = np.random.default_rng(seed)
        self.clipped = 0

    def __call__(self, block: np.ndarray, dither: np.ndarray | None) -> np.ndarray:
        """Return int64 ``[n, C]`` in the range ``[lo, hi]``."""
        x = block * self.scale
        rounded = np.rint(x)
        self.clipped += int(np.count_nonzero((rounded < self.lo) | (rounded > self.hi)))
        if dither is not None and self.bits <= 16 and np.any(dither):
            cols = np.flatnonzero(dither)
            # triangular PDF spanning +-1 LSB: sum of two independent uniform +-0.5 LSB
            tpdf = self.rng.random((x.shape[0], cols.size)) - self.rng.random((x.shape[0], cols.size))
            rounded[:, cols] = np.rint(x[:, cols] + tpdf)
        np.clip(rounded, self.lo, self.hi, out=rounded)
        return rounded.astype(np.int64)


def _temp_sibling(dest: Path) -> Path:
    # keep the temp name within NAME_MAX (255 bytes) even for very long output names
    stem = dest.name.encode()[:150].decode(errors="ignore")
    return dest.with_name(f".{stem}{TEMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # best effort: some filesystems refuse fsync on directories
    with contextlib.suppress(OSError):
        _fsync_path(path)


def _mp3_level(sample_rate: int, bitrate: int) -> float:
    """libsndfile's MP3 compression level for a CBR bit rate: linear from max (0.0) to min (1.0)."""
    if sample_rate >= 32000:
        hi, lo = 320, 32
    elif sample_rate >= 16000:
        hi, lo = 160, 8
    else:
        hi, lo = 64, 8
    kbps = min(max(bitrate / 1000.0, lo), hi)
    return min(max((hi - kbps) / (hi - lo), 0.0), 0.99)


def _opus_level(channels: int, bitrate: int) -> float:
    """libsndfile's Opus compression level: ~6 kb/s (1.0) to ~256 kb/s (0.0) per channel."""
    per_channel = bitrate / channels
    return min(max(1.0 - (per_channel - 6000.0) / 250000.0, 0.0), 1.0)


def _vorbis_level(sample_rate: int, channels: int, bitrate: int) -> float:
    """libsndfile's Vorbis compression level whose nominal bit rate is closest to ``bitrate``.

    Vorbis is VBR; the encoder's nominal rate for a quality depends on rate and channels, so ask
    the encoder itself: encode nothing to memory and read the nominal rate from the header.
    """

    def nominal(level: float) -> int:
        bio = io.BytesIO()
        with sf.SoundFile(bio, "w", sample_rate, channels, "VORBIS", format="OGG", compression_level=level):
            pass
        head = bio.getvalue()[:512]
        i = head.find(b"\x01vorbis")
        return struct.unpack_from("<i", head, i + 7 + 4 + 1 + 4 + 4)[0] if i >= 0 else 0

    lo, hi = 0.0, 1.0  # level 0.0 = highest rate
    with contextlib.suppress(Exception):
        if nominal(hi) >= bitrate:
            return hi
        if nominal(lo) <= bitrate:
            return lo
        for _ in range(8):
            mid = (lo + hi) / 2
            if nominal(mid) > bitrate:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2
    return 0.6  # libvorbis quality 0.4, its default


class AtomicWriter:
    """Encode to a hidden temp sibling of ``dest``; :meth:`commit` moves it into place.

    Same container, subtype, sample rate and channel count as ``like`` (or FLAC with
    ``format_override="FLAC"``). If the with-block raises, or :meth:`commit` was never called,
    the temp is removed and nothing appears under ``dest``.
    """

    def __init__(
        self,
        dest: Path,
        like: AudioInfo,
        *,
        dither_seed: int,
        format_override: str | None = None,
        copy_metadata: bool = True,
        coding_history: str | None = None,
    ) -> None:
        self.dest = Path(dest)
        self.like = like
        self.copy_metadata = copy_metadata
        # one EBU R98 line for a bext CodingHistory (WAV family only; None: append nothing)
        self.coding_history = coding_history
        self.tags_copied: list[str] = []
        self.frames_written = 0
        self._clipped_float = 0
        self._done = False
        self._sf: sf.SoundFile | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._quant: _Quantiser | None = None
        self._float_out: np.dtype[Any] | None = None
        self._clip_float = False
        self._dither_seed = dither_seed

        if format_override is not None and format_override.upper() != "FLAC":
            raise EncodeError(f"unsupported format_override {format_override!r} (only FLAC)")
        self.format_override = format_override.upper() if format_override else None
        # WAV/BWF/RF64 from a RIFF-family source: every chunk is carried over by humclean.riff at
        # commit (libsndfile would drop bext, iXML, cue, ...), so libsndfile's INFO strings and
        # mutagen's ID3 copy are not used for it
        self._riff_copy = (
            copy_metadata
            and self.format_override is None
            and (
                like.backend == "soundfile"
                and like.container in _RIFF_CONTAINERS
                # libsndfile 1.2.2 cannot open an RF64 with an odd-sized chunk (it skips no pad
                # byte); ffmpeg reads it and writes plain PCM WAV, whose data the copier takes
                or like.backend == "ffmpeg"
                and like.container == "WAV"
                and like.subtype.startswith("pcm_")
            )
            and is_riff_wave(like.path)
        )
        # AIFF/AIFF-C from an AIFF source: the same byte-exact carry-over by humclean.iff (MARK,
        # INST, COMT, APPL, ID3, ... survive; libsndfile's own strings and mutagen's ID3 copy are
        # not used). Only where the source's COMM fits what libsndfile writes (big-endian PCM or
        # float, all frames present); anything else keeps the plain libsndfile + tags path.
        self._iff_copy = (
            copy_metadata
            and self.format_override is None
            and like.backend == "soundfile"
            and like.container == "AIFF"
            and iff_compatible(like.path, like.channels, like.frames, like.bits_per_sample, like.sample_rate)
        )
        try:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EncodeError(f"cannot create {self.dest.parent}: {exc.strerror or exc}") from None
        self.temp = _temp_sibling(self.dest)
        try:
            if self.format_override == "FLAC":
                self._open_flac()
            elif like.backend == "soundfile":
                self._open_soundfile(like.container, like.subtype)
            else:
                self._open_ffmpeg()
        except BaseException:
            self.abort()
            raise

    # -- opening -------------------------------------------------------------------------------

    def _open_flac(self) -> None:
        like = self.like
        if like.channels > 8:
            raise EncodeError(f"FLAC holds at most 8 channels, source has {like.channels}")
        bits = like.bits_per_sample
        subtype = "PCM_16" if bits is not None and bits <= 16 and not like.is_float else "PCM_24"
        self._open_soundfile("FLAC", subtype)

    def _open_soundfile(self, container: str, subtype: str) -> None:
        like = self.like
        kwargs: dict[str, Any] = {}
        if subtype in _PCM_BITS:
            self._quant = _Quantiser(_PCM_BITS[subtype], self._dither_seed)
        elif subtype in _FLOAT_BITS:
            self._float_out = np.dtype(np.float32 if subtype == "FLOAT" else np.float64)
        else:
            # lossy: libsndfile takes float and clips; clip (and count) ourselves first
            self._clip_float = True
            if like.bitrate:
                if subtype == "MPEG_LAYER_III":
                    kwargs = {
                        "compression_level": _mp3_level(like.sample_rate, like.bitrate),
                        "bitrate_mode": "CONSTANT",
                    }
                elif subtype == "OPUS":
                    kwargs = {"compression_level": _opus_level(like.channels, like.bitrate)}
                elif subtype == "VORBIS":
                    kwargs = {"compression_level": _vorbis_level(like.sample_rate, like.channels, like.bitrate)}
        strings: dict[str, str] = {}
        if self.copy_metadata and like.backend == "soundfile" and not (self._riff_copy or self._iff_copy):
            from humclean.metadata import read_sndfile_strings

            strings = read_sndfile_strings(like.path)
        try:
            self._sf = sf.SoundFile(
                str(self.temp),
                "w",
                samplerate=like.sample_rate,
                channels=like.channels,
                subtype=subtype,
                format=container,
                **kwargs,
            )
            # libsndfile writes strings (WAV LIST/INFO, AIFF, FLAC/OGG comments) from the header
            for key, value in strings.items():
                with contextlib.suppress(RuntimeError, sf.LibsndfileError):
                    setattr(self._sf, key, value)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
            raise EncodeError(f"cannot write {container}/{subtype}: {_sf_message(exc)}") from None

    def _open_ffmpeg(self) -> None:
        like = self.like
        container = like.container
        if container in _MP4_MUXERS:
            muxer = _MP4_MUXERS[container]
        else:
            muxer = next(
                (mux for name, mux in _FFMPEG_CONTAINERS.values() if name == container),
                container.split(",")[0].lower(),
            )
        codec_args = ["-c:a", _FFMPEG_ENCODERS.get(like.subtype, like.subtype)]
        if like.lossless:
            if like.codec_bits:
                self._quant = _Quantiser(like.codec_bits, self._dither_seed)
            fmt = _ffprobe_json(like.path).get("streams", [{}])[0]
            if fmt.get("sample_fmt"):
                codec_args += ["-sample_fmt", str(fmt["sample_fmt"])]
            if fmt.get("bits_per_raw_sample"):
                codec_args += ["-bits_per_raw_sample", str(fmt["bits_per_raw_sample"])]
        else:
            self._clip_float = True
            if like.bitrate:
                codec_args += ["-b:a", str(like.bitrate)]
        cmd = [
            _ffmpeg_exe(),
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "f64le",
            "-ar",
            str(like.sample_rate),
            "-ac",
            str(like.channels),
            "-i",
            "-",
            *codec_args,
            "-ar",
            str(like.sample_rate),
            "-f",
            muxer,
            str(self.temp),
        ]
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr)
        except OSError as exc:
            raise EncodeError(f"cannot start ffmpeg: {exc}") from None

    def _ffmpeg_error(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return _one_line(self._stderr.read().decode("utf-8", "replace"))

    # -- writing -------------------------------------------------------------------------------

    @property
    def clipped_samples(self) -> int:
        return self._clipped_float + (self._quant.clipped if self._quant is not None else 0)

    def write(self, block: np.ndarray, dither: np.ndarray | None = None) -> None:
        """Append ``block`` ``[n, C]`` (float64, BlockReader scale).

        ``dither`` ``[C]`` bool: channels to TPDF-dither when quantising to <= 16-bit PCM; leave
        unmodified channels unflagged so they come out bit-identical.
        """
        if self._done:
            raise EncodeError("write after commit/abort")
        block = np.asarray(block, dtype=np.float64)
        if block.ndim == 1 and self.like.channels == 1:
            block = block[:, None]
        if block.ndim != 2 or block.shape[1] != self.like.channels:
            raise EncodeError(f"block shape {block.shape} does not match {self.like.channels} channels")
        if block.shape[0] == 0:
            return
        if not np.isfinite(block).all():
            raise EncodeError("non-finite samples (NaN/Inf) in output block")
        if dither is not None:
            dither = np.asarray(dither, dtype=bool).reshape(-1)
            if dither.size != self.like.channels:
                raise EncodeError(f"dither mask has {dither.size} entries for {self.like.channels} channels")

        out: np.ndarray
        if self._quant is not None:
            ints = self._quant(block, dither)
            if self._sf is not None:
                # left-justify into int32 so libsndfile's int path keeps the exact value
                out = (ints << (32 - self._quant.bits)).astype(np.int32)
            else:
                out = ints.astype(np.float64) / self._quant.scale
        elif self._float_out is not None:
            out = block.astype(self._float_out)
        else:
            if self._clip_float:
                over = np.abs(block) > 1.0
                n_over = int(np.count_nonzero(over))
                if n_over:
                    self._clipped_float += n_over
                    block = np.clip(block, -1.0, 1.0)
            out = block
        try:
            if self._sf is not None:
                self._sf.write(out)
            else:
                assert self._proc is not None and self._proc.stdin is not None
                self._proc.stdin.write(np.ascontiguousarray(out, dtype="<f8").tobytes())
        except (BrokenPipeError, OSError) as exc:
            msg = self._ffmpeg_error() if self._proc is not None else ""
            raise EncodeError(f"write failed: {msg or exc}") from None
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise EncodeError(f"write failed: {_sf_message(exc)}{self._space_hint()}") from None
        self.frames_written += block.shape[0]

    def _space_hint(self) -> str:
        """libsndfile reports ENOSPC/EFBIG only as "System error": say which limit is the likely cause."""
        import resource
        import shutil

        hints = []
        with contextlib.suppress(OSError):
            if shutil.disk_usage(self.temp.parent).free < (64 << 20):
                hints.append("disk nearly full")
        with contextlib.suppress(OSError, ValueError):
            soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
            if soft != resource.RLIM_INFINITY and self.temp.stat().st_size >= soft - (1 << 20):
                hints.append(f"file size limit {soft} bytes reached")
        return f" ({', '.join(hints)})" if hints else ""

    def commit(self) -> Path:
        """Finish encoding, carry tags over, fsync and ``os.replace`` onto ``dest``."""
        if self._done:
            raise EncodeError("commit after commit/abort")
        try:
            self._finish_encoder()
            if self._riff_copy:
                self._rebuild_riff()
            elif self._iff_copy:
                self._rebuild_iff()
            elif self.copy_metadata:
                from humclean.metadata import copy_tags

                self.tags_copied = copy_tags(self.like.path, self.temp)
            _fsync_path(self.temp)
            os.replace(self.temp, self.dest)
            _fsync_dir(self.dest.parent)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self.dest

    def _rebuild_riff(self) -> None:
        """Swap the temp for one holding the source's chunks around libsndfile's data chunk."""
        self._swap_rebuilt(lambda rebuilt: rebuild(self.like.path, self.temp, rebuilt, self.coding_history))

    def _rebuild_iff(self) -> None:
        """Swap the temp for one holding the source's IFF chunks around libsndfile's SSND."""
        self._swap_rebuilt(lambda rebuilt: rebuild_aiff(self.like.path, self.temp, rebuilt))

    def _swap_rebuilt(self, build: Callable[[Path], list[str]]) -> None:
        rebuilt = _temp_sibling(self.dest)
        try:
            self.tags_copied = build(rebuilt)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                rebuilt.unlink()
            raise
        # abort() removes self.temp, so point it at the rebuilt file before dropping the old one
        encoded, self.temp = self.temp, rebuilt
        with contextlib.suppress(FileNotFoundError):
            encoded.unlink()

    def _finish_encoder(self) -> None:
        if self._sf is not None:
            try:
                self._sf.close()
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise EncodeError(f"finishing {self.temp.name}: {_sf_message(exc)}") from None
            finally:
                self._sf = None
        if self._proc is not None:
            proc, self._proc = self._proc, None
            try:
                assert proc.stdin is not None
                proc.stdin.close()
            except OSError:
                pass
            try:
                rc = proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                _kill(proc)
                raise EncodeError("ffmpeg encode timed out") from None
            if rc != 0:
                raise EncodeError(f"ffmpeg encode failed: {self._ffmpeg_error() or f'exit {rc}'}")
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def abort(self) -> None:
        """Drop the temp file; nothing is written under ``dest``. Safe to call twice."""
        self._done = True
        if self._sf is not None:
            with contextlib.suppress(Exception):
                self._sf.close()
            self._sf = None
        if self._proc is not None:
            _kill(self._proc)
            self._proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()

    def __del__(self) -> None:
        if not getattr(self, "_done", True):
            with contextlib.suppress(Exception):
                self.abort()


# ----------------------------------------------------------------------------------------------
# plain files


def copy_atomic(src: Path, dest: Path) -> None:
    """Byte-identical copy of ``src`` to ``dest`` through a temp sibling and ``os.replace``."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EncodeError(f"cannot create {dest.parent}: {exc.strerror or exc}") from None
    temp = _temp_sibling(dest)
    try:
        with open(src, "rb") as fin, open(temp, "wb") as fout:
            shutil.copyfileobj(fin, fout, length=1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(temp, dest)
        _fsync_dir(dest.parent)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise EncodeError(f"copy failed: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


_TEMP_RE = re.compile(r"^\..+" + re.escape(TEMP_MARKER) + r"(\d+)-[0-9a-f]+$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def cleanup_stale_temps(root: Path, *, skip_live: bool = True) -> int:
    """Remove leftover ``.<name>.humclean-tmp-<pid>-<hex>`` files under ``root``; return the count.

    With ``skip_live`` a temp whose writer pid is still running (a concurrent run in the same
    tree) is left alone; a recycled pid can therefore keep a stale temp until a later run.
    """
    root = Path(root)
    if not root.is_dir():
        return 0
    removed = 0
    for path in root.rglob(f".*{TEMP_MARKER}*"):
        m = _TEMP_RE.match(path.name)
        if not m or not path.is_file() or path.is_symlink():
            continue
        if skip_live and _pid_alive(int(m.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed
