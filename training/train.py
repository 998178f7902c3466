"""The training loop: on-the-fly hum mixing, AdamW + cosine decay, resumable checkpoints, validation.

Seed recipe (``unet-seed-v1``): loss ``0.7 * L1(|STFT| of clean estimate, |STFT| of clean)
+ 0.3 * L1(clean estimate, clean)``, both computed on signals divided by the noisy crop's RMS (the
model is level-independent, so loud crops should not dominate the loss) and with an orthonormal
STFT (``normalized=True``, n_fft 1024, hop 256, Hann) so the two terms have comparable scales.
AdamW at 3e-4 with cosine decay to zero over all steps, batch 16, 1-second crops, SNR drawn from
{0, 5, 10, 15} dB, 10 % of crops without hum. Seeds are set for torch, numpy and ``random``.

Files in ``out_dir``:

- ``checkpoint.pt``: everything needed to continue exactly (model, optimiser, scheduler, grad
  scaler, epoch and step, running loss sums, RNG states, config). Written atomically at the end of
  every epoch and every ``checkpoint_every_steps`` steps or ``checkpoint_every_seconds`` seconds.
  It holds numpy/python RNG states, so it is loaded with ``torch.load(weights_only=False)``: this is
  done ONLY for the checkpoint of our own run in ``out_dir``; never point ``out_dir`` at a
  checkpoint from elsewhere. Released weights (zoo) are always loaded with ``weights_only=True``.
- ``best.pt``: a plain ``{name: tensor}`` state dict of the model with the best validation SI-SDR
  (without a validation folder: the latest epoch); ``best.json`` says which epoch that was.
- ``config.json``, ``log.csv`` (one row per epoch) and ``curves.png`` (when matplotlib is installed).

Library code never prints: progress goes to the optional callback as :class:`TrainEvent`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from humclean.errors import UsageError
from humclean.models.registry import build
from humclean.models.torch_estimator import resolve_device

from .data import CleanStore, HumMixDataset, MixSettings, fixed_set, model_rate
from .hum import RECIPE_VERSION, RECIPES

TRAIN_RECIPE = "unet-seed-v1"
# loss name -> recipe name written into config.json and the card
LOSS_RECIPES = {"seed": TRAIN_RECIPE, "sdr": "sdr-v1"}
CHECKPOINT_FORMAT = "humclean-train-v1"
LOG_FIELDS = ("epoch", "step", "train_loss", "val_loss", "val_si_sdr", "seconds", "lr")
# settings that may differ between a run and its resumption (they do not change the result on CPU)
_RESUMABLE_CHANGES = frozenset(
    {"resume", "device", "workers", "amp", "checkpoint_every_steps", "checkpoint_every_seconds"}
)
MAG_WEIGHT, WAVE_WEIGHT = 0.7, 0.3
LOSS_N_FFT, LOSS_HOP = 1024, 256


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on (plain types; paths are stored as strings)."""

    clean_dir: str
    out_dir: str
    val_dir: str | None = None
    arch: str = "spec-unet"
    arch_args: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.01
    crop_seconds: float = 1.0
    snrs_db: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0)
    no_hum_fraction: float = 0.1
    hum_recipe: str = RECIPE_VERSION  # hum-v2: lines also swell on their own (see training.hum)
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    steps_per_epoch: int | None = None  # None: total clean seconds / crop_seconds / batch
    val_items: int = 64
    val_seconds: float = 4.0
    workers: int = 0
    amp: bool = True  # CUDA only: bfloat16 autocast where supported, else float16 + GradScaler
    checkpoint_every_steps: int = 100
    checkpoint_every_seconds: float = 600.0
    loss: str = "seed"  # "seed": unet-seed-v1 (magnitude + waveform L1); "sdr": -SDR of the clean estimate
    init: str | None = None  # zoo model (name, alias or folder) whose weights start a fresh run: fine-tuning

    @property
    def recipe(self) -> str:
        return LOSS_RECIPES[self.loss]

    def __post_init__(self) -> None:
        object.__setattr__(self, "clean_dir", str(self.clean_dir))
        object.__setattr__(self, "out_dir", str(self.out_dir))
        if self.val_dir is not None:
            object.__setattr__(self, "val_dir", str(self.val_dir))
        object.__setattr__(self, "snrs_db", tuple(float(s) for s in self.snrs_db))
        object.__setattr__(self, "arch_args", dict(self.arch_args))
        if self.epochs < 1 or self.batch < 1 or self.lr <= 0 or self.crop_seconds <= 0:
            raise UsageError("need epochs >= 1, batch >= 1, lr > 0 and crop_seconds > 0")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise UsageError("steps_per_epoch must be >= 1")
        if not self.snrs_db or not 0.0 <= self.no_hum_fraction <= 1.0:
            raise UsageError("need at least one SNR and 0 <= no_hum_fraction <= 1")
        if self.hum_recipe not in RECIPES:
            raise UsageError(f"unknown hum recipe {self.hum_recipe!r} (known: {', '.join(RECIPES)})")
        if self.val_items < 0 or self.val_seconds <= 0 or self.workers < 0:
            raise UsageError("need val_items >= 0, val_seconds > 0 and workers >= 0")
        if self.loss not in LOSS_RECIPES:
            raise UsageError(f"unknown loss {self.loss!r} (known: {', '.join(LOSS_RECIPES)})")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["snrs_db"] = list(self.snrs_db)
        return d


@dataclass(frozen=True)
class TrainEvent:
    """A progress report. ``kind``: info, start, step, checkpoint, epoch, done."""

    kind: str
    epoch: int = 0  # 1-based epoch the event belongs to
    epochs: int = 0
    step: int = 0  # optimiser steps done in the whole run
    total_steps: int = 0
    loss: float = math.nan
    lr: float = math.nan
    val_loss: float = math.nan
    val_si_sdr: float = math.nan
    seconds: float = 0.0
    message: str = ""


# --------------------------------------------------------------------------- loss and metrics


def _stft_mag(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    return torch.stft(x, LOSS_N_FFT, LOSS_HOP, window=window, center=True, normalized=True, return_complex=True).abs()


def recipe_loss(estimate: torch.Tensor, clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """Seed-recipe loss of clean estimates ``[B, T]`` against ``clean`` (float32, scale-normalised)."""
    with torch.autocast(device_type=estimate.device.type, enabled=False):
        scale = noisy.float().pow(2).mean(dim=-1, keepdim=True).clamp_min(1e-10).sqrt()
        est, ref = estimate.float() / scale, clean.float() / scale
        window = torch.hann_window(LOSS_N_FFT, device=est.device)
        mag = (_stft_mag(est, window) - _stft_mag(ref, window)).abs().mean()
        wave = (est - ref).abs().mean()
        return MAG_WEIGHT * mag + WAVE_WEIGHT * wave


def sdr_loss(estimate: torch.Tensor, clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """Recipe ``sdr-v1``: mean over items of ``10 log10(|estimate - clean|^2 / |clean|^2)`` (the negative
    SDR in dB; what SI-SDR measures once the hum estimate has the right scale). The floor of
    1e-3 of the noisy crop's energy keeps near-silent crops from dominating."""
    with torch.autocast(device_type=estimate.device.type, enabled=False):
        err = (estimate.float() - clean.float()).pow(2).sum(-1)
        ref = clean.float().pow(2).sum(-1) + 1e-3 * noisy.float().pow(2).sum(-1) + 1e-10
        return (10 * torch.log10(err / ref + 1e-10)).mean()


LOSSES = {"seed": recipe_loss, "sdr": sdr_loss}


def si_sdr_db(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-item SI-SDR in dB of ``[B, T]`` estimates against references (float64 internally)."""
    est, ref = estimate.double(), reference.double()
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


# --------------------------------------------------------------------------- helpers


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _finite(x: float) -> float | None:
    """JSON has no NaN: missing metrics become null."""
    return x if math.isfinite(x) else None


def _plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def init_from(model: nn.Module, spec: str, arch: str) -> str:
    """Copy the weights of zoo model ``spec`` into ``model`` (same architecture); returns its ident.

    Architecture arguments that do not change the parameters may differ (``line_gain`` for one).
    """
    from humclean import zoo
    from humclean.errors import HumcleanError

    try:
        source = zoo.load(spec, "cpu")
    except HumcleanError as exc:
        raise UsageError(f"--init: {exc}") from exc
    module = getattr(source, "module", None)
    if module is None or source.card.arch != arch:
        raise UsageError(f"--init: {spec!r} is a {source.card.arch!r} model, this run trains {arch!r}")
    try:
        inherit = getattr(model, "inherit", None)
        if inherit is not None and type(module) is type(model):
            inherit(module)  # the architecture maps what differs (harmonic-net: window widths)
        else:
            model.load_state_dict(module.state_dict())
    except RuntimeError as exc:
        msg = " ".join(str(exc).split())[:200]
        raise UsageError(f"--init: the weights of {spec!r} do not fit this architecture: {msg}") from exc
    return source.card.ident


def _check_resumable(saved: dict[str, Any], current: dict[str, Any]) -> None:
    saved = {"hum_recipe": RECIPE_VERSION, **saved}  # checkpoints from before the option trained on hum-v1
    diff = sorted(
        k for k in set(saved) | set(current) if k not in _RESUMABLE_CHANGES and saved.get(k) != current.get(k)
    )
    if diff:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in diff)
        raise UsageError(f"cannot resume: the checkpoint was made with different settings ({detail})")


def read_log(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(LOG_FIELDS))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


LOSS_TITLES = {"seed": "loss (0.7 |STFT| L1 + 0.3 wave L1)", "sdr": "loss (-SDR of the clean estimate, dB)"}


def plot_curves(log_path: Path, png_path: Path, loss: str = "seed") -> bool:
    """Training/validation loss and validation SI-SDR per epoch; False when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    rows = read_log(log_path)
    if not rows:
        return False

    def col(name: str) -> list[float]:
        return [float(r[name]) if r.get(name) not in (None, "") else math.nan for r in rows]

    epochs = col("epoch")
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(epochs, col("train_loss"), "o-", label="train")
    ax1.plot(epochs, col("val_loss"), "s-", label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.set_title(LOSS_TITLES.get(loss, f"loss ({loss})"))
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(epochs, col("val_si_sdr"), "o-", color="tab:green")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("dB")
    ax2.set_title("validation SI-SDR")
    ax2.grid(alpha=0.3)
    tmp = png_path.with_name(f".{png_path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, png_path)
    return True


def evaluate(
    model: nn.Module,
    noisy: torch.Tensor,
    clean: torch.Tensor,
    batch: int,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] = recipe_loss,
) -> tuple[float, float]:
    """Mean loss and mean SI-SDR (dB) of the clean estimates over a fixed set ``[N, T]``."""
    was_training = model.training
    model.eval()
    losses: list[float] = []
    scores: list[torch.Tensor] = []
    with torch.inference_mode():
        for i in range(0, noisy.shape[0], batch):
            x = noisy[i : i + batch].to(device)
            y = clean[i : i + batch].to(device)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                hum = model(x)
            est = x - hum.float()
            losses.append(float(loss_fn(est, y, x)) * x.shape[0])
            scores.append(si_sdr_db(est, y).cpu())
    model.train(was_training)
    n = noisy.shape[0]
    return sum(losses) / n, float(torch.cat(scores).mean())


# --------------------------------------------------------------------------- the loop


def train(config: TrainConfig, progress: Callable[[TrainEvent], None] | None = None) -> Path:
    """Train (or resume) a run in ``config.out_dir``; returns that folder.

    Raises :class:`humclean.errors.UsageError` when ``out_dir`` already holds a checkpoint and
    ``resume`` is false, or when the checkpoint was made with different settings.
    """
    cfg = config
    emit = progress or (lambda event: None)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out / "checkpoint.pt", out / "log.csv"
    device = resolve_device(cfg.device)

    saved: dict[str, Any] | None = None
    if ckpt_path.is_file():
        if not cfg.resume:
            raise UsageError(f"{out} already holds a training run; resume it or choose another output folder")
        # our own checkpoint (numpy/python RNG states inside): see the module docstring
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if saved.get("format") != CHECKPOINT_FORMAT:
            raise UsageError(f"{ckpt_path} is not a humclean training checkpoint")
        _check_resumable(saved["config"], cfg.to_dict())

    _seed_all(cfg.seed)
    emit(TrainEvent("info", message=f"loading clean audio from {cfg.clean_dir}"))
    model = build(cfg.arch, cfg.arch_args)
    init_ident = init_from(model, cfg.init, cfg.arch) if cfg.init and saved is None else None
    if init_ident:
        emit(TrainEvent("info", message=f"starting from the weights of {init_ident}"))
    model = model.to(device)
    rate = model_rate(model)
    store = CleanStore(Path(cfg.clean_dir), rate)
    loss_fn = LOSSES[cfg.loss]
    if saved is not None:
        steps_per_epoch = int(saved["steps_per_epoch"])
    else:
        steps_per_epoch = cfg.steps_per_epoch or max(1, int(store.seconds / cfg.crop_seconds / cfg.batch))
    total_steps = steps_per_epoch * cfg.epochs
    settings = MixSettings(cfg.crop_seconds, cfg.snrs_db, cfg.no_hum_fraction, cfg.hum_recipe)
    dataset = HumMixDataset(store, steps_per_epoch * cfg.batch, cfg.seed, settings)

    val: tuple[torch.Tensor, torch.Tensor] | None = None
    val_input_si_sdr = math.nan
    if cfg.val_dir is not None and cfg.val_items > 0:
        emit(TrainEvent("info", message=f"building {cfg.val_items} validation crops from {cfg.val_dir}"))
        val_store = CleanStore(Path(cfg.val_dir), rate)
        val = fixed_set(val_store, cfg.val_items, cfg.val_seconds, cfg.seed, cfg.snrs_db, cfg.hum_recipe)
        val_input_si_sdr = float(si_sdr_db(val[0], val[1]).mean())
        emit(TrainEvent("info", message=f"validation input (noisy) SI-SDR {val_input_si_sdr:.2f} dB"))

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total_steps) / total_steps))
    )
    amp_dtype: torch.dtype | None = None
    if device.type == "cuda" and cfg.amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        torch.backends.cudnn.benchmark = True
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    epoch = step_in_epoch = global_step = 0
    loss_sum, loss_count = 0.0, 0
    best_si_sdr, best_epoch = -math.inf, 0
    elapsed = 0.0
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        epoch, step_in_epoch, global_step = int(saved["epoch"]), int(saved["step_in_epoch"]), int(saved["step"])
        loss_sum, loss_count = float(saved["loss_sum"]), int(saved["loss_count"])
        best_si_sdr, best_epoch = float(saved["best_si_sdr"]), int(saved["best_epoch"])
        elapsed = float(saved["elapsed_seconds"])
        _set_rng_state(saved["rng"])
        del saved
    # rows written after the checkpoint we continue from belong to work that is redone
    log_rows = [r for r in read_log(log_path) if int(r["step"]) <= global_step]
    _write_log(log_path, log_rows)
    if init_ident is None and cfg.init and (out / "config.json").is_file():
        init_ident = json.loads((out / "config.json").read_text()).get("init_model")  # resumed run
    doc = {**cfg.to_dict(), "steps_per_epoch_used": steps_per_epoch, "train_recipe": cfg.recipe}
    if init_ident:
        doc["init_model"] = init_ident
    _atomic_write_text(out / "config.json", json.dumps(doc, indent=2) + "\n")

    session_start = time.monotonic()
    last_ckpt = time.monotonic()

    def seconds() -> float:
        return elapsed + time.monotonic() - session_start

    def checkpoint() -> None:
        nonlocal last_ckpt
        _atomic_torch_save({
            "format": CHECKPOINT_FORMAT,
            "model": _plain_state(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "step": global_step,
            "steps_per_epoch": steps_per_epoch,
            "loss_sum": loss_sum,
            "loss_count": loss_count,
            "best_si_sdr": best_si_sdr,
            "best_epoch": best_epoch,
            "elapsed_seconds": seconds(),
            "rng": _rng_state(),
            "config": cfg.to_dict(),
        }, ckpt_path)  # fmt: skip
        last_ckpt = time.monotonic()

    emit(TrainEvent(
        "start", epoch=epoch + 1, epochs=cfg.epochs, step=global_step, total_steps=total_steps, seconds=elapsed,
        message=f"{len(store)} files, {store.seconds / 60:.1f} min of clean audio; "
        f"{steps_per_epoch} steps/epoch x {cfg.epochs} epochs on {device}"
        + (f" (resuming at step {global_step})" if global_step else ""),
    ))  # fmt: skip

    model.train()
    while epoch < cfg.epochs:
        dataset.set_epoch(epoch)
        loader = DataLoader(
            dataset,
            batch_size=cfg.batch,
            sampler=range(step_in_epoch * cfg.batch, steps_per_epoch * cfg.batch),
            num_workers=cfg.workers,
            pin_memory=device.type == "cuda",
            generator=torch.Generator(),  # keeps the global torch RNG untouched by the loader
        )
        for noisy, clean in loader:
            noisy = noisy.to(device, non_blocking=True)
            clean = clean.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                hum = model(noisy)
            loss = loss_fn(noisy - hum.float(), clean, noisy)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step_in_epoch += 1
            global_step += 1
            loss_value = float(loss.detach())
            loss_sum += loss_value
            loss_count += 1
            if step_in_epoch < steps_per_epoch and (
                global_step % max(1, cfg.checkpoint_every_steps) == 0
                or time.monotonic() - last_ckpt >= cfg.checkpoint_every_seconds
            ):
                checkpoint()
                emit(TrainEvent("checkpoint", epoch=epoch + 1, epochs=cfg.epochs, step=global_step,
                                total_steps=total_steps, seconds=seconds()))  # fmt: skip
            emit(TrainEvent(
                "step", epoch=epoch + 1, epochs=cfg.epochs, step=global_step, total_steps=total_steps,
                loss=loss_value, lr=scheduler.get_last_lr()[0], seconds=seconds(),
            ))  # fmt: skip

        train_loss = loss_sum / max(1, loss_count)
        val_loss = val_si_sdr = math.nan
        if val is not None:
            val_loss, val_si_sdr = evaluate(model, val[0], val[1], cfg.batch, device, amp_dtype, loss_fn)
        epoch += 1
        if val is None or val_si_sdr > best_si_sdr:
            best_si_sdr, best_epoch = (val_si_sdr if val is not None else -math.inf), epoch
            _atomic_torch_save(_plain_state(model), out / "best.pt")
            _atomic_write_text(out / "best.json", json.dumps({
                "epoch": epoch, "step": global_step, "val_loss": _finite(val_loss),
                "val_si_sdr": _finite(val_si_sdr), "train_loss": _finite(train_loss),
                "val_input_si_sdr": _finite(val_input_si_sdr),
                "selected_by": "val_si_sdr" if val is not None else "latest",
            }, indent=2) + "\n")  # fmt: skip
        log_rows.append({
            "epoch": epoch, "step": global_step, "train_loss": f"{train_loss:.6f}",
            "val_loss": f"{val_loss:.6f}", "val_si_sdr": f"{val_si_sdr:.4f}",
            "seconds": f"{seconds():.1f}", "lr": f"{scheduler.get_last_lr()[0]:.3e}",
        })  # fmt: skip
        _write_log(log_path, log_rows)
        step_in_epoch, loss_sum, loss_count = 0, 0.0, 0
        checkpoint()
        plot_curves(log_path, out / "curves.png", cfg.loss)
        emit(TrainEvent(
            "epoch", epoch=epoch, epochs=cfg.epochs, step=global_step, total_steps=total_steps,
            loss=train_loss, lr=scheduler.get_last_lr()[0], val_loss=val_loss, val_si_sdr=val_si_sdr,
            seconds=seconds(),
        ))  # fmt: skip

    emit(TrainEvent("done", epoch=epoch, epochs=cfg.epochs, step=global_step, total_steps=total_steps,
                    seconds=seconds(), message=f"best epoch {best_epoch}"))  # fmt: skip
    return out
