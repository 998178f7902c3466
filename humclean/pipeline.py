"""The whole flow, file by file, with per-file fault isolation.

    discover -> probe -> [detect pass] -> segments -> resample -> chunk -> batch engine (model)
             -> overlap-add -> resample hum back -> subtract from original -> encode -> report

Each file is streamed in segments of ``segment_seconds`` (core) read with real neighbouring
samples as context, so memory is bounded by the segment size, not the file length. Files run in
parallel worker threads (``jobs``); all of them feed one :class:`BatchEngine`, which packs chunks
from many files and channels into the model's batches.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed

from . import __version__
from .audio_io import AtomicWriter, AudioInfo, BlockReader, copy_atomic, probe
from .batching import BatchEngine, EngineStats
from .chunking import drop_edge_chunks, extract_chunks, overlap_add, plan_chunks
from .detect import HumDetection, HumDetector
from .discover import FileTask
from .errors import DecodeError, HumcleanError, UsageError
from .forked import forked
from .metrics import ReferenceScore
from .models.base import HumEstimator, ModelCard
from .report import FileRecord, Manifest
from .resample import rate_period, resample, resampled_length
from .riff import coding_history_line
from .zoo import sha256_file

Progress = Callable[[float], None]


@dataclass(frozen=True)
class RunOptions:
    """Everything that shapes a run (the model aside)."""

    dry_run: bool = False
    force: bool = False
    overwrite: bool = False
    checksum: bool = False
    jobs: int = 2
    batch_size: int = 16
    model_workers: int = 1  # batches run side by side (see BatchEngine)
    model_processes: bool = False  # ... each in a forked worker process where possible (see forked)
    segment_seconds: float = 60.0
    reference_root: Path | None = None
    format_override: str | None = None
    keep_mtime: bool = False
    provenance: bool = False
    # seconds neighbouring chunks overlap instead of the model card's: overlapping estimates are averaged,
    # so more overlap is a little better and proportionally slower (README, Results)
    overlap_seconds: float | None = None

    def card_for(self, card: ModelCard) -> ModelCard:
        """``card`` with this run's chunk overlap; raises UsageError when it does not fit the chunk."""
        if self.overlap_seconds is None:
            return card
        overlap = int(round(self.overlap_seconds * card.sample_rate))
        if not 0 <= 2 * overlap < card.chunk_samples:
            limit = card.chunk_samples / card.sample_rate / 2
            raise UsageError(f"--overlap must be at least 0 and under {limit:g} s (half of {card.name}'s chunk)")
        return replace(card, overlap_samples=overlap)

    def key(self, card: ModelCard) -> str:
        """Identity of the model and options that change an output (for the up-to-date manifest)."""
        model = [card.ident, card.sample_rate, card.chunk_samples, card.overlap_samples, card.arch, card.arch_args]
        doc = {"model": model, "force": self.force, "format": self.format_override, "v": __version__}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class _Segment:
    start: int  # native frame index of the core's first sample
    core_frames: int  # real frames in the core
    padded: np.ndarray  # [context + ceil_P(core) + context, C] float64 (or float32), zeros outside the file
    context: int  # native frames of context on each side
    store: np.ndarray  # the array ``padded`` is a view into (see ``_segments``' ``spare``)
    file_end: int | None = None  # the file's frame count, once the decoder has run dry (always by the
    # time a segment's window reaches the end: the last segments, whose plans may drop edge chunks)

    @property
    def core(self) -> np.ndarray:
        return self.padded[self.context : self.context + self.core_frames]


def _segments(
    reader: BlockReader,
    channels: int,
    core_frames: int,
    context: int,
    period: int,
    dtype: type[np.floating] = np.float64,
    spare: list[np.ndarray] | None = None,
) -> Iterator[_Segment]:
    """Consecutive segments of ``core_frames`` (a multiple of ``period``) with ``context`` real
    frames on each side (zeros beyond the file), in ``dtype``. The decoder's actual frame count is used.

    Blocks are copied once into a store: a segment's ``padded`` is a view into it (appending by
    concatenation copied the whole window per block). Without ``spare`` the store is reused, so the
    view is valid until the next segment is requested. With ``spare``, every segment gets a store of
    its own, taken from ``spare`` when it holds one (callers give back the ``store`` of segments they are
    done with): a segment can be held while later ones are read, without copying it out. The frames two
    segments share are copied into the next store when the next segment is requested, so a held segment
    may be changed in place from then on.
    """
    # after a drop at most 2 context + core - 1 frames remain, then one block of <= core frames arrives;
    # the last segment's zero tail ends within 2 context + core + period
    shape = (2 * context + 2 * core_frames + period, channels)

    def new_store() -> np.ndarray:
        if spare:
            return spare.pop()
        return np.zeros(shape, dtype=dtype)

    store = new_store()
    store[:context] = 0.0
    filled = context  # store[:filled] holds frames buf_start ...; the first context frames are zeros
    buf_start = -context
    # blocks no larger than the decoder's reads: a segment-sized block would be one more concatenated
    # copy of the segment (and tens of MB of fresh pages each time)
    blocks = reader.blocks(min(core_frames, reader.READ_FRAMES), dtype)
    exhausted = False
    seg_start = 0
    while True:
        need = seg_start + core_frames + context
        while not exhausted and buf_start + filled < need:
            block = next(blocks, None)
            if block is None:
                exhausted = True
            else:
                store[filled : filled + block.shape[0]] = block
                filled += block.shape[0]
        core = min(core_frames, buf_start + filled - seg_start) if exhausted else core_frames
        if core <= 0:
            return
        core_pad = -(-core // period) * period
        lo = seg_start - context - buf_start
        hi = seg_start + core_pad + context - buf_start
        if hi > filled:
            store[filled:hi] = 0.0
        yield _Segment(seg_start, core, store[lo:hi], context, store, buf_start + filled if exhausted else None)
        seg_start += core_frames
        drop = max(seg_start - context - buf_start, 0)
        keep = max(filled - drop, 0)
        if spare is not None:  # the next segment's store; the one just yielded now belongs to the caller
            fresh = new_store()
            fresh[:keep] = store[drop : drop + keep]
            store = fresh
        elif drop:
            store[:keep] = store[drop : drop + keep]  # numpy copies overlapping ranges correctly
        filled = keep
        buf_start += drop


@dataclass
class _Geometry:
    """Native/model-rate bookkeeping for one file and one model."""

    native_rate: int
    model_rate: int
    chunk: int
    overlap: int
    segment_seconds: float
    p_native: int = 0
    p_model: int = 0
    margin_m: int = 0  # model samples of hum computed beyond the core on each side (resampler margin)
    context_n: int = 0  # native frames of input context on each side
    core_n: int = 0

    def __post_init__(self) -> None:
        self.p_native, self.p_model = rate_period(self.native_rate, self.model_rate)
        self.margin_m = -(-self.model_rate // 10 // self.p_model) * self.p_model
        ctx_m = self.chunk + 2 * self.margin_m
        self.context_n = -(-ctx_m // self.p_model) * self.p_native
        core = max(1, int(self.segment_seconds * self.native_rate) // self.p_native) * self.p_native
        self.core_n = core

    def to_model(self, native: int) -> int:
        return native // self.p_native * self.p_model

    def to_native(self, model: int) -> int:
        return model // self.p_model * self.p_native


@dataclass
class _ChannelState:
    detector: HumDetector  # fed the input at the model rate; also measures hum_db_in
    meter_out: HumDetector  # fed the cleaned signal at the model rate; measures hum_db_out
    detection: HumDetection | None = None


class _Stages:
    """Seconds spent per pipeline stage for one file (for the throughput benchmark and reports)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def iterate(self, name: str, items: Iterator[_Segment]) -> Iterator[_Segment]:
        while True:
            with self(name):
                item = next(items, None)
            if item is None:
                return
            yield item


# Model-rate segments the first pass keeps for the second (which would resample them again), per file;
# a 10-min 48 kHz stereo file needs about 50 MB, longer files keep their first segments only.
MODEL_RATE_CACHE_BYTES = 64 << 20


@dataclass
class _FileContext:
    task: FileTask
    info: AudioInfo
    geom: _Geometry
    reference_root: Path | None = None
    channels: list[_ChannelState] = field(default_factory=list)
    stages: _Stages = field(default_factory=_Stages)
    input_md5: Any = field(default_factory=hashlib.md5)
    model_rate: list[np.ndarray] = field(default_factory=list)  # first segments at the model rate, float32


def _model_rate_core(seg: _Segment | _InFlight, geom: _Geometry, y: np.ndarray) -> np.ndarray:
    """The model-rate samples of ``y`` (resampled ``seg.padded`` channel) that belong to the core."""
    lo = geom.to_model(seg.context)
    return y[lo : lo + resampled_length(seg.core_frames, geom.native_rate, geom.model_rate)]


def _detect(ctx: _FileContext, progress: Progress | None, keep: bool) -> None:
    """First pass: mains detection and input hum level per channel, at the model rate; with ``keep``,
    the first segments' model-rate samples stay in ``ctx.model_rate`` for the second pass."""
    geom = ctx.geom
    stage = ctx.stages
    cached = 0
    with BlockReader(ctx.info) as reader:
        # float32 throughout: soxr's HQ engine computes in single precision, so float64 samples
        # would resample to the same values, at more cost
        segments = _segments(reader, ctx.info.channels, geom.core_n, geom.context_n, geom.p_native, np.float32)
        for i, seg in enumerate(stage.iterate("decode", segments)):
            with stage("resample"):
                y = resample(seg.padded, geom.native_rate, geom.model_rate)
            if keep and i == len(ctx.model_rate) and cached + y.nbytes <= MODEL_RATE_CACHE_BYTES:
                # at the model's own rate ``y`` is the segment itself, a view into the reader's reused store
                ctx.model_rate.append(y.copy() if y is seg.padded else y)
                cached += y.nbytes
            with stage("detect"):
                for c, st in enumerate(ctx.channels):
                    st.detector.update(_model_rate_core(seg, geom, y[:, c]))
            if progress:
                progress(seg.core_frames / geom.native_rate / 2)
    for st in ctx.channels:
        st.detection = st.detector.result()


@dataclass
class _ChannelHum:
    """One channel's chunks of one segment: ``starts`` (the whole plan), of which the first ``reused``
    come from the previous segment's estimates and the rest from ``future``."""

    channel: int
    future: Future
    starts: np.ndarray
    reused: int
    hum_start: int
    hum_len: int
    f0_hz: float  # the hint the chunks were sent with
    file_end: int | None = None  # the file's length at the model rate, once its last segment is planned


def _twin(pending: list[_ChannelHum], y: np.ndarray, channel: int, f0_hz: float) -> _ChannelHum | None:
    """An earlier channel of this segment whose chunks would be the same as ``channel``'s (the same
    model-rate samples and mains hint), whose estimate it can share: the two channels of a mono transfer
    stored as stereo cost one channel's model time, and come out the same."""
    for job in pending:
        same_hint = job.f0_hz == f0_hz or (math.isnan(job.f0_hz) and math.isnan(f0_hz))
        if same_hint and np.array_equal(y[:, job.channel], y[:, channel]):
            return replace(job, channel=channel)
    return None


def _hum_for_channel(
    seg: _Segment, geom: _Geometry, y: np.ndarray, engine: BatchEngine, f0_hz: float, channel: int, done_through: int
) -> _ChannelHum:
    """Submit the chunks covering the core (plus margin) of one channel; chunks starting at or before
    ``done_through`` (the previous segment's last planned start) are not submitted again."""
    seg_m = geom.to_model(seg.start)
    span_start = seg_m - geom.to_model(seg.context)
    core_pad_m = geom.to_model(seg.padded.shape[0] - 2 * seg.context)
    hum_start = seg_m - geom.margin_m
    hum_len = core_pad_m + 2 * geom.margin_m
    # chunks holding only a cross-fade's worth of the file are left out (see ``drop_edge_chunks``): which
    # ones depends on the chunk and the file's end alone, and every segment whose plan reaches the end
    # knows it, so the plans of consecutive segments agree
    file_end = None if seg.file_end is None else resampled_length(seg.file_end, geom.native_rate, geom.model_rate)
    planned = plan_chunks(hum_start, hum_len, geom.chunk, geom.overlap)
    starts = drop_edge_chunks(planned, geom.chunk, geom.overlap, file_end)
    # the grid is absolute: the chunks around a segment boundary are the same chunks for both segments
    # (about one in eight of a long file's chunks), estimated once
    reused = int(np.searchsorted(starts, done_through, side="right"))
    chunks = extract_chunks(y, span_start, starts[reused:], geom.chunk)
    future = engine.submit(chunks, starts[reused:], np.full(chunks.shape[0], f0_hz))
    return _ChannelHum(channel, future, starts, reused, hum_start, hum_len, f0_hz, file_end)


# frames per encoder call in the second pass (the copy baseline writes blocks of the same size)
WRITE_FRAMES = 1 << 18

# Segments queued ahead of the one being finished: the file's thread decodes and resamples the next
# segment while the engine estimates this one's hum (a lone long file otherwise leaves a core idle).
_LOOKAHEAD = 1


@dataclass
class _InFlight:
    """A segment whose chunks are with the engine: what finishing it needs once the reader has moved on."""

    context: int
    core_frames: int
    core: np.ndarray  # [core_frames, C] float64, the input; the output once finished (in place)
    y: np.ndarray  # [model frames, C] float32, the padded segment at the model rate
    pending: list[_ChannelHum]
    store: np.ndarray  # what ``core`` is a view into (see ``_segments``' ``spare``)


def _finish_segment(
    ctx: _FileContext,
    seg: _InFlight,
    writer: AtomicWriter,
    dither: np.ndarray,
    scoring: tuple[ReferenceScore | None, _Frames | None, str],
    progress: Progress | None,
    previous: dict[int, np.ndarray],
) -> str:
    """Wait for a segment's hum, subtract it at the native rate, meter and encode; returns the
    reference note (``scoring``'s, or why scoring stopped). ``previous``: per channel, the hum chunks
    of the segment finished before (this segment's first ones may be among them); updated."""
    geom = ctx.geom
    stage = ctx.stages
    score, ref_blocks, note = scoring
    out = seg.core.copy() if score is not None else seg.core
    for job in seg.pending:
        c = job.channel
        with stage("model"):
            hum_chunks = job.future.result()
        if job.reused:
            hum_chunks = np.concatenate([previous[c][-job.reused :], hum_chunks])
        previous[c] = hum_chunks
        with stage("overlap_add"):
            h = overlap_add(hum_chunks, job.starts, job.hum_start, job.hum_len, geom.overlap, job.file_end)
        with stage("resample"):
            # soxr's HQ engine runs in single precision: float32 in and out gives the same
            # values as float64 at two thirds of the time
            hum_native = resample(h.astype(np.float32), geom.model_rate, geom.native_rate)
        margin_n = geom.to_native(geom.margin_m)
        out[:, c] -= hum_native[margin_n : margin_n + seg.core_frames]
        with stage("detect"):
            core_m = _model_rate_core(seg, geom, seg.y[:, c])
            ctx.channels[c].meter_out.update(core_m - h[geom.margin_m : geom.margin_m + core_m.shape[0]])
    cleaned = {job.channel for job in seg.pending}
    with stage("detect"):
        for c, st in enumerate(ctx.channels):
            if c not in cleaned:
                st.meter_out.update(_model_rate_core(seg, geom, seg.y[:, c]))
    with stage("encode"):
        # in the copy's block size: the encoder's temporaries stay small and reused (a segment-sized
        # block makes several fresh tens-of-MB arrays per segment: page faults)
        for lo in range(0, out.shape[0], WRITE_FRAMES):
            writer.write(out[lo : lo + WRITE_FRAMES], dither=dither)
    if score is not None and ref_blocks is not None and not note:
        note = _score_block(score, ref_blocks, seg.core, out)
    if progress:
        progress(seg.core_frames / geom.native_rate / 2)
    return note


def _clean(
    ctx: _FileContext,
    engine: BatchEngine,
    dest: Path,
    process: list[bool],
    options: RunOptions,
    progress: Progress | None,
) -> tuple[int, ReferenceScore | None, str]:
    """Second pass: estimate hum per processed channel, subtract at the native rate, encode."""
    geom = ctx.geom
    info = ctx.info
    seed = int.from_bytes(hashlib.sha256(ctx.task.rel.as_posix().encode()).digest()[:8], "little")
    # bext CodingHistory line (used for WAV-family outputs only): lead channel's mains f0
    lead = next((st.detection for st in ctx.channels if st.detection is not None and st.detection.has_hum), None)
    history = coding_history_line(
        info.sample_rate,
        info.bits_per_sample,
        info.channels,
        engine.estimator.card.ident,
        lead.f0_hz if lead is not None else None,
    )
    score, ref_reader, ref_blocks, note = _open_reference(ctx)
    try:
        with (
            BlockReader(info) as reader,
            AtomicWriter(
                dest,
                info,
                dither_seed=seed,
                format_override=None if info.lossless else options.format_override,
                coding_history=history,
            ) as writer,
        ):
            dither = np.asarray(process, dtype=bool)
            stage = ctx.stages
            spare: list[np.ndarray] = []  # stores of finished segments, for reuse
            # each segment in a store of its own: it stays with the engine while the next one is read
            segments = _segments(reader, info.channels, geom.core_n, geom.context_n, geom.p_native, spare=spare)
            cached = ctx.model_rate[::-1]  # popped in order, each freed once used
            ctx.model_rate = []
            in_flight: deque[_InFlight] = deque()
            done_through = -(1 << 62)  # last chunk start planned so far (every channel has the same plan)
            previous: dict[int, np.ndarray] = {}  # channel: hum chunks of the last finished segment

            def finish(done: _InFlight) -> str:
                return _finish_segment(ctx, done, writer, dither, (score, ref_blocks, note), progress, previous)

            for seg in stage.iterate("decode", segments):
                with stage("resample"):
                    # float32 either way: the model takes float32 chunks, and a cached segment must
                    # give the same output as a resampled one
                    y = (
                        cached.pop()
                        if cached
                        else resample(seg.padded, geom.native_rate, geom.model_rate).astype(np.float32)
                    )
                pending = []
                with stage("chunk"):
                    for c, st in enumerate(ctx.channels):
                        if process[c]:
                            f0 = st.detection.f0_hz if st.detection and st.detection.f0_hz else math.nan
                            job = _twin(pending, y, c, f0)
                            if job is None:
                                job = _hum_for_channel(seg, geom, y[:, c], engine, f0, c, done_through)
                            pending.append(job)
                    if pending and pending[-1].starts.size:
                        done_through = int(pending[-1].starts[-1])
                if options.provenance:  # hashing every sample costs about as much as decoding it
                    ctx.input_md5.update(np.ascontiguousarray(seg.core, dtype="<f8").tobytes())
                # the next segment is decoded and queued while the model works on this one; its store
                # goes back to the reader once finished (a fresh tens-of-MB array per segment costs
                # as much in page faults as filling it)
                in_flight.append(_InFlight(seg.context, seg.core_frames, seg.core, y, pending, seg.store))
                while len(in_flight) > _LOOKAHEAD:
                    done = in_flight.popleft()
                    note = finish(done)
                    spare.append(done.store)
            while in_flight:
                note = finish(in_flight.popleft())
            with stage("encode"):
                writer.commit()
            clipped = writer.clipped_samples
    finally:
        if ref_reader is not None:
            ref_reader.__exit__(None, None, None)
    return clipped, (score if not note else None), note


class _Frames:
    """Takes exact frame counts from a block iterator."""

    def __init__(self, blocks: Iterator[np.ndarray]) -> None:
        self.blocks = blocks
        self.buf: np.ndarray | None = None

    def take(self, n: int) -> np.ndarray:
        parts = []
        got = 0
        while got < n:
            if self.buf is None or self.buf.shape[0] == 0:
                self.buf = next(self.blocks, None)
                if self.buf is None:
                    break
            take = min(n - got, self.buf.shape[0])
            parts.append(self.buf[:take])
            self.buf = self.buf[take:]
            got += take
        return np.concatenate(parts) if parts else np.zeros((0, 0))


def _open_reference(ctx: _FileContext) -> tuple[ReferenceScore | None, BlockReader | None, _Frames | None, str]:
    ref_root = ctx.reference_root
    if ref_root is None:
        return None, None, None, ""
    path = ref_root / ctx.task.rel
    if not path.is_file():
        return None, None, None, f"reference missing: {path}"
    try:
        rinfo = probe(path)
    except DecodeError as exc:
        return None, None, None, f"reference unreadable: {exc}"
    if (rinfo.sample_rate, rinfo.channels) != (ctx.info.sample_rate, ctx.info.channels):
        return (
            None,
            None,
            None,
            (
                f"reference {rinfo.sample_rate} Hz/{rinfo.channels} ch does not match input "
                f"{ctx.info.sample_rate} Hz/{ctx.info.channels} ch"
            ),
        )
    reader = BlockReader(rinfo)
    reader.__enter__()
    return ReferenceScore(), reader, _Frames(reader.blocks(1 << 16)), ""


def _score_block(score: ReferenceScore, ref: _Frames, inp: np.ndarray, out: np.ndarray) -> str:
    r = ref.take(inp.shape[0])
    if r.shape[0] != inp.shape[0]:
        return "reference is shorter than the input"
    score.update(inp, out, r)
    return ""


def audio_md5(info: AudioInfo) -> str:
    """MD5 of a file's decoded samples: interleaved little-endian float64, in humclean's scale
    (PCM as int / 2**31), so that two files with the same audio hash alike whatever their container."""
    h = hashlib.md5()
    with BlockReader(info) as reader:
        for block in reader.blocks(1 << 16):
            h.update(np.ascontiguousarray(block, dtype="<f8").tobytes())
    return h.hexdigest()


def _score_unchanged(ctx: _FileContext) -> tuple[ReferenceScore | None, str]:
    """Reference scores for a file passed through unchanged (output == input)."""
    score, ref_reader, ref_frames, note = _open_reference(ctx)
    if score is None or ref_frames is None:
        return None, note
    try:
        with BlockReader(ctx.info) as reader:
            for block in reader.blocks(1 << 16):
                note = _score_block(score, ref_frames, block, block)
                if note:
                    return None, note
    finally:
        assert ref_reader is not None
        ref_reader.__exit__(None, None, None)
    return score, ""


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, HumcleanError | OSError):
        msg = f"{type(exc).__name__}: {msg}"
    return msg[:300]


class Pipeline:
    """Runs a list of :class:`FileTask` through one estimator. Library code: no printing, no exits."""

    def __init__(
        self,
        estimator: HumEstimator,
        options: RunOptions,
        manifest: Manifest | None = None,
        on_record: Callable[[FileRecord], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.estimator = estimator
        self.options = options
        self.manifest = manifest
        self.on_record = on_record
        self.progress = progress
        self.card = options.card_for(estimator.card)  # the model's card with this run's chunk overlap
        self.options_key = options.key(self.card)
        self._lock = threading.Lock()
        self._xrt_estimate: float | None = None
        self.engine_stats: EngineStats | None = None

    def probe_all(self, tasks: list[FileTask]) -> list[tuple[FileTask, AudioInfo | None, str]]:
        """Probe every input up front (in parallel) so that all unreadable files are known at once."""

        def one(t: FileTask) -> tuple[FileTask, AudioInfo | None, str]:
            if t.error:
                return t, None, t.error
            try:
                return t, probe(t.src), ""
            except (HumcleanError, OSError) as exc:
                return t, None, _one_line(exc)

        return list(Parallel(n_jobs=max(1, self.options.jobs), backend="threading")(delayed(one)(t) for t in tasks))

    def run(self, tasks: list[FileTask]) -> list[FileRecord]:
        """Process every task here (worker threads); returns one record per task (order of completion)."""
        opts = self.options
        # worker processes are forked first, before this run starts any thread (see ``forked``)
        use_processes = opts.model_processes and not opts.dry_run
        with forked(self.estimator, opts.model_workers) if use_processes else nullcontext(self.estimator) as model:
            todo, records = self.probe_tasks(tasks)
            with BatchEngine(model, opts.batch_size, workers=opts.model_workers) as engine:
                runner = Parallel(n_jobs=max(1, opts.jobs), backend="threading", return_as="generator_unordered")
                for rec in runner(delayed(self._run_one)(t, i, engine) for t, i in todo):
                    records.append(self.emit(rec))
        self.engine_stats = engine.stats
        return records

    def probe_tasks(self, tasks: list[FileTask]) -> tuple[list[tuple[FileTask, AudioInfo]], list[FileRecord]]:
        """Probe everything first: (readable tasks with their info, error records emitted at once)."""
        errors: list[FileRecord] = []
        todo: list[tuple[FileTask, AudioInfo]] = []
        taken = {t.dest.as_posix().casefold() for t in tasks}
        for task, info, err in self.probe_all(tasks):
            if info is not None and self.options.format_override and not info.lossless:
                # lossy inputs become FLAC (no second generation of lossy coding): name them so
                flac = task.dest.with_suffix(".flac")
                if flac.as_posix().casefold() in taken:
                    info, err = None, f"output {flac} (FLAC instead of {info.container}) collides with another output"
                else:
                    taken.add(flac.as_posix().casefold())
                    task = replace(task, dest=flac)
            if info is None:
                errors.append(self.emit(FileRecord(path=task.rel.as_posix(), status="error", error=err)))
            else:
                todo.append((task, info))
        return todo, errors

    def skip_record(self, task: FileTask, info: AudioInfo) -> FileRecord | None:
        """A ``skipped`` record when the manifest says the output is up to date, else None."""
        if self.manifest is None or self.options.overwrite:
            return None
        t0 = time.perf_counter()
        try:
            checksum = (lambda: sha256_file(task.src)) if self.options.checksum else None
            current = self.manifest.is_current(task.rel.as_posix(), task.src, task.dest, self.options_key, checksum)
        except OSError:
            return None
        if not current:
            return None
        if self.progress:
            self.progress(info.duration_s)
        return FileRecord(
            **self.base_fields(task, info),
            status="skipped",
            action="skip: up to date",
            seconds=time.perf_counter() - t0,
        )

    def record_manifest(self, task: FileTask, rec: FileRecord) -> None:
        """Remember a finished output so that the next run can skip it."""
        if self.manifest is None or rec.status not in ("cleaned", "no_hum") or self.options.dry_run:
            return
        state = {"size": rec.extra["input_size"], "mtime_ns": rec.extra["input_mtime_ns"]}
        self.manifest.record(task.rel.as_posix(), state, rec.extra["input_sha256"], task.dest, self.options_key)

    def _run_one(self, task: FileTask, info: AudioInfo, engine: BatchEngine) -> FileRecord:
        skipped = self.skip_record(task, info)
        if skipped is not None:
            return skipped
        rec = self.process(task, info, engine)
        try:
            self.record_manifest(task, rec)
        except OSError as exc:
            return replace(rec, status="error", error=f"cannot record manifest: {_one_line(exc)}")
        return rec

    def emit(self, rec: FileRecord) -> FileRecord:
        """Hand a finished record to ``on_record`` (serialised across worker threads)."""
        if self.on_record:
            with self._lock:
                self.on_record(rec)
        return rec

    def estimated_xrt(self) -> float:
        """Rough model-only speed (x real-time at the model rate), from one timed batch of noise and hum."""
        if self._xrt_estimate is None:
            card = self.card
            batch = max(1, min(self.options.batch_size, 8))
            t = np.arange(card.chunk_samples) / card.sample_rate
            rng = np.random.default_rng(0)
            x = 0.05 * rng.standard_normal((batch, card.chunk_samples)) + 0.05 * np.cos(2 * np.pi * 50.0 * t)
            t0 = time.perf_counter()
            self.estimator.estimate(x.astype(np.float32), np.zeros(batch, dtype=np.int64), np.full(batch, 50.0))
            dt = max(time.perf_counter() - t0, 1e-6)
            self._xrt_estimate = batch * card.hop_samples / card.sample_rate / dt
        return self._xrt_estimate

    def base_fields(self, task: FileTask, info: AudioInfo) -> dict[str, Any]:
        """Report fields known before any work: path, format, rate, channels, duration, model, output."""
        return dict(
            path=task.rel.as_posix(),
            format=info.container,
            subtype=info.subtype,
            sample_rate=info.sample_rate,
            channels=info.channels,
            duration_s=info.duration_s,
            model=self.estimator.card.ident,
            output=str(task.dest),
        )

    def process(self, task: FileTask, info: AudioInfo, engine: BatchEngine) -> FileRecord:
        """Detect, clean and write one file (no up-to-date check, no manifest: see :meth:`_run_one`).

        Never raises: failures become an ``error`` record. Finished records carry the input's size,
        mtime and sha256 in ``extra`` for the manifest, wherever the manifest is kept.
        """
        t0 = time.perf_counter()
        base = self.base_fields(task, info)
        opts = self.options
        try:
            src_state = Manifest.input_state(task.src)
            digest = None if opts.dry_run else _hash_in_background(task.src)
            card = self.card
            geom = _Geometry(info.sample_rate, card.sample_rate, card.chunk_samples, card.overlap_samples,
                             opts.segment_seconds)  # fmt: skip
            ctx = _FileContext(task, info, geom, opts.reference_root)
            ctx.channels = [
                _ChannelState(HumDetector(card.sample_rate), HumDetector(card.sample_rate))
                for _ in range(info.channels)
            ]
            _detect(ctx, self.progress, keep=not opts.dry_run)
            dets = [st.detection for st in ctx.channels]
            process = [bool(opts.force or (d is not None and d.has_hum)) for d in dets]
            lead = max(
                (d for d in dets if d is not None and d.has_hum),
                key=lambda d: d.hum_db,
                default=None,
            )
            f0 = lead.f0_hz if lead and lead.f0_hz else math.nan
            harmonics = lead.harmonics if lead else 0
            lines = lead.harmonic_numbers or harmonics if lead else 0
            levels_in = [st.detector.level_db(f0, lines) for st in ctx.channels]
            hum_in = max(levels_in) if levels_in and math.isfinite(f0) else math.nan
            base.update(f0_hz=f0, harmonics=harmonics, hum_db_in=hum_in)
            # hum found in part of the recording only (on every channel that has it): where; the model
            # still sees all of it
            spans = [d.span_s for d in dets if d is not None and d.has_hum]
            parts = [p for p in spans if p is not None]
            where = (min(p[0] for p in parts), max(p[1] for p in parts)) if parts and len(parts) == len(spans) else None
            span = {"hum_span_s": [round(where[0], 1), round(where[1], 1)]} if where else {}
            clean_action = f"clean: hum {where[0]:.0f}-{where[1]:.0f} s" if where else "clean"
            if opts.dry_run:
                action = clean_action if any(process) else "pass through: no hum"
                est = info.duration_s * sum(process) / self.estimated_xrt()
                if self.progress:
                    self.progress(info.duration_s / 2)
                status = "cleaned" if any(process) else "no_hum"
                extra = {"estimated_seconds": round(est, 3), **span}
                return FileRecord(**base, status=status, action=action, seconds=time.perf_counter() - t0, extra=extra)
            assert digest is not None  # started for every run that writes
            if not any(process):
                copy_atomic(task.src, task.dest)
                ident = self._finish_output(task, src_state, digest)
                if opts.provenance:
                    ident["input_audio_md5"] = ident["output_audio_md5"] = audio_md5(info)
                score, note = _score_unchanged(ctx)
                if self.progress:
                    self.progress(info.duration_s / 2)
                return FileRecord(**base, status="no_hum", action="pass through: no hum", hum_db_out=hum_in,
                                  seconds=time.perf_counter() - t0, **_score_fields(score),
                                  extra={**ident, **({"note": note} if note else {})})  # fmt: skip
            clipped, score, note = _clean(ctx, engine, task.dest, process, opts, self.progress)
            ident = self._finish_output(task, src_state, digest)
            if opts.provenance:
                ident["input_audio_md5"] = ctx.input_md5.hexdigest()
                ident["output_audio_md5"] = audio_md5(probe(task.dest))
            ident["stage_seconds"] = {k: round(v, 4) for k, v in ctx.stages.seconds.items()}
            if note:
                ident["note"] = note
            levels_out = [st.meter_out.level_db(f0, lines) for st in ctx.channels]
            hum_out = max(levels_out) if levels_out and math.isfinite(f0) else math.nan
            return FileRecord(**base, status="cleaned", action=clean_action, hum_db_out=hum_out,
                              clipped_samples=clipped, seconds=time.perf_counter() - t0, **_score_fields(score),
                              extra={"channels_cleaned": sum(process), **span, **ident})  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop the batch
            return FileRecord(**base, status="error", error=_one_line(exc), seconds=time.perf_counter() - t0)

    def _finish_output(self, task: FileTask, src_state: dict[str, int], digest: Future[str]) -> dict[str, Any]:
        if self.options.keep_mtime:
            st = os.stat(task.src)
            os.utime(task.dest, ns=(st.st_atime_ns, st.st_mtime_ns))
        return {
            "input_size": src_state["size"],
            "input_mtime_ns": src_state["mtime_ns"],
            "input_sha256": digest.result(),
        }


def _hash_in_background(path: Path) -> Future[str]:
    """The sha256 of ``path`` (for the manifest), computed on a thread of its own from the moment the
    file's work starts (hashlib releases the GIL). Read after the last segment, it was a serial pass
    over the whole input at the end of every file: on a lone long file, the last thing a run did
    while one core idled (0.13 s for 10 min of 48 kHz stereo 24-bit)."""
    future: Future[str] = Future()

    def work() -> None:
        try:
            future.set_result(sha256_file(path))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever reads the result
            future.set_exception(exc)

    threading.Thread(target=work, name="humclean-sha256", daemon=True).start()
    return future


def _score_fields(score: ReferenceScore | None) -> dict[str, float]:
    if score is None:
        return {}
    d = {
        "si_sdr_in": score.si_sdr("in"),
        "si_sdr_out": score.si_sdr("out"),
        "psnr_in": score.psnr("in"),
        "psnr_out": score.psnr("out"),
    }
    d["si_sdr_gain"] = d["si_sdr_out"] - d["si_sdr_in"]
    return d
