"""Model zoo: names -> estimators.

A released model is a folder holding ``card.json`` (architecture name and plain-type arguments,
audio and chunking parameters, training provenance, measured metrics, sha256 of the weights) and
the weights file. Weights are verified against the card's sha256 and loaded with
``torch.load(weights_only=True)``: a checkpoint is a plain dict of tensors and cannot run code.
Built-in methods that need no weights (``dsp``, ``notch``) are zoo entries too, and
``model_zoo/aliases.json`` maps aliases such as ``default`` to a name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ModelError
from .models.base import HumEstimator, ModelCard

BUILTIN = ("dsp", "notch")
CARD_NAME = "card.json"
_CARD_KEYS = ("name", "sample_rate", "chunk_samples", "overlap_samples")


def zoo_dir() -> Path:
    """Directory of the installed zoo (``humclean.model_zoo``)."""
    return Path(str(resources.files("humclean.model_zoo")))


def aliases() -> dict[str, str]:
    path = zoo_dir() / "aliases.json"
    if not path.is_file():
        return {}
    return {str(k): str(v) for k, v in json.loads(path.read_text()).items()}


def released() -> list[str]:
    """Names of the model folders in the zoo, sorted."""
    return sorted(p.parent.name for p in zoo_dir().glob(f"*/{CARD_NAME}"))


def available() -> list[str]:
    return list(BUILTIN) + released()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _folder_for(spec: str) -> Path | None:
    """Zoo names win over same-named local folders; anything with a slash is a path."""
    path = Path(spec)
    if path.name == CARD_NAME and path.is_file():
        return path.parent
    if "/" not in spec and (zoo_dir() / spec / CARD_NAME).is_file():
        return zoo_dir() / spec
    if (path / CARD_NAME).is_file():
        return path
    return None


def read_card(folder: Path) -> dict[str, Any]:
    try:
        card = json.loads((folder / CARD_NAME).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read model card in {folder}: {exc}") from exc
    missing = [k for k in _CARD_KEYS + ("arch", "weights", "sha256") if k not in card]
    if missing:
        raise ModelError(f"model card {folder / CARD_NAME} lacks {', '.join(missing)}")
    return card


def describe(spec: str) -> dict[str, Any]:
    """The card of a model name, alias or folder, as a plain dict (built-ins describe themselves)."""
    spec = aliases().get(spec, spec)
    if spec in BUILTIN:
        est = _builtin(spec)
        return {**asdict(est.card), "builtin": True}
    folder = _folder_for(spec)
    if folder is None:
        raise ModelError(f"unknown model {spec!r} (available: {', '.join(available())})")
    return read_card(folder)


def _builtin(name: str) -> HumEstimator:
    if name == "dsp":
        from .models.dsp import DspCanceller

        return DspCanceller()
    from .models.notch import NotchComb

    return NotchComb()


def load(spec: str, device: str = "auto") -> HumEstimator:
    """Resolve a model name, alias, folder or ``card.json`` path to a ready estimator."""
    resolved = aliases().get(spec, spec)
    if resolved in BUILTIN:
        return _builtin(resolved)
    folder = _folder_for(resolved)
    if folder is None:
        raise ModelError(f"unknown model {spec!r} (available: {', '.join(available())})")
    card = read_card(folder)
    weights = (folder / card["weights"]).resolve()
    if folder.resolve() not in weights.parents:
        raise ModelError(f"model card {folder / CARD_NAME} points outside its folder")
    if not weights.is_file():
        raise ModelError(f"weights file missing: {weights}")
    digest = sha256_file(weights)
    if digest != card["sha256"]:
        raise ModelError(f"sha256 mismatch for {weights}: card says {card['sha256'][:12]}, file is {digest[:12]}")

    import torch

    from .models.registry import build
    from .models.torch_estimator import TorchEstimator, resolve_device

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        module = build(card["arch"], card.get("arch_args", {}))
        module.load_state_dict(state["state_dict"] if "state_dict" in state else state)
        dev = resolve_device(device)
    except Exception as exc:  # noqa: BLE001 - weights_only refusals (UnpicklingError) and any malformed file
        msg = " ".join(str(exc).split())[:200]
        raise ModelError(f"cannot load model {spec!r}: {type(exc).__name__}: {msg}") from exc
    extra = {k: v for k, v in card.items() if k not in _CARD_KEYS + ("arch", "arch_args", "sha256")}
    mcard = ModelCard(
        name=card["name"],
        sample_rate=int(card["sample_rate"]),
        chunk_samples=int(card["chunk_samples"]),
        overlap_samples=int(card["overlap_samples"]),
        arch=card["arch"],
        arch_args=dict(card.get("arch_args", {})),
        sha256=digest,
        extra=extra,
    )
    return TorchEstimator(module, mcard, dev)


def save(module: Any, card: ModelCard, folder: Path, extra: dict[str, Any] | None = None, half: bool = False) -> Path:
    """Write ``module``'s weights (a plain tensor dict) and a card to ``folder``; returns the card path.

    ``half`` stores floating-point tensors as float16 (half the size in the repository); loading
    casts them back to the module's float32 parameters.
    """
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "weights.pt"
    state = {
        k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in module.state_dict().items()
    }
    torch.save({"state_dict": state}, weights)
    doc: dict[str, Any] = {
        "name": card.name,
        "arch": card.arch,
        "arch_args": card.arch_args,
        "sample_rate": card.sample_rate,
        "chunk_samples": card.chunk_samples,
        "overlap_samples": card.overlap_samples,
        "weights": weights.name,
        "weights_dtype": "float16" if half else "float32",
        "sha256": sha256_file(weights),
        **(extra or {}),
    }
    path = folder / CARD_NAME
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
