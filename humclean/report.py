"""Per-file records, the resumable JSONL/CSV report, the up-to-date manifest and the run summary."""

from __future__ import annotations

import csv
import json
import math
import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

STATUSES = ("cleaned", "no_hum", "skipped", "error")


@dataclass(frozen=True)
class FileRecord:
    """One row of the report. Floats are NaN where a value does not apply."""

    path: str
    status: str
    error: str = ""
    format: str = ""
    subtype: str = ""
    sample_rate: int = 0
    channels: int = 0
    duration_s: float = math.nan
    f0_hz: float = math.nan
    harmonics: int = 0
    hum_db_in: float = math.nan
    hum_db_out: float = math.nan
    clipped_samples: int = 0
    model: str = ""
    seconds: float = 0.0
    action: str = ""
    output: str = ""
    si_sdr_in: float = math.nan
    si_sdr_out: float = math.nan
    si_sdr_gain: float = math.nan
    psnr_in: float = math.nan
    psnr_out: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


BASE_COLUMNS = [
    "path", "status", "error", "format", "subtype", "sample_rate", "channels", "duration_s", "f0_hz",
    "harmonics", "hum_db_in", "hum_db_out", "clipped_samples", "model", "seconds",
]  # fmt: skip
DRY_RUN_COLUMNS = ["action", "output"]
REFERENCE_COLUMNS = ["si_sdr_in", "si_sdr_out", "si_sdr_gain", "psnr_in", "psnr_out"]
assert set(BASE_COLUMNS + DRY_RUN_COLUMNS + REFERENCE_COLUMNS) <= {f.name for f in fields(FileRecord)}


def _cell(v: Any) -> Any:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.4f}"
    return v


class ReportWriter:
    """Appends a JSONL line per file as it finishes (thread-safe, flushed), writes the CSV at close.

    The CSV is written to a temp sibling and moved into place, so a reader never sees half a report.
    """

    def __init__(self, csv_path: Path, columns: list[str]) -> None:
        self.csv_path = csv_path
        self.jsonl_path = csv_path.with_suffix(".jsonl")
        self.columns = columns
        self.records: list[FileRecord] = []
        self._lock = threading.Lock()
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.jsonl_path, "w", encoding="utf-8")

    def add(self, record: FileRecord) -> None:
        with self._lock:
            self.records.append(record)
            self._jsonl.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
            self._jsonl.flush()

    def close(self) -> None:
        with self._lock:
            self._jsonl.close()
            tmp = self.csv_path.with_name(f".{self.csv_path.name}.humclean-tmp-{os.getpid()}")
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(self.columns)
                for r in sorted(self.records, key=lambda r: r.path):
                    w.writerow([_cell(getattr(r, c)) for c in self.columns])
            os.replace(tmp, self.csv_path)


@dataclass(frozen=True)
class Summary:
    counts: dict[str, int]
    audio_hours: float
    wall_seconds: float
    mean_si_sdr_gain: float

    @property
    def x_realtime(self) -> float:
        return self.audio_hours * 3600 / self.wall_seconds if self.wall_seconds > 0 else math.inf

    @property
    def failed(self) -> int:
        return self.counts.get("error", 0)

    def lines(self) -> list[str]:
        out = ["status     files"]
        out += [f"{s:<10} {self.counts.get(s, 0):>5}" for s in STATUSES]
        out.append(
            f"audio      {self.audio_hours:.3f} h in {self.wall_seconds:.1f} s ({self.x_realtime:.1f}x real-time)"
        )
        if math.isfinite(self.mean_si_sdr_gain):
            out.append(f"SI-SDR     mean gain {self.mean_si_sdr_gain:+.2f} dB")
        return out


def summarise(records: list[FileRecord], wall_seconds: float) -> Summary:
    counts = Counter(r.status for r in records)
    hours = sum(r.duration_s for r in records if math.isfinite(r.duration_s) and r.status != "error") / 3600
    gains = [r.si_sdr_gain for r in records if math.isfinite(r.si_sdr_gain)]
    mean_gain = sum(gains) / len(gains) if gains else math.nan
    return Summary(dict(counts), hours, wall_seconds, mean_gain)


class Manifest:
    """What was produced from what: lets a nightly re-run skip outputs that are up to date.

    One JSON line per finished output in ``DST/.humclean/manifest.jsonl``; the last line for a path
    wins. An entry is current when the input's size and mtime (and, with ``checksum``, its sha256)
    are unchanged, the options key matches, and the output still has the size and mtime recorded.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        # shards of a job array each append to their own manifest; every run reads them all
        siblings = sorted(path.parent.glob("manifest*.jsonl")) if path.parent.is_dir() else []
        for p in [q for q in siblings if q != path] + ([path] if path.is_file() else []):
            with open(p, encoding="utf-8") as f:
                for line in f:
                    try:
                        e = json.loads(line)
                        self.entries[e["rel"]] = e
                    except (ValueError, KeyError):
                        continue  # a line cut by a crash: that file is simply redone
        path.parent.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def input_state(src: Path) -> dict[str, int]:
        st = os.stat(src)
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def is_current(
        self, rel: str, src: Path, dest: Path, options_key: str, sha256: Callable[[], str] | None = None
    ) -> bool:
        """Whether ``dest`` is the output of ``src`` as it is now, made with these options. ``sha256``
        (called only when everything cheaper agrees: it reads the whole input) also compares the
        input's content with the recorded digest."""
        e = self.entries.get(rel)
        if e is None or e.get("options") != options_key:
            return False
        try:
            if self.input_state(src) != e["input"] or not dest.is_file():
                return False
            ost = os.stat(dest)
        except OSError:
            return False
        if {"size": ost.st_size, "mtime_ns": ost.st_mtime_ns} != e["output"]:
            return False
        return sha256 is None or sha256() == e.get("sha256")

    def record(self, rel: str, src_state: dict[str, int], sha256: str, dest: Path, options_key: str) -> None:
        ost = os.stat(dest)
        e = {
            "rel": rel,
            "input": src_state,
            "sha256": sha256,
            "options": options_key,
            "output": {"size": ost.st_size, "mtime_ns": ost.st_mtime_ns},
        }
        with self._lock:
            self.entries[rel] = e
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(e, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())


class DestLock:
    """An exclusive advisory lock on ``DST/.humclean/lock``: two runs never write one tree at once."""

    def __init__(self, dest_root: Path, suffix: str = "") -> None:
        self.path = dest_root / ".humclean" / f"lock{suffix}"
        self._fd: int | None = None

    def acquire(self) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def merge_reports(paths: list[Path], out: Path) -> list[dict[str, str]]:
    """Join shard reports (CSV) into one, one row per path (a later report wins), sorted by path."""
    rows: dict[str, dict[str, str]] = {}
    columns: list[str] = []
    for p in paths:
        with open(p, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for c in reader.fieldnames or []:
                if c not in columns:
                    columns.append(c)
            for r in reader:
                rows[r["path"]] = r
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.humclean-tmp-{os.getpid()}")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for key in sorted(rows):
            w.writerow(rows[key])
    os.replace(tmp, out)
    return [rows[k] for k in sorted(rows)]


def write_provenance(
    path: Path, records: list[FileRecord], model: dict[str, Any], options: dict[str, Any], version: str
) -> None:
    """One provenance JSON for the run: tool, model identity, options and, per output, the input's
    sha256, input and output audio MD5, mains frequency and hum levels before and after."""
    keep = ("input_sha256", "input_audio_md5", "output_audio_md5")
    files = [
        {
            "path": r.path,
            "output": r.output,
            "status": r.status,
            **{k: r.extra[k] for k in keep if k in r.extra},
            "f0_hz": r.f0_hz,
            "harmonics": r.harmonics,
            "hum_db_in": r.hum_db_in,
            "hum_db_out": r.hum_db_out,
            "clipped_samples": r.clipped_samples,
        }
        for r in sorted(records, key=lambda r: r.path)
        if r.status in ("cleaned", "no_hum")
    ]
    for f in files:
        for k, v in list(f.items()):
            if isinstance(v, float) and not math.isfinite(v):
                f[k] = None
    doc = {"tool": "humclean", "version": version, "model": model, "options": options, "files": files}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.humclean-tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
