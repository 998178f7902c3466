"""Command line for training: ``humclean train`` and ``humclean export``.

Register with ``main.add_command(train)`` and ``main.add_command(export)`` in :mod:`humclean.cli`.
Heavy imports (torch, the training package) happen inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

SPEC_UNET_DEFAULTS: dict[str, Any] = {"n_fft": 1024, "hop": 256, "base_channels": 32, "depth": 4, "bilinear": True}


def _arch_args(arch: str, base_channels: int, arch_args_json: str | None) -> dict[str, Any]:
    try:
        extra = json.loads(arch_args_json) if arch_args_json else {}
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--arch-args") from exc
    if not isinstance(extra, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--arch-args")
    if arch == "spec-unet":
        return {**SPEC_UNET_DEFAULTS, "base_channels": base_channels, **extra}
    return extra


@click.command()
@click.option(
    "--clean",
    "clean_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of clean audio (searched recursively; any rate, resampled to the model's rate, mono).",
)
@click.option(
    "--val",
    "val_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of clean validation audio (fixed crops with hum, SI-SDR every epoch).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder: checkpoint.pt, best.pt, log.csv, curves.png.",
)
@click.option("--arch", default="spec-unet", show_default=True, help="Architecture name from the registry.")
@click.option(
    "--base-channels",
    default=32,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="U-Net width of the first stage (spec-unet).",
)
@click.option("--arch-args", "arch_args_json", default=None, help="Extra architecture arguments as a JSON object.")
@click.option(
    "--loss",
    default="seed",
    show_default=True,
    type=click.Choice(["seed", "sdr"]),
    help="seed: magnitude+waveform L1 (unet-seed-v1); sdr: negative SDR of the clean estimate (sdr-v1).",
)
@click.option(
    "--hum-recipe",
    default="hum-v1",
    show_default=True,
    # literal: start-up does not import training (a test checks it)
    type=click.Choice(["hum-v1", "hum-v2", "hum-v3", "hum-v4"]),
    help="Synthetic hum to train on. hum-v2: as hum-v1, and on half the hums each line also swells on its own. "
    "hum-v3: as hum-v1, and on a third of the hums the lines are band-limited (a low-cut, a telephone line). "
    "hum-v4: as hum-v3, and half of the series of 20 lines or more run on to 41-120 lines (for models with more "
    "than 40 harmonics).",
)
@click.option(
    "--init",
    "init_model",
    default=None,
    help="Start from the weights of this zoo model (name, alias or folder; same --arch): fine-tuning.",
)
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1))
@click.option("--batch", default=16, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=3e-4, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--crop-seconds", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--resume/--no-resume",
    default=False,
    show_default=True,
    help="Continue the run in --out from its last checkpoint (starts fresh if there is none).",
)
@click.option(
    "--steps-per-epoch",
    default=None,
    type=click.IntRange(1),
    help="Optimiser steps per epoch [default: clean seconds / crop seconds / batch].",
)
@click.option("--val-items", default=64, show_default=True, type=click.IntRange(0))
@click.option(
    "--workers", default=0, show_default=True, type=click.IntRange(0, 64), help="DataLoader worker processes."
)
@click.option(
    "--threads", default=0, show_default=True, type=click.IntRange(0, 256), help="Torch CPU threads (0: default)."
)
@click.option(
    "--checkpoint-every",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="Also checkpoint every N steps (and every 10 minutes).",
)
def train(
    clean_dir: Path,
    val_dir: Path | None,
    out_dir: Path,
    arch: str,
    base_channels: int,
    arch_args_json: str | None,
    loss: str,
    hum_recipe: str,
    init_model: str | None,
    epochs: int,
    batch: int,
    lr: float,
    crop_seconds: float,
    seed: int,
    device: str,
    resume: bool,
    steps_per_epoch: int | None,
    val_items: int,
    workers: int,
    threads: int,
    checkpoint_every: int,
) -> None:
    """Train a hum estimator on clean audio with hum mixed in on the fly."""
    import math

    import torch
    from tqdm import tqdm

    from .errors import HumcleanError, UsageError
    from .training.train import TrainConfig, TrainEvent
    from .training.train import train as run_training

    if threads:
        torch.set_num_threads(threads)
    bar: Any = None

    def on_event(ev: TrainEvent) -> None:
        nonlocal bar
        if ev.kind == "info":
            tqdm.write(f"humclean: {ev.message}", file=sys.stderr)
        elif ev.kind == "start":
            tqdm.write(f"humclean: {ev.message}", file=sys.stderr)
            bar = tqdm(total=ev.total_steps, initial=ev.step, unit="step", dynamic_ncols=True, file=sys.stderr)
        elif ev.kind == "step" and bar is not None:
            bar.update(1)
            bar.set_postfix(epoch=f"{ev.epoch}/{ev.epochs}", loss=f"{ev.loss:.4f}", lr=f"{ev.lr:.2e}", refresh=False)
        elif ev.kind == "epoch":
            val = (
                "" if math.isnan(ev.val_si_sdr) else f", val loss {ev.val_loss:.4f}, val SI-SDR {ev.val_si_sdr:.2f} dB"
            )
            tqdm.write(
                f"humclean: epoch {ev.epoch}/{ev.epochs}: train loss {ev.loss:.4f}{val} ({ev.seconds / 60:.1f} min)",
                file=sys.stderr,
            )
        elif ev.kind == "done" and bar is not None:
            bar.close()

    try:
        config = TrainConfig(
            clean_dir=str(clean_dir),
            val_dir=str(val_dir) if val_dir else None,
            out_dir=str(out_dir),
            arch=arch,
            arch_args=_arch_args(arch, base_channels, arch_args_json),
            epochs=epochs,
            batch=batch,
            lr=lr,
            crop_seconds=crop_seconds,
            hum_recipe=hum_recipe,
            seed=seed,
            device=device,
            resume=resume,
            steps_per_epoch=steps_per_epoch,
            val_items=val_items,
            workers=workers,
            checkpoint_every_steps=checkpoint_every,
            loss=loss,
            init=init_model,
        )
        run_dir = run_training(config, on_event)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        click.echo(f"humclean: interrupted; continue with the same command plus --resume (run: {out_dir})", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except (HumcleanError, KeyError, ValueError) as exc:
        if bar is not None:
            bar.close()
        click.echo(f"humclean: error: {exc}", err=True)
        sys.exit(EXIT_USAGE if isinstance(exc, (UsageError, KeyError, ValueError)) else EXIT_FAILED)
    click.echo(str(run_dir / "best.pt"))


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--to",
    "zoo_folder",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Model folder to write (weights.pt + card.json).",
)
@click.option("--name", required=True, help="Model name written into the card.")
@click.option("--chunk-seconds", default=2.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--overlap-seconds", default=0.25, show_default=True, type=click.FloatRange(min=0))
@click.option("--card", "card_json", default=None, help="Extra card entries as a JSON object.")
@click.option(
    "--average",
    "average_with",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Another run of the same model (repeatable): export the mean of the runs' best weights.",
)
def export(
    run_dir: Path,
    zoo_folder: Path,
    name: str,
    chunk_seconds: float,
    overlap_seconds: float,
    card_json: str | None,
    average_with: tuple[Path, ...],
) -> None:
    """Write a training run's best weights (or, with --average, the mean of several runs') and a model
    card into a zoo folder."""
    from .errors import HumcleanError
    from .training.export import export as run_export

    try:
        extra = json.loads(card_json) if card_json else {}
        if not isinstance(extra, dict):
            raise ValueError("--card must be a JSON object")
        card = run_export(run_dir, zoo_folder, name, extra, chunk_seconds, overlap_seconds, average_with=average_with)
    except (HumcleanError, ValueError, KeyError) as exc:
        click.echo(f"humclean: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(str(card))
