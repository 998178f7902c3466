"""Shared fixtures: real audio written under tmp_path, and the shared corpus when it is present."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "manifest.csv").is_file():
        pytest.skip("shared corpus not available")
    return CORPUS


def write_audio(path: Path, data: np.ndarray, rate: int, subtype: str = "PCM_24", fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, subtype=subtype, format=fmt)
    return path


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (for byte-identity checks)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def noise(n: int, channels: int, seed: int, level: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = level * rng.standard_normal((n, channels))
    return x[:, 0] if channels == 1 else x
