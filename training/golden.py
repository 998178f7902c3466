"""The golden set: a fixed, small, synthetic benchmark that every released model is pinned to.

It needs no corpus (synthetic speech-like and music-like signals from :mod:`humclean.example`,
hum from the seeded recipe), so the regression test runs anywhere. ``export`` records each model's
golden SI-SDR on its card; the test re-measures it through the real pipeline.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from humclean.discover import discover
from humclean.example import _musiclike, _speechlike
from humclean.models.base import HumEstimator
from humclean.pipeline import Pipeline, RunOptions

from .hum import mix, render, sample_params

GOLDEN_VERSION = "golden-v1"
RATE = 16000
CONDITIONS = [  # (content, mains, harmonics, shape, snr_db)
    ("speech", 50, 1, "falling", 10.0),
    ("speech", 60, 12, "buzz", 0.0),
    ("music", 50, 25, "falling", 5.0),
    ("music", 60, 40, "buzz", 15.0),
    ("speech", 50, 6, "sparse", 5.0),
    ("music", 60, 3, "falling", 0.0),
]


def write_golden_set(root: Path, seconds: float = 6.0, seed: int = 1234) -> tuple[Path, Path]:
    """Write ``root/noisy`` and ``root/clean`` (FLOAT WAV, 16 kHz); returns both folders."""
    n = int(seconds * RATE)
    for i, (content, mains, harmonics, shape, snr) in enumerate(CONDITIONS):
        rng = np.random.default_rng(seed + i)
        clean = _speechlike(n, RATE, rng) if content == "speech" else _musiclike(n, RATE, rng)
        params = sample_params(rng, RATE, mains, harmonics, shape)
        noisy, _ = mix(clean, render(params, n, RATE), snr)
        name = f"{i:02d}-{content}-{mains}hz-{harmonics}h-snr{snr:g}.wav"
        for kind, sig in (("noisy", noisy), ("clean", clean)):
            (root / kind).mkdir(parents=True, exist_ok=True)
            sf.write(str(root / kind / name), sig, RATE, subtype="FLOAT")
    return root / "noisy", root / "clean"


def golden_si_sdr(estimator: HumEstimator, work: Path | None = None) -> float:
    """Mean output SI-SDR (dB) of ``estimator`` on the golden set, through the real pipeline."""
    with tempfile.TemporaryDirectory() as tmp:
        root = work or Path(tmp)
        noisy, clean = write_golden_set(root / "golden")
        tasks, _ = discover([noisy], root / "out")
        records = Pipeline(estimator, RunOptions(jobs=1, overwrite=True, reference_root=clean)).run(tasks)
    vals = [r.si_sdr_out for r in records if math.isfinite(r.si_sdr_out)]
    if len(vals) != len(CONDITIONS):
        raise RuntimeError(f"golden set: {len(CONDITIONS) - len(vals)} files failed")
    return float(np.mean(vals))
