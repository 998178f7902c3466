"""On-the-fly training data: random crops of clean audio with fresh, seeded hum mixed in.

All clean audio of a folder is held in RAM as int16 with one scale per file (about 350 MB for the
183-minute training split at 16 kHz). Item ``i`` of epoch ``e`` is a pure function of
``(seed, e, i)``: its crop, hum (recipe ``hum-v1``, or ``hum-v2``, from :mod:`.hum`) and SNR come from a generator
seeded with exactly those numbers, so the data are the same with any number of DataLoader workers,
in any order, and after a resume in the middle of an epoch, while every epoch draws new hum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from humclean.errors import UsageError

from .dataset import clean_files
from .hum import RECIPE_VERSION, mix, render, sample_params

SAMPLE_RATE = 16000
DEFAULT_SNRS_DB = (0.0, 5.0, 10.0, 15.0)
_VAL_SALT = 0x7A1  # separates validation draws from training epochs


def model_rate(module: object) -> int:
    """The rate a model works at: architectures that work below 16 kHz (hum ends near 2.5 kHz) carry
    a ``sample_rate`` attribute; the others use :data:`SAMPLE_RATE`."""
    return int(getattr(module, "sample_rate", SAMPLE_RATE))


def load_mono(path: Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to mono float32 ``[T]`` at ``sample_rate`` (soxr when the rate differs)."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate:
        import soxr

        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


class CleanStore:
    """Every clean file of a folder (recursive), mono at ``sample_rate``, as int16 plus a per-file scale."""

    def __init__(
        self,
        root: Path,
        sample_rate: int = SAMPLE_RATE,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.sample_rate = sample_rate
        files = clean_files(self.root)
        if not files:
            raise UsageError(f"no audio files under {self.root}")
        pieces: list[np.ndarray] = []
        scales: list[float] = []
        for path in files:
            mono = load_mono(path, sample_rate)
            peak = float(np.max(np.abs(mono))) if mono.size else 0.0
            scale = peak / 32767.0 if peak > 0 else 1.0
            pieces.append(np.round(mono / scale).astype(np.int16))
            scales.append(scale)
            if progress:
                progress(1)
        self.paths = files
        self.lengths = np.array([p.shape[0] for p in pieces], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self.scales = np.array(scales, dtype=np.float64)
        self.samples = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
        if int(self.lengths.sum()) == 0:
            raise UsageError(f"the audio files under {self.root} are empty")

    @property
    def seconds(self) -> float:
        return float(self.lengths.sum()) / self.sample_rate

    def __len__(self) -> int:
        return len(self.paths)

    def crop(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """A random ``[n]`` float64 crop, uniform over all samples (zero-padded if a file is short)."""
        pick = int(rng.integers(0, int(self.offsets[-1])))
        f = int(np.searchsorted(self.offsets, pick, side="right") - 1)
        length = int(self.lengths[f])
        start = int(rng.integers(0, length - n + 1)) if length > n else 0
        a = self.offsets[f] + start
        seg = self.samples[a : a + min(n, length)].astype(np.float64) * self.scales[f]
        if seg.shape[0] < n:
            seg = np.concatenate([seg, np.zeros(n - seg.shape[0])])
        return seg


@dataclass(frozen=True)
class MixSettings:
    """How crops are mixed (plain types)."""

    crop_seconds: float = 1.0
    snrs_db: tuple[float, ...] = DEFAULT_SNRS_DB
    no_hum_fraction: float = 0.1
    hum_recipe: str = RECIPE_VERSION


def make_item(
    store: CleanStore,
    rng: np.random.Generator,
    n: int,
    snrs_db: Sequence[float],
    no_hum_fraction: float,
    hum_recipe: str = RECIPE_VERSION,
) -> tuple[np.ndarray, np.ndarray]:
    """One (noisy, clean) float32 pair of length ``n`` drawn with ``rng``."""
    clean = store.crop(rng, n)
    if rng.random() < no_hum_fraction:
        noisy = clean
    else:
        params = sample_params(rng, store.sample_rate, recipe=hum_recipe)
        snr = float(snrs_db[int(rng.integers(0, len(snrs_db)))])
        noisy, _ = mix(clean, render(params, n, store.sample_rate), snr)
    return noisy.astype(np.float32), clean.astype(np.float32)


class HumMixDataset(Dataset):
    """Map-style dataset of ``length`` items per epoch: ``(noisy [T], clean [T])`` float32 tensors.

    Call :meth:`set_epoch` before iterating an epoch (before the DataLoader iterator is created, so
    workers see it); every item is seeded by ``(seed, epoch, index)``.
    """

    def __init__(self, store: CleanStore, length: int, seed: int, settings: MixSettings = MixSettings()) -> None:
        if length < 1:
            raise ValueError("length must be >= 1")
        if not settings.snrs_db:
            raise ValueError("need at least one SNR")
        self.store = store
        self.length = length
        self.seed = seed
        self.settings = settings
        self.n = max(1, int(round(settings.crop_seconds * store.sample_rate)))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        s = self.settings
        noisy, clean = make_item(self.store, rng, self.n, s.snrs_db, s.no_hum_fraction, s.hum_recipe)
        return torch.from_numpy(noisy), torch.from_numpy(clean)


def fixed_set(
    store: CleanStore,
    items: int,
    seconds: float,
    seed: int,
    snrs_db: Sequence[float] = DEFAULT_SNRS_DB,
    hum_recipe: str = RECIPE_VERSION,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic validation set: ``items`` crops of ``seconds``, all with hum, SNRs in turn.

    Returns ``(noisy [N, T], clean [N, T])`` float32.
    """
    n = max(1, int(round(seconds * store.sample_rate)))
    noisy = np.zeros((items, n), np.float32)
    clean = np.zeros((items, n), np.float32)
    for i in range(items):
        rng = np.random.default_rng([seed, _VAL_SALT, i])
        c = store.crop(rng, n)
        params = sample_params(rng, store.sample_rate, recipe=hum_recipe)
        x, _ = mix(c, render(params, n, store.sample_rate), float(snrs_db[i % len(snrs_db)]))
        noisy[i], clean[i] = x, c
    return torch.from_numpy(noisy), torch.from_numpy(clean)
