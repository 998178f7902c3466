"""Scale-out on a Dask distributed cluster.

Files are distributed one task each over the cluster's workers. Every worker process loads the
model once and keeps one :class:`BatchEngine`, so the files it runs concurrently (its threads)
share the model's batches just as on a single machine. The client probes every input first,
decides what is up to date, writes the report and the manifest as results arrive, and so stays
resumable exactly like a local run. A task whose worker dies is rescheduled by Dask; a file whose
second attempt also fails is reported as an error. Outputs are written through temp files on the
workers, so a dead worker never leaves a partial file under a final name.

SRC and DST must be the same paths on every worker (shared storage).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .audio_io import AudioInfo
from .batching import BatchEngine
from .discover import FileTask
from .pipeline import Pipeline, RunOptions
from .report import FileRecord

_WORKER_STATE: dict[tuple[Any, ...], tuple[Pipeline, BatchEngine]] = {}
_WORKER_LOCK = threading.Lock()


def _worker_pipeline(model: str, device: str, options: RunOptions) -> tuple[Pipeline, BatchEngine]:
    """One loaded model and one batch engine per worker process and configuration."""
    key = (model, device, options)
    with _WORKER_LOCK:
        if key not in _WORKER_STATE:
            from . import zoo

            estimator = zoo.load(model, device)
            # the model's calls stay in this process's threads (``model_processes`` does not apply): a
            # Dask worker is a daemonic process, which may not fork workers of its own (see ``forked``)
            engine = BatchEngine(estimator, options.batch_size, workers=options.model_workers).__enter__()
            _WORKER_STATE[key] = (Pipeline(estimator, options), engine)
        return _WORKER_STATE[key]


def process_on_worker(task: FileTask, info: AudioInfo, model: str, device: str, options: RunOptions) -> FileRecord:
    """Runs on a Dask worker: clean one file with the worker's shared engine."""
    pipeline, engine = _worker_pipeline(model, device, options)
    return pipeline.process(task, info, engine)


def run_on_dask(
    pipeline: Pipeline,
    tasks: list[FileTask],
    address: str | Any,
    model: str,
    device: str,
    retries: int = 1,
    client_factory: Callable[[Any], Any] | None = None,
) -> list[FileRecord]:
    """Process ``tasks`` on the cluster at ``address`` (or an existing ``distributed.Client``).

    ``pipeline`` is the client-side pipeline: it probes, checks the manifest, emits records and
    records finished outputs. ``model`` and ``device`` are resolved again on each worker.
    """
    from distributed import Client, as_completed

    client = address if isinstance(address, Client) else (client_factory or Client)(address)
    try:
        todo, records = pipeline.probe_tasks(tasks)
        futures = {}
        for task, info in todo:
            skipped = pipeline.skip_record(task, info)
            if skipped is not None:
                records.append(pipeline.emit(skipped))
                continue
            fut = client.submit(
                process_on_worker, task, info, model, device, pipeline.options, retries=retries, pure=False
            )
            futures[fut] = (task, info)
        for fut in as_completed(list(futures)):
            task, info = futures[fut]
            try:
                rec = fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker costs this file, not the run
                rec = FileRecord(
                    **pipeline.base_fields(task, info),
                    status="error",
                    error=f"worker failed twice: {type(exc).__name__}",
                )
            else:
                if pipeline.progress and rec.status != "error":
                    pipeline.progress(info.duration_s)
                pipeline.record_manifest(task, rec)
            records.append(pipeline.emit(rec))
        return records
    finally:
        if client is not address:
            client.close()
