"""Command line: ``humclean run``, ``humclean models``, ``humclean example``.

The CLI owns everything a person sees: progress bars, log lines, the summary and exit codes
(0 all good, 1 some file failed, 2 usage error). Heavy imports happen inside the commands.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path

import click

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = logging.getLogger("humclean")


class _TqdmHandler(logging.Handler):
    """Log lines through tqdm.write so they do not tear the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


def _setup_logging(quiet: bool) -> None:
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("humclean: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def _usage(msg: str) -> None:
    click.echo(f"humclean: error: {msg}", err=True)
    sys.exit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "HUMCLEAN"})
@click.version_option(__version__, prog_name="humclean")
def main() -> None:
    """Remove mains hum (50/60 Hz and harmonics) from audio archives without touching anything else."""


# the model's batching and threading, shared by run and evaluate (evaluate runs each method as run would)
_BATCH_SIZE = click.option(
    "--batch-size",
    default=0,
    show_default=True,
    type=click.IntRange(0, 4096),
    help="Chunks per model batch (0: 4 on the CPU, sized from free memory on a GPU).",
)
_THREADS = click.option(
    "--threads",
    default=0,
    show_default=True,
    type=click.IntRange(0, 256),
    help="Torch CPU threads per model call (0: 1 per call, 1 call per core, each in a worker process on Linux).",
)

_OVERLAP = click.option(
    "--overlap",
    "overlap_seconds",
    type=click.FloatRange(0.0),
    help="Seconds neighbouring model chunks overlap [default: the model card's, 1 s for the default]. Overlapping "
    "estimates are averaged: a little better, proportionally slower (2 s: +0.07 dB, 17 % more model time).",
)


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out", "-o", "out", required=True, type=click.Path(path_type=Path), help="Output tree (mirrors SOURCES)."
)
@click.option(
    "--model",
    "-m",
    default="default",
    show_default=True,
    help="Zoo name, alias, built-in (dsp, notch) or model folder.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@_BATCH_SIZE
@click.option(
    "--jobs", "-j", default=2, show_default=True, type=click.IntRange(1, 256), help="Files decoded/encoded in parallel."
)
@_THREADS
@_OVERLAP
@click.option("--include", multiple=True, help="Glob of files to take (repeatable; default: common audio extensions).")
@click.option("--exclude", multiple=True, help="Glob of files to leave out (repeatable).")
@click.option("--dry-run", is_flag=True, help="Probe and detect only; write no audio, report what would happen.")
@click.option("--force", is_flag=True, help="Process channels even where no hum is detected.")
@click.option("--overwrite", is_flag=True, help="Redo outputs that are up to date.")
@click.option("--checksum", is_flag=True, help="Also compare input sha256 when deciding what is up to date.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    help="CSV report path [default: OUT/humclean-report.csv].",
)
@click.option(
    "--reference",
    type=click.Path(path_type=Path, file_okay=False),
    help="Clean references at the same relative paths: adds SI-SDR/PSNR.",
)
@click.option(
    "--segment-seconds",
    default=60.0,
    show_default=True,
    type=click.FloatRange(1.0, 3600.0),
    help="Streaming block length.",
)
@click.option(
    "--format",
    "format_override",
    type=click.Choice(["flac"], case_sensitive=False),
    help="Write lossy inputs as FLAC instead of re-encoding them.",
)
@click.option(
    "--keep-mtime/--no-keep-mtime",
    default=False,
    show_default=True,
    help="Give outputs their input's modification time.",
)
@click.option(
    "--dask", "dask_address", envvar="HUMCLEAN_DASK", help="Dask scheduler address: distribute files over its workers."
)
@click.option("--shard", "shard_spec", help="K/N: process only the K-th of N deterministic parts (job arrays).")
@click.option(
    "--provenance",
    "provenance_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write one provenance JSON for the run (audio MD5s, model sha256, options, mains, hum levels).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, only errors.")
def run(
    sources: tuple[Path, ...],
    out: Path,
    model: str,
    device: str,
    batch_size: int,
    jobs: int,
    threads: int,
    overlap_seconds: float | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    dry_run: bool,
    force: bool,
    overwrite: bool,
    checksum: bool,
    report_path: Path | None,
    reference: Path | None,
    segment_seconds: float,
    format_override: str | None,
    keep_mtime: bool,
    dask_address: str | None,
    shard_spec: str | None,
    provenance_path: Path | None,
    quiet: bool,
) -> None:
    """Clean every recording under SOURCES into the mirrored tree --out."""
    _setup_logging(quiet)
    from .discover import AUDIO_PATTERNS, discover, parse_shard, shard
    from .errors import HumcleanError, UsageError
    from .report import BASE_COLUMNS, DRY_RUN_COLUMNS, REFERENCE_COLUMNS, DestLock, FileRecord, Manifest, ReportWriter

    try:
        tasks, problems = discover(list(sources), out, include or AUDIO_PATTERNS, exclude)
        shard_suffix = ""
        if shard_spec:
            k, n = parse_shard(shard_spec)
            tasks = shard(tasks, k, n)
            shard_suffix = f".shard-{k}-of-{n}"
    except UsageError as exc:
        _usage(str(exc))
    if reference is not None and not reference.is_dir():
        _usage(f"reference directory does not exist: {reference}")

    import torch

    from . import zoo
    from .pipeline import Pipeline, RunOptions

    try:
        estimator = zoo.load(model, device)
        RunOptions(overlap_seconds=overlap_seconds).card_for(estimator.card)
    except (HumcleanError, ValueError) as exc:
        _usage(str(exc))

    from .models.torch_estimator import run_settings

    settings = run_settings(estimator, threads, batch_size, os.cpu_count() or 1)
    torch.set_num_threads(settings.torch_threads)
    lock = None
    if not dry_run:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _usage(f"cannot create output directory {out}: {exc.strerror}")
        if not os.access(out, os.W_OK):
            _usage(f"output directory is not writable: {out}")
        lock = DestLock(out, shard_suffix)
        try:
            if not lock.acquire():
                _usage(f"another humclean run is writing to {out} (lock {lock.path})")
        except OSError as exc:
            _usage(f"cannot lock output directory {out}: {exc.strerror}")
        from .audio_io import cleanup_stale_temps

        cleanup_stale_temps(out)

    columns = BASE_COLUMNS + (DRY_RUN_COLUMNS if dry_run else []) + (REFERENCE_COLUMNS if reference else [])
    writer = None
    if report_path is not None or not dry_run:
        writer = ReportWriter(report_path or out / f"humclean-report{shard_suffix}.csv", columns)
    manifest = Manifest(out / ".humclean" / f"manifest{shard_suffix}.jsonl") if not dry_run else None

    from tqdm import tqdm

    total = sum(_duration_hint(t.src) for t in tasks if not t.error)
    bar = tqdm(total=round(total, 1), unit="s", unit_scale=False, dynamic_ncols=True, file=sys.stderr,
               disable=quiet or not sys.stderr.isatty(), desc="audio", bar_format=None)  # fmt: skip
    done = failed = 0
    t0 = time.perf_counter()
    records: list[FileRecord] = []

    def on_record(rec: FileRecord) -> None:
        nonlocal done, failed
        done += 1
        records.append(rec)
        if rec.status == "error":
            failed += 1
            log.error("%s: %s", rec.path, rec.error)
        if writer:
            writer.add(rec)
        elapsed = time.perf_counter() - t0
        bar.set_postfix_str(f"files {done}/{len(tasks)} failed {failed} {bar.n / max(elapsed, 1e-9):.1f}x RT")

    def progress(seconds: float) -> None:
        bar.update(seconds)

    for p in problems:
        on_record(FileRecord(path=p.split(":", 1)[0], status="error", error=p))

    options = RunOptions(
        dry_run=dry_run, force=force, overwrite=overwrite, checksum=checksum, jobs=jobs,
        batch_size=settings.batch_size, model_workers=settings.model_workers, model_processes=settings.model_processes,
        segment_seconds=segment_seconds, reference_root=reference, format_override=format_override,
        keep_mtime=keep_mtime, provenance=provenance_path is not None and not dry_run, overlap_seconds=overlap_seconds,
    )  # fmt: skip
    pipeline = Pipeline(estimator, options, manifest, on_record, progress)
    try:
        if dask_address:
            from .distributed import run_on_dask

            try:
                run_on_dask(pipeline, tasks, dask_address, model, device)
            except OSError as exc:
                _usage(f"cannot reach Dask scheduler {dask_address}: {exc}")
        else:
            pipeline.run(tasks)
    finally:
        bar.close()
        if writer:
            writer.close()
        if lock:
            lock.release()
    from .report import summarise, write_provenance

    if options.provenance and provenance_path is not None:
        from dataclasses import asdict

        card = estimator.card
        model_doc = {"name": card.name, "ident": card.ident, "sha256": card.sha256, "arch": card.arch,
                     "arch_args": card.arch_args, "sample_rate": card.sample_rate,
                     "device": estimator.device_name, "batch_size": options.batch_size}  # fmt: skip
        opts_doc = {k: v for k, v in asdict(options).items() if k != "provenance"}
        write_provenance(provenance_path, records, model_doc, opts_doc, __version__)
    summary = summarise(records, time.perf_counter() - t0)
    if dry_run:
        _print_dry_run(records)
    if not quiet:
        for line in summary.lines():
            click.echo(line)
        if writer:
            click.echo(f"report     {writer.csv_path}")
    sys.exit(EXIT_FAILED if summary.failed else EXIT_OK)


def _duration_hint(path: Path) -> float:
    try:
        import soundfile as sf

        return float(sf.info(str(path)).duration)
    except Exception:  # noqa: BLE001 - only a progress-bar estimate
        return 0.0


def _print_dry_run(records: list) -> None:
    click.echo(
        f"{'path':<40} {'action':<22} {'rate':>6} {'ch':>2} {'dur s':>8} {'mains':>7} {'hum dB':>7} {'est s':>7}"
    )
    for r in sorted(records, key=lambda r: r.path):
        mains = f"{r.f0_hz:.2f}" if math.isfinite(r.f0_hz) else "-"
        hum = f"{r.hum_db_in:.1f}" if math.isfinite(r.hum_db_in) else "-"
        est = r.extra.get("estimated_seconds", 0.0)
        action = r.action or r.status
        if r.status == "error":
            action = f"error: {r.error}"
        click.echo(f"{r.path:<40} {action:<22} {r.sample_rate:>6} {r.channels:>2} "
                   f"{r.duration_s:>8.1f} {mains:>7} {hum:>7} {est:>7.1f}")  # fmt: skip


@main.group()
def models() -> None:
    """List and describe the models of the zoo."""


@models.command("list")
def models_list() -> None:
    """Every model name, with its alias targets."""
    from . import zoo

    al = zoo.aliases()
    for name in zoo.available():
        tags = [a for a, t in al.items() if t == name]
        click.echo(name + (f"  ({', '.join(tags)})" if tags else ""))


@models.command("show")
@click.argument("name")
def models_show(name: str) -> None:
    """The card of NAME (zoo name, alias or folder) as JSON."""
    import json

    from . import zoo
    from .errors import ModelError

    try:
        card = zoo.describe(name)
    except ModelError as exc:
        _usage(str(exc))
    click.echo(json.dumps(card, indent=2, default=str))


@main.group()
def report() -> None:
    """Work with run reports."""


@report.command("merge")
@click.argument("reports", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--out", "out_csv", required=True, type=click.Path(path_type=Path, dir_okay=False))
def report_merge(reports: tuple[Path, ...], out_csv: Path) -> None:
    """Join shard reports into one CSV (one row per file) and print the totals."""
    from collections import Counter

    from .report import STATUSES, merge_reports

    rows = merge_reports(list(reports), out_csv)
    counts = Counter(r["status"] for r in rows)
    for s in STATUSES:
        click.echo(f"{s:<10} {counts.get(s, 0):>5}")
    click.echo(f"merged     {len(rows)} files into {out_csv}")
    sys.exit(EXIT_FAILED if counts.get("error") else EXIT_OK)


@main.group()
def dataset() -> None:
    """Build noisy/clean datasets from clean audio and synthesised hum."""


@dataset.command("build")
@click.option("--clean", "clean_dir", required=True, type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--snr", default="0,5,10,15", show_default=True, help="Comma-separated SNRs in dB (one pair per file and SNR)."
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--subtype", default="FLOAT", show_default=True, help="WAV subtype of the written pairs.")
def dataset_build(clean_dir: Path, out_dir: Path, snr: str, seed: int, subtype: str) -> None:
    """Write OUT/{train,val,test}/{noisy,clean}/... and OUT/metadata.csv."""
    from tqdm import tqdm

    from .training.dataset import build_dataset, default_specs

    try:
        snrs = [float(s) for s in snr.split(",") if s.strip()]
    except ValueError:
        _usage(f"--snr must be comma-separated numbers, got {snr!r}")
    specs = default_specs(clean_dir, snrs)
    if not specs:
        _usage(f"no audio files under {clean_dir}")
    with tqdm(total=len(specs), unit="pair", disable=not sys.stderr.isatty()) as bar:
        meta = build_dataset(specs, out_dir, seed, subtype=subtype, progress=bar.update)
    click.echo(f"{len(specs)} pairs, metadata in {meta}")


@dataset.command("bass")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option("--count", default=30, show_default=True, type=click.IntRange(1, 10000))
@click.option("--seconds", default=20.0, show_default=True, type=click.FloatRange(min=2.0))
@click.option(
    "--first-seed",
    default=5000,
    show_default=True,
    type=click.IntRange(0),
    help="Seed of the first clip; the evaluation's clips use 1000 onwards, so keep training clear of them.",
)
def dataset_bass(out_dir: Path, count: int, seconds: float, first_seed: int) -> None:
    """Write OUT/bass/*.wav: held bass/organ notes at and near 50/60/100/120 Hz (clean training material
    that teaches a model to leave such notes alone; every third clip is tuned exactly to the mains)."""
    from .training.bass import BENCHMARK_FIRST_SEED, overlaps_benchmark, write_bass_clips

    if overlaps_benchmark(first_seed, count):
        click.echo(
            f"humclean: warning: these seeds overlap the evaluation's bass clips ({BENCHMARK_FIRST_SEED} onwards)",
            err=True,
        )
    paths = write_bass_clips(out_dir, count=count, seconds=seconds, first_seed=first_seed)
    click.echo(f"{len(paths)} clips in {out_dir / 'bass'}")


@main.command()
@click.option("--clean", "clean_dir", required=True, type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--methods",
    default="identity,notch,dsp",
    show_default=True,
    help="Comma-separated: identity, notch, dsp, zoo names or folders.",
)
@click.option("--snr", default="0,5,10,15", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--out",
    "out_csv",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Per-file rows (CSV); the summary goes beside it.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Grouped bar chart (SVG/PNG), needs matplotlib.",
)
@click.option(
    "--work", type=click.Path(path_type=Path, file_okay=False), help="Benchmark and outputs [default: beside --out]."
)
@click.option("--device", default="auto", show_default=True)
@_BATCH_SIZE
@click.option("--jobs", "-j", default=2, show_default=True, type=click.IntRange(1, 256))
@_THREADS
@_OVERLAP
@click.option(
    "--spectrograms", default=3, show_default=True, type=click.IntRange(0, 50), help="Before/after PNGs beside --plot."
)
@click.option(
    "--conditions",
    default="snr-5,buzz40,fundamental,bass,no-harm",
    show_default=True,
    help="Extra conditions beside the SNR grid (comma-separated; empty for none).",
)
def evaluate(clean_dir: Path, methods: str, snr: str, seed: int, out_csv: Path, plot_path: Path | None,
             work: Path | None, device: str, batch_size: int, jobs: int, threads: int,
             overlap_seconds: float | None, spectrograms: int, conditions: str) -> None:  # fmt: skip
    """Build a hum benchmark from clean audio and score every method through the pipeline."""
    import csv

    from .training.evaluate import evaluate as run_eval
    from .training.evaluate import plot_bars, plot_spectrograms, summary_table, write_rows

    snrs = [float(x) for x in snr.split(",") if x.strip()]
    names = [m.strip() for m in methods.split(",") if m.strip()]
    work = work or out_csv.with_suffix(".work")
    conds = [c.strip() for c in conditions.split(",") if c.strip()]
    from .training.evaluate import check_conditions

    try:
        check_conditions(conds)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--conditions") from None
    from .errors import UsageError

    try:
        rows, xrt = run_eval(clean_dir, names, snrs, seed, work, device, batch_size, jobs,
                             progress=lambda m: click.echo(f"done: {m}", err=True), conditions=conds,
                             threads=threads, overlap_seconds=overlap_seconds)  # fmt: skip
    except UsageError as exc:
        _usage(str(exc))
    write_rows(rows, out_csv)
    table = summary_table(rows, xrt)
    summary_csv = out_csv.with_name(out_csv.stem + "-summary.csv")
    with open(summary_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    click.echo(f"{'method':<12} {'group':<18} {'files':>5} {'SI-SDR in':>9} {'SI-SDR out':>10} {'worst':>7} "
               f"{'untouched':>9} {'xRT':>7}")  # fmt: skip
    for r in table:
        click.echo(f"{r['method']:<12} {r['group']:<18} {r['files']:>5} {r['si_sdr_in']:>9} {r['si_sdr_out']:>10} "
                   f"{r['min_si_sdr_out']:>7} {r['untouched']:>9} {r['x_realtime']:>7}")  # fmt: skip
    if plot_path is not None:
        if not plot_bars(table, plot_path):
            click.echo("humclean: matplotlib is not installed; no plot (pip install 'humclean[plot]')", err=True)
        # a few files spread over conditions: the lowest SNR first, speech and music
        std = [r for r in rows if r.condition == "standard"] or rows
        picks = sorted({r.path for r in std if r.snr_db == min(x.snr_db for x in std)})
        picks = picks[:: max(1, len(picks) // max(1, spectrograms))][:spectrograms]
        plot_spectrograms(work, names, picks, plot_path.with_suffix(""))


@main.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--seconds", default=20.0, show_default=True, type=click.FloatRange(1.0, 600.0))
def example(directory: Path, seconds: float) -> None:
    """Write a small example archive (synthetic recordings, some with hum) to DIRECTORY."""
    from .example import write_example_archive

    for path in write_example_archive(directory, seconds):
        click.echo(str(path))


def _register_training_commands() -> None:
    from .train_cli import export, train

    main.add_command(train)
    main.add_command(export)


_register_training_commands()

if __name__ == "__main__":
    main()
