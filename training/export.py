"""Export a training run's best weights into a zoo folder (``weights.pt`` + ``card.json``).

The card records the architecture and its plain-type arguments, the audio and chunking parameters
the pipeline uses, the training data, hum recipe, training recipe and config, and a ``metrics``
dict left for the measured benchmark numbers.
"""

from __future__ import annotations

import json
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
) -> Path:
    """Write ``run_dir/best.pt`` as zoo model ``name`` into ``zoo_folder``; returns the card path.

    ``extra_card`` entries are merged into the card last (they win over the defaults written here).
    """
    run_dir, zoo_folder = Path(run_dir), Path(zoo_folder)
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{run_dir} is not a training run (config.json: {exc})") from exc
    best_path = run_dir / "best.pt"
    if not best_path.is_file():
        raise UsageError(f"{run_dir} has no best.pt yet (no epoch finished)")
    best_info: dict[str, Any] = {}
    if (run_dir / "best.json").is_file():
        best_info = json.loads((run_dir / "best.json").read_text())
    epochs_done = 0
    log = run_dir / "log.csv"
    if log.is_file():
        epochs_done = max(0, len(log.read_text().strip().splitlines()) - 1)

    state = torch.load(best_path, map_location="cpu", weights_only=True)
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
        },
        "metrics": {},
        **(extra_card or {}),
    }
    card_path = save(module, card, zoo_folder, extra, half=half)
    if measure_golden:
        record_golden(zoo_folder)
    return card_path


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
