"""Export a training run's best weights into a zoo folder (``weights.pt`` + ``card.json``).

The card records the architecture and its plain-type arguments, the audio and chunking parameters
the pipeline uses, the training data, hum recipe, training recipe and config, and a ``metrics``
dict left for the measured benchmark numbers.

With ``average_with``, the weights are the plain mean of several runs' best weights (a "model soup",
Wortsman et al. 2022): fine-tunes of one model on different hum recipes stay in one basin of the loss,
and their mean keeps what each learned at the cost of one model. Every run must train the same
architecture with the same arguments; the card lists each run averaged in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from humclean.errors import UsageError
from humclean.models.base import ModelCard
from humclean.models.registry import build
from humclean.zoo import save

from .data import model_rate
from .hum import RECIPE_VERSION
from .train import TRAIN_RECIPE

# A 1024-point STFT model needs little context: 2 s chunks, 0.25 s cross-faded on each side.
DEFAULT_CHUNK_SECONDS = 2.0
DEFAULT_OVERLAP_SECONDS = 0.25


def export(
    run_dir: Path,
    zoo_folder: Path,
    name: str,
    extra_card: dict[str, Any] | None = None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    measure_golden: bool = True,
    half: bool = True,
    average_with: Sequence[Path] = (),
) -> Path:
    """Write ``run_dir/best.pt`` as zoo model ``name`` into ``zoo_folder``; returns the card path.

    ``extra_card`` entries are merged into the card last (they win over the defaults written here).
    ``average_with``: more runs whose best weights are averaged with ``run_dir``'s (see the module
    docstring); the card's training section describes ``run_dir``.
    """
    run_dir, zoo_folder = Path(run_dir), Path(zoo_folder)
    config, best_info, epochs_done = _run_info(run_dir)
    state = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
    averaged: list[dict[str, Any]] = []
    if average_with:
        states = [state]
        for other in [Path(p) for p in average_with]:
            other_config, other_best, _ = _run_info(other)
            if (other_config["arch"], other_config["arch_args"]) != (config["arch"], config["arch_args"]):
                raise UsageError(
                    f"{other} trains {other_config['arch']} {json.dumps(other_config['arch_args'])}, "
                    f"{run_dir} {config['arch']} {json.dumps(config['arch_args'])}: only the same model averages"
                )
            states.append(torch.load(other / "best.pt", map_location="cpu", weights_only=True))
            averaged.append(_run_summary(other, other_config, other_best))
        averaged.insert(0, _run_summary(run_dir, config, best_info))
        state = average_states(states)
    module = build(config["arch"], config["arch_args"])
    module.load_state_dict(state)
    module.eval()

    rate = model_rate(module)
    chunk = int(round(chunk_seconds * rate))
    overlap = int(round(overlap_seconds * rate))
    card = ModelCard(
        name=name,
        sample_rate=rate,
        chunk_samples=chunk,
        overlap_samples=overlap,
        arch=config["arch"],
        arch_args=dict(config["arch_args"]),
    )
    extra: dict[str, Any] = {
        "parameters": sum(p.numel() for p in module.parameters()),
        "training": {
            "clean_data": config.get("clean_dir"),
            "val_data": config.get("val_dir"),
            "hum_recipe": config.get("hum_recipe", RECIPE_VERSION),
            "train_recipe": config.get("train_recipe", TRAIN_RECIPE),
            "epochs_planned": config.get("epochs"),
            "epochs_done": epochs_done,
            "best_epoch": best_info.get("epoch"),
            "best_val_si_sdr_db": best_info.get("val_si_sdr"),
            "config": {k: v for k, v in config.items() if k not in ("resume", "device", "workers")},
            **({"averaged_runs": averaged} if averaged else {}),
        },
        "metrics": {},
        **(extra_card or {}),
    }
    card_path = save(module, card, zoo_folder, extra, half=half)
    if measure_golden:
        record_golden(zoo_folder)
    return card_path


def _run_info(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], int]:
    """A run's config, its best.json (empty if absent) and the number of epochs logged."""
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{run_dir} is not a training run (config.json: {exc})") from exc
    if not (run_dir / "best.pt").is_file():
        raise UsageError(f"{run_dir} has no best.pt yet (no epoch finished)")
    best_info: dict[str, Any] = {}
    if (run_dir / "best.json").is_file():
        best_info = json.loads((run_dir / "best.json").read_text())
    epochs_done = 0
    log = run_dir / "log.csv"
    if log.is_file():
        epochs_done = max(0, len(log.read_text().strip().splitlines()) - 1)
    return config, best_info, epochs_done


def _run_summary(run_dir: Path, config: dict[str, Any], best_info: dict[str, Any]) -> dict[str, Any]:
    return {
        "run": str(run_dir),
        "init_model": config.get("init_model"),
        "hum_recipe": config.get("hum_recipe", RECIPE_VERSION),
        "best_epoch": best_info.get("epoch"),
        "best_val_si_sdr_db": best_info.get("val_si_sdr"),
    }


def average_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of state dicts with the same keys and shapes (float32 sums, each tensor back
    in its own dtype); integer entries (counters) must agree and are kept."""
    first = states[0]
    if any(set(s) != set(first) for s in states):
        raise UsageError("the runs' weights have different entries: only the same model averages")
    out: dict[str, torch.Tensor] = {}
    for key, value in first.items():
        values = [s[key] for s in states]
        if any(v.shape != value.shape for v in values):
            raise UsageError(f"weights differ in shape at {key}: only the same model averages")
        if value.is_floating_point():
            out[key] = (sum(v.float() for v in values) / len(values)).to(value.dtype)
        elif all(torch.equal(v, value) for v in values):
            out[key] = value
        else:
            raise UsageError(f"integer entry {key} differs between the runs")
    return out


def record_golden(zoo_folder: Path) -> float:
    """Measure the model's golden-set SI-SDR (CPU) and write it into its card's metrics."""
    from humclean import zoo

    from .golden import GOLDEN_VERSION, golden_si_sdr

    value = round(golden_si_sdr(zoo.load(str(zoo_folder), "cpu")), 2)
    card_path = Path(zoo_folder) / zoo.CARD_NAME
    card = json.loads(card_path.read_text())
    card.setdefault("metrics", {})["golden_si_sdr"] = value
    card["metrics"]["golden_set"] = GOLDEN_VERSION
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return value
