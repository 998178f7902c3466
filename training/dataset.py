"""Noisy/clean pairs written to disk, like a published dataset (for evaluation and inspection).

Training itself mixes on the fly (fresh hum every epoch); this builder fixes one draw per clean file
and SNR so that a benchmark is the same for every method and every run.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .hum import RECIPE_VERSION, mix, render, sample_params

SPLITS = ("train", "val", "test")
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".mp3"}


@dataclass(frozen=True)
class PairSpec:
    """One noisy/clean pair to write: which clean file, at which SNR and (optionally) pinned hum."""

    clean: Path
    rel: Path
    snr_db: float
    mains_hz: int | None = None
    harmonics: int | None = None
    shape: str | None = None
    tag: str = ""


def file_seed(seed: int, rel: str, *salt: object) -> int:
    """A per-item seed that does not depend on processing order."""
    h = hashlib.sha256(repr((seed, rel) + salt).encode()).digest()
    return int.from_bytes(h[:8], "little")


def split_of(rel: Path) -> str:
    """The split a clean file belongs to: its top folder if named train/val/test, else by hash."""
    if rel.parts and rel.parts[0] in SPLITS:
        return rel.parts[0]
    u = file_seed(0, rel.as_posix()) % 100
    return "train" if u < 80 else "val" if u < 90 else "test"


def clean_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def default_specs(root: Path, snrs: Iterable[float]) -> list[PairSpec]:
    return [PairSpec(p, p.relative_to(root), float(s)) for p in clean_files(root) for s in snrs]


def build_dataset(
    specs: list[PairSpec],
    out_dir: Path,
    seed: int,
    subtype: str = "FLOAT",
    progress: Callable[[int], None] | None = None,
    split: str | None = None,
) -> Path:
    """Write ``out_dir/{split}/noisy/...`` and ``out_dir/{split}/clean/...`` plus ``metadata.csv``.

    ``split`` puts every pair in one split (a benchmark); by default each clean file's split is
    its top folder when that is train/val/test, else drawn from a hash of its path.
    Each pair's noisy file is named ``<stem>__snr<S>[__<tag>].wav`` and its clean twin has the same
    relative path under ``clean/``, so ``humclean run .../noisy --reference .../clean`` pairs them.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in specs:
        data, rate = sf.read(str(spec.clean), dtype="float64", always_2d=True)
        clean = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        rng = np.random.default_rng(file_seed(seed, spec.rel.as_posix(), spec.snr_db, spec.tag))
        params = sample_params(rng, rate, spec.mains_hz, spec.harmonics, spec.shape)
        noisy, _ = mix(clean, render(params, clean.shape[0], rate), spec.snr_db)
        split_name = split or split_of(spec.rel)
        snr_tag = f"{spec.snr_db:g}".replace("-", "m")
        name = f"{spec.rel.stem}__snr{snr_tag}{'__' + spec.tag if spec.tag else ''}.wav"
        inner = spec.rel.relative_to(split_name) if spec.rel.parts[0] == split_name else spec.rel
        rel_out = inner.parent / name
        for kind, sig in (("noisy", noisy), ("clean", clean)):
            path = out_dir / split_name / kind / rel_out
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), sig, rate, subtype=subtype)
        rows.append({
            "split": split_name,
            "clean_path": f"{split_name}/clean/{rel_out.as_posix()}",
            "noisy_path": f"{split_name}/noisy/{rel_out.as_posix()}",
            "source": spec.rel.as_posix(),
            "snr_db": spec.snr_db,
            "mains_hz": params.mains_hz,
            "f0_hz": round(params.f0_hz, 4),
            "harmonics": params.harmonics,
            "shape": params.shape,
            "tag": spec.tag,
            "recipe": RECIPE_VERSION,
            "seed": seed,
        })  # fmt: skip
        if progress:
            progress(1)
    meta = out_dir / "metadata.csv"
    with open(meta, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["split"])
        w.writeheader()
        w.writerows(rows)
    return meta
