"""Throughput: where the time goes, per method and per stage, next to a plain decode+encode copy.

Builds an archive, by default of 48 kHz stereo 24-bit WAV only (the speed goal's format: two ordinary
files and one long one); ``--mixed`` adds a 44.1 kHz stereo FLAC and a 16 kHz mono WAV. Then measures in
the same run:
  - copy: decode + encode of every file through humclean's own audio I/O (the floor any method pays);
  - each method through the real pipeline (``humclean run`` semantics, --force so every channel is
    processed), with per-stage seconds from the report (decode, resample, model wait, overlap-add,
    encode, detect) and the batch engine's pure model seconds;
  - peak memory of a child process running the long file alone (its RSS, and the summed PSS of it and
    its model worker processes).
Each of ``--repeat`` rounds times the copy and every method once; the fastest round of each counts.
Prints seconds, x real-time and the ratio to the copy. Usage:

    python benchmarks/throughput.py --methods default,floor,dsp,notch --minutes 2 --long-minutes 30

The speed goal: ``default`` at most 4x the copy on 48 kHz stereo 24-bit WAV ("vs copy" column).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
from long_file_memory import run as run_child
from long_file_memory import same_shape


def build_archive(root: Path, minutes: float, long_minutes: float, mixed: bool) -> float:
    """Write the archive; returns its total duration in seconds."""
    rng = np.random.default_rng(0)
    specs = [
        ("wav48/a.wav", 48000, 2, "PCM_24", "WAV"),
        ("wav48/b.wav", 48000, 2, "PCM_24", "WAV"),
    ]
    if mixed:
        specs += [("flac44/c.flac", 44100, 2, "PCM_16", "FLAC"), ("mono16/d.wav", 16000, 1, "PCM_16", "WAV")]
    total = 0.0
    for rel, rate, ch, subtype, fmt in specs + [("long/long.wav", 48000, 2, "PCM_24", "WAV")]:
        seconds = (long_minutes if rel.startswith("long") else minutes) * 60
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        total += seconds
        if same_shape(path, int(seconds * rate), rate, ch, subtype):
            continue  # reuse an archive of the same shape (a different --minutes rebuilds it)
        with sf.SoundFile(str(path), "w", rate, ch, subtype, format=fmt) as f:
            done, n = 0, int(seconds * rate)
            while done < n:
                k = min(rate * 30, n - done)
                t = (done + np.arange(k)) / rate
                hum = 0.03 * np.cos(2 * np.pi * 50.02 * t) + 0.01 * np.cos(2 * np.pi * 150.06 * t + 1)
                x = 0.05 * rng.standard_normal((k, ch)) + hum[:, None]
                f.write(x if ch > 1 else x[:, 0])
                done += k
    return total


def copy_baseline(src: Path, dst: Path) -> float:
    """Decode + encode every file with humclean's audio I/O; returns wall seconds."""
    from humclean.audio_io import AtomicWriter, BlockReader, probe

    t0 = time.perf_counter()
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        info = probe(path)
        out = dst / path.relative_to(src)
        with BlockReader(info) as reader, AtomicWriter(out, info, dither_seed=0) as writer:
            for block in reader.blocks(1 << 18):
                writer.write(block)
            writer.commit()
    return time.perf_counter() - t0


def run_method(
    method: str, src: Path, dst: Path, jobs: int, batch: int, device: str = "auto"
) -> tuple[float, dict[str, float], float]:
    """(wall seconds, per-stage seconds summed over files, pure model seconds) for one method."""
    from humclean import zoo
    from humclean.discover import discover
    from humclean.pipeline import Pipeline, RunOptions

    tasks, _ = discover([src], dst)
    if method == "floor":
        # the pipeline with a model that costs nothing (identity at 8 kHz): decode twice, detect,
        # resample both ways, subtract, encode; what any method pays on top of the copy
        from humclean.training.evaluate import IdentityEstimator

        from humclean.models.base import ModelCard

        estimator = IdentityEstimator()
        estimator.card = ModelCard("floor", 8000, 64000, 8000, arch="identity")
    else:
        estimator = zoo.load(method, device)
    # the CLI's --batch-size 0 and --threads 0 policies: batch, torch threads per call, engine workers
    import os

    import torch

    from humclean.models.torch_estimator import run_settings

    settings = run_settings(estimator, 0, batch, os.cpu_count() or 1)
    torch.set_num_threads(settings.torch_threads)
    options = RunOptions(
        force=True, overwrite=True, jobs=jobs, batch_size=settings.batch_size,
        model_workers=settings.model_workers, model_processes=settings.model_processes,
    )  # fmt: skip
    pipe = Pipeline(estimator, options)
    t0 = time.perf_counter()
    records = pipe.run(tasks)
    wall = time.perf_counter() - t0
    stages: dict[str, float] = defaultdict(float)
    for r in records:
        assert r.status == "cleaned", (r.path, r.error)
        for k, v in r.extra.get("stage_seconds", {}).items():
            stages[k] += v
    return wall, dict(stages), (pipe.engine_stats.model_seconds if pipe.engine_stats else float("nan"))


def peak_memory_long(long_file: Path, out: Path, method: str, device: str = "auto") -> tuple[float, float]:
    """(peak RSS of the main process, peak summed PSS with its model worker processes), MB, of a child
    cleaning the long file alone (every channel processed)."""
    rss, pss, _ = run_child(long_file, out, method, ("--force", "--device", device))
    return rss, pss


def _rounds(seconds: list[float]) -> str:
    return " ".join(f"{s:.2f}" for s in seconds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="default,floor,dsp,notch", help="zoo names; 'floor': a zero-cost model")
    ap.add_argument("--minutes", type=float, default=2.0, help="length of each ordinary file")
    ap.add_argument("--long-minutes", type=float, default=30.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=0, help="0: what humclean run picks")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the fastest of each counts")
    ap.add_argument("--mixed", action="store_true", help="add 44.1 kHz FLAC and 16 kHz mono files")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (as humclean run)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/humclean-throughput"))
    args = ap.parse_args()
    src = args.workdir / ("archive-mixed" if args.mixed else "archive")
    audio_s = build_archive(src, args.minutes, args.long_minutes, args.mixed)
    methods = [m for m in args.methods.split(",") if m]
    # each round times the copy and every method once; the fastest of the rounds counts (the run
    # least disturbed by the machine's other work), for the copy as for the methods
    copies: list[float] = []
    runs: dict[str, list[tuple[float, dict[str, float], float]]] = defaultdict(list)
    for _ in range(args.repeat):
        shutil.rmtree(args.workdir / "out", ignore_errors=True)
        copies.append(copy_baseline(src, args.workdir / "out" / "copy"))
        for method in methods:
            out = args.workdir / "out" / method
            runs[method].append(run_method(method, src, out, args.jobs, args.batch_size, args.device))
    copy_s = min(copies)
    n_files = sum(1 for p in src.rglob("*") if p.is_file())
    kind = "mixed formats" if args.mixed else "48 kHz stereo 24-bit WAV"
    print(f"archive: {audio_s / 60:.1f} min of audio in {n_files} files ({kind}); best of {args.repeat} rounds")
    name_w = max([10, *map(len, methods)])  # columns stay aligned for longer names (a model folder)
    print(f"{'method':<{name_w}} {'seconds':>8} {'x RT':>7} {'vs copy':>8}   stages (s, summed over files)")
    print(f"{'copy':<{name_w}} {copy_s:>8.1f} {audio_s / copy_s:>7.1f} {1.0:>8.2f}   rounds: {_rounds(copies)}")
    results = {}
    for method in methods:
        wall, stages, model_s = min(runs[method], key=lambda r: r[0])
        stage_txt = " ".join(f"{k}={v:.1f}" for k, v in sorted(stages.items()))
        ratio = wall / copy_s
        rounds = _rounds([r[0] for r in runs[method]])
        row = f"{method:<{name_w}} {wall:>8.1f} {audio_s / wall:>7.1f} {ratio:>8.2f}"
        print(f"{row}   {stage_txt} engine={model_s:.1f}")
        if args.repeat > 1:
            print(f"{'':<{name_w + 27}}rounds: {rounds}")
        results[method] = {
            "seconds": wall,
            "x_realtime": audio_s / wall,
            "ratio_to_copy": wall / copy_s,
            "stages": stages,
            "rounds": [r[0] for r in runs[method]],
        }
    first = [m for m in methods if m != "floor"][0]
    rss, pss = peak_memory_long(src / "long" / "long.wav", args.workdir / "out" / "rss", first, args.device)
    print(f"{args.long_minutes:.0f}-min 48 kHz stereo file alone with {first}: peak RSS {rss:.0f} MB (main process), "
          f"peak PSS {pss:.0f} MB (with model workers)")  # fmt: skip
    doc = {"copy_seconds": copy_s, "copy_rounds": copies, "audio_seconds": audio_s, "methods": results}
    doc["peak_rss_mb"] = rss
    doc["peak_pss_mb"] = pss
    (args.workdir / "throughput.json").write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
