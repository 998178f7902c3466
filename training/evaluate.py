"""Side-by-side evaluation: every method through the same pipeline as ``humclean run``.

The benchmark is built deterministically from a folder of clean audio (one noisy/clean pair per
clean file and SNR, hum drawn from the seeded recipe), then each method cleans the noisy tree with
the clean tree as ``--reference``. Rows are per file and method; the summary gives mean SI-SDR and
PSNR per method and SNR, content type (the clean file's folder: speech, music, ...) and mains
frequency, plus x real-time per method.
"""

from __future__ import annotations

import csv
import math
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from humclean.discover import discover
from humclean.errors import UsageError
from humclean.models.base import HumEstimator, ModelCard
from humclean.pipeline import Pipeline, RunOptions

from .bass import write_bass_clips
from .dataset import PairSpec, build_dataset, clean_files

CONTENT_TYPES = ("speech", "music", "bass")
# Extra conditions beside the standard grid (every clean file x every SNR, hum-v1 drawn at random).
# Each adds one pair per clean file; SNRs cycle through 0/5/10/15 dB unless the condition fixes one.
CONDITIONS = ("snr-5", "buzz40", "fundamental", "bass", "no-harm")
_CYCLE_SNRS = (0.0, 5.0, 10.0, 15.0)


class IdentityEstimator(HumEstimator):
    """Returns no hum: the 'do nothing' row of the table (scores the noisy input itself)."""

    def __init__(self) -> None:
        self.card = ModelCard("identity", 16000, 16000, 2000, arch="identity")

    def estimate(self, chunks: np.ndarray, starts: np.ndarray, f0_hz: np.ndarray) -> np.ndarray:
        return np.zeros_like(chunks, dtype=np.float32)


@dataclass(frozen=True)
class EvalRow:
    method: str
    path: str
    content: str
    snr_db: float
    mains_hz: int
    harmonics: int
    status: str
    condition: str
    si_sdr_in: float
    si_sdr_out: float
    psnr_in: float
    psnr_out: float
    seconds: float


def content_of(rel: Path) -> str:
    for part in rel.parts:
        if part in CONTENT_TYPES:
            return part
    return "other"


def check_conditions(conditions: list[str]) -> None:
    """Raise ValueError (one line) naming any condition not in ``CONDITIONS``."""
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown:
        raise ValueError(f"unknown condition(s) {', '.join(unknown)} (known: {', '.join(CONDITIONS)})")


def condition_specs(
    clean_dir: Path, conditions: list[str], bass_dir: Path, bass_clips: int = 12, bass_seconds: float = 20.0
) -> list[PairSpec]:
    """Pairs for the extra conditions (see ``CONDITIONS``), tagged with the condition's name.

    ``no-harm`` pairs have no hum at all (infinite SNR): the output is scored against the input.
    ``bass`` uses synthetic held notes at and near the mains frequencies instead of the corpus, and
    is run twice: with hum (condition ``bass``) and, under ``no-harm``, without.
    """
    check_conditions(conditions)
    files = [(p, p.relative_to(clean_dir)) for p in clean_files(clean_dir)]
    bass = []
    if {"bass", "no-harm"} & set(conditions):
        bass = [(p, p.relative_to(bass_dir)) for p in write_bass_clips(bass_dir, bass_clips, bass_seconds)]
    specs = []
    for i, (p, rel) in enumerate(files):
        snr = _CYCLE_SNRS[i % len(_CYCLE_SNRS)]
        if "snr-5" in conditions:
            specs.append(PairSpec(p, rel, -5.0, tag="snr-5"))
        if "buzz40" in conditions:
            specs.append(PairSpec(p, rel, snr, harmonics=40, shape="buzz", tag="buzz40"))
        if "fundamental" in conditions:
            specs.append(PairSpec(p, rel, snr, shape="fundamental", tag="fundamental"))
    for i, (p, rel) in enumerate(bass):
        if "bass" in conditions:
            specs.append(PairSpec(p, rel, _CYCLE_SNRS[i % len(_CYCLE_SNRS)], tag="bass"))
    if "no-harm" in conditions:
        specs += [PairSpec(p, rel, math.inf, tag="no-harm") for p, rel in files + bass]
    return specs


def build_benchmark(
    clean_dir: Path,
    work: Path,
    snrs: list[float],
    seed: int,
    conditions: list[str] | None = None,
    bass_clips: int = 12,
    bass_seconds: float = 20.0,
) -> Path:
    """Build (or reuse, when its metadata matches) the noisy/clean benchmark under ``work``."""
    conditions = list(conditions or [])
    specs = [PairSpec(p, p.relative_to(clean_dir), float(s)) for p in clean_files(clean_dir) for s in snrs]
    bass_dir = work.parent / f"bass-source-{bass_clips}x{bass_seconds:g}s"
    specs += condition_specs(clean_dir, conditions, bass_dir, bass_clips, bass_seconds)
    meta = work / "metadata.csv"
    stamp = work / "benchmark.key"
    key = f"{clean_dir.resolve()}|{snrs}|{seed}|{len(specs)}|{conditions}|v3"
    if meta.is_file() and stamp.is_file() and stamp.read_text() == key:
        return meta
    if work.exists():
        shutil.rmtree(work)
    meta = build_dataset(specs, work, seed, split="bench")
    stamp.write_text(key)
    return meta


def method_out(work: Path, method: str) -> Path:
    """Where ``method``'s outputs go under ``work``: a method given as a model folder (``/path/to/model``) gets a
    folder named after it there, never its own path (joined as is, an absolute path would put the outputs, and
    the clean-up before a run, inside the model's folder)."""
    return work / "out" / method.strip("/").replace("/", "__")


def _load_method(name: str, device: str) -> HumEstimator:
    """A method by name: ``identity`` (estimates no hum) or a zoo model (name, alias or folder)."""
    if name == "identity":
        return IdentityEstimator()
    from humclean import zoo

    return zoo.load(name, device)


def evaluate(
    clean_dir: Path,
    methods: list[str],
    snrs: list[float],
    seed: int,
    work: Path,
    device: str = "auto",
    batch_size: int = 0,
    jobs: int = 2,
    progress: Callable[[str], None] | None = None,
    conditions: list[str] | None = None,
    bass_clips: int = 12,
    bass_seconds: float = 20.0,
    threads: int = 0,
    overlap_seconds: float | None = None,
) -> tuple[list[EvalRow], dict[str, float]]:
    """Run every method over the benchmark; returns per-file rows and x real-time per method.

    ``batch_size`` and ``threads`` (0: auto) are decided per method as ``humclean run`` decides them
    (:func:`~humclean.models.torch_estimator.run_settings`), so x real-time is that of a run; this sets
    torch's thread count. ``overlap_seconds``: every method's chunk overlap instead of its card's (as
    ``humclean run --overlap``); one that does not fit a method's chunk raises UsageError before any work."""
    import os

    import torch

    from humclean.models.torch_estimator import run_settings

    estimators = {method: _load_method(method, device) for method in methods}
    if overlap_seconds is not None:  # before any work: every method's chunk must take the overlap
        for method, est in estimators.items():
            try:
                RunOptions(overlap_seconds=overlap_seconds).card_for(est.card)
            except UsageError as exc:
                raise UsageError(f"{method}: {exc}") from None
    meta_path = build_benchmark(clean_dir, work / "bench", snrs, seed, conditions, bass_clips, bass_seconds)
    with open(meta_path, newline="") as f:
        meta = {r["noisy_path"]: r for r in csv.DictReader(f)}
    rows: list[EvalRow] = []
    xrt: dict[str, float] = {}
    splits = sorted({m.split("/", 1)[0] for m in meta})
    for method in methods:
        est = estimators[method]
        settings = run_settings(est, threads, batch_size, os.cpu_count() or 1)
        torch.set_num_threads(settings.torch_threads)
        audio_s = 0.0
        t0 = time.perf_counter()
        for split in splits:
            noisy = work / "bench" / split / "noisy"
            out = method_out(work, method) / split
            if out.exists():
                shutil.rmtree(out)
            tasks, _ = discover([noisy], out)
            opts = RunOptions(jobs=jobs, batch_size=settings.batch_size, model_workers=settings.model_workers,
                              model_processes=settings.model_processes,
                              reference_root=work / "bench" / split / "clean",
                              overlap_seconds=overlap_seconds)  # fmt: skip
            for rec in Pipeline(est, opts).run(tasks):
                m = meta[f"{split}/noisy/{rec.path}"]
                audio_s += rec.duration_s if math.isfinite(rec.duration_s) else 0.0
                rows.append(EvalRow(
                    method=method, path=f"{split}/{rec.path}", content=content_of(Path(m["source"])),
                    snr_db=float(m["snr_db"]), mains_hz=int(m["mains_hz"]), harmonics=int(m["harmonics"]),
                    status=rec.status, condition=m.get("tag") or "standard",
                    si_sdr_in=rec.si_sdr_in, si_sdr_out=rec.si_sdr_out,
                    psnr_in=rec.psnr_in, psnr_out=rec.psnr_out, seconds=rec.seconds,
                ))  # fmt: skip
        xrt[method] = audio_s / max(time.perf_counter() - t0, 1e-9)
        if progress:
            progress(method)
    return rows, xrt


def _mean(vals: list[float]) -> float:
    v = [x for x in vals if math.isfinite(x)]
    return float(np.mean(v)) if v else math.nan


def harmonics_band(k: int) -> str:
    return "1-5" if k <= 5 else "6-20" if k <= 20 else "21-40"


def summary_table(rows: list[EvalRow], xrt: dict[str, float]) -> list[dict[str, object]]:
    """Mean SI-SDR/PSNR per method for the standard grid (all, each SNR, content type, mains frequency,
    number of harmonics) and for each extra condition (``cond=...``); also the worst file and, for
    ``no-harm``, how many files were passed through untouched (their mean is over the touched ones)."""
    groups: dict[tuple[str, str], list[EvalRow]] = defaultdict(list)
    for r in rows:
        if r.condition != "standard":
            groups[(r.method, f"cond={r.condition}")].append(r)
            continue
        for g in ("all", f"snr={r.snr_db:g}", f"content={r.content}", f"mains={r.mains_hz}",
                  f"harmonics={harmonics_band(r.harmonics)}"):  # fmt: skip
            groups[(r.method, g)].append(r)
    table = []

    kinds = ["all", "snr", "content", "mains", "harmonics", "cond"]

    def order(item: tuple[tuple[str, str], list[EvalRow]]) -> tuple[str, int, float, str]:
        (method, group) = item[0]
        kind, _, value = group.partition("=")
        rank = kinds.index(kind) if kind in kinds else len(kinds)
        try:
            return method, rank, float(value), ""
        except ValueError:
            return method, rank, 0.0, value

    for (method, group), rs in sorted(groups.items(), key=order):
        touched = [r for r in rs if r.status != "no_hum"] if group == "cond=no-harm" else rs
        outs = [r.si_sdr_out for r in touched]
        table.append({
            "method": method, "group": group, "files": len(rs),
            "si_sdr_in": round(_mean([r.si_sdr_in for r in rs]), 2),
            "si_sdr_out": round(_mean(outs), 2),
            "min_si_sdr_out": round(min(outs), 2) if outs else math.nan,
            "untouched": sum(r.status == "no_hum" for r in rs),
            "psnr_out": round(_mean([r.psnr_out for r in touched]), 2),
            "x_realtime": round(xrt.get(method, math.nan), 1),
        })  # fmt: skip
    return table


def write_rows(rows: list[EvalRow], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(EvalRow.__dataclass_fields__))
        for r in rows:
            w.writerow([getattr(r, k) for k in EvalRow.__dataclass_fields__])


def plot_bars(table: list[dict[str, object]], path: Path) -> bool:
    """Grouped bar chart (methods by SNR) of mean output SI-SDR; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    methods = sorted({str(r["method"]) for r in table})
    snr_groups = sorted({str(r["group"]) for r in table if str(r["group"]).startswith("snr=")},
                        key=lambda g: float(g.split("=")[1]))  # fmt: skip
    snr_groups += sorted({str(r["group"]) for r in table if str(r["group"]).startswith("cond=")} - {"cond=no-harm"})
    val = {(r["method"], r["group"]): r["si_sdr_out"] for r in table}
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(snr_groups), 4.2))
    width = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        xs = np.arange(len(snr_groups)) + (i - (len(methods) - 1) / 2) * width
        ys = [float(val.get((m, g), math.nan)) for g in snr_groups]  # type: ignore[arg-type]
        bars = ax.bar(xs, ys, width, label=m)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    labels = [f"SNR {g.split('=')[1]} dB" if g.startswith("snr=") else g.split("=")[1] for g in snr_groups]
    ax.set_xticks(np.arange(len(snr_groups)), labels)
    ax.set_ylabel("output SI-SDR (dB)")
    ax.set_title("Hum removal: mean SI-SDR by method, input SNR and extra condition")
    ax.legend(fontsize=8, ncols=min(4, len(methods)))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_spectrograms(
    work: Path, methods: list[str], rel_paths: list[str], out_prefix: Path, max_hz: float = 1000.0
) -> list[Path]:
    """Before/after spectrograms (0 to ``max_hz``) of a few benchmark files: noisy, clean, each method."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    import soundfile as sf

    written = []
    for i, rel in enumerate(rel_paths):
        split, inner = rel.split("/", 1)
        panels = [
            ("noisy input", work / "bench" / split / "noisy" / inner),
            ("clean reference", work / "bench" / split / "clean" / inner),
        ]
        panels += [(m, method_out(work, m) / split / inner) for m in methods if m != "identity"]
        panels = [(t, p) for t, p in panels if p.is_file()]
        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), sharey=True)
        for ax, (title, path) in zip(np.atleast_1d(axes), panels, strict=True):
            x, rate = sf.read(str(path), always_2d=True)
            ax.specgram(x[:, 0], NFFT=8192, Fs=rate, noverlap=6144, cmap="magma", vmin=-160, vmax=-20)
            ax.set_ylim(0, max_hz)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("s")
        np.atleast_1d(axes)[0].set_ylabel("Hz")
        fig.suptitle(rel, fontsize=9)
        fig.tight_layout()
        path = out_prefix.with_name(f"{out_prefix.name}-{i}.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
