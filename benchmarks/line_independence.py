"""Quality when hum lines do not swell together (the benchmark's hum recipe makes them).

Recipe ``hum-v1`` scales every line by one slow swell; ``harmonic-v5`` exploits that (its common-envelope
estimate). This draws eight-second crops of the validation split with hum-v1 hum and three variants of the same
hum: every line with its own swell of up to ``--depth`` (no shared one), up to 10 % per line on top of the shared
swell, and up to 10 % per line alone. Each model estimates whole crops (one chunk each, tracker unhinted); prints
mean SI-SDR per hum and the difference to the first model.

    python benchmarks/line_independence.py [--models harmonic-v4,harmonic-v5,harmonic-v6] [--items 96] [--seed 11]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from humclean.training.data import CleanStore  # noqa: E402
from humclean.training.hum import HumParams, mix, own_swells, render, sample_params  # noqa: E402

from humclean import zoo  # noqa: E402
from humclean.metrics import si_sdr  # noqa: E402

VAL = ROOT.parent / "shared" / "corpus" / "val"
SNRS_DB = (0.0, 5.0, 10.0, 15.0)


def with_own_swells(params: HumParams, rng: np.random.Generator, depth: float, shared: bool) -> HumParams:
    """``params`` with every line given its own swell (up to ``depth``, as recipe hum-v2 draws and renders
    them); without ``shared``, no common swell."""
    extra = own_swells(rng, params.harmonics, depth)
    return replace(params, extra=extra, am_depth=params.am_depth if shared else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="harmonic-v4,harmonic-v5,harmonic-v6")
    ap.add_argument("--items", type=int, default=96)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--depth", type=float, default=0.4, help="largest swell of a line on its own")
    args = ap.parse_args()
    names = args.models.split(",")
    models = {name: zoo.load(name, "cpu") for name in names}
    shapes = {(m.card.sample_rate, m.card.chunk_samples) for m in models.values()}
    if len(shapes) != 1:
        raise SystemExit("models must share one rate and chunk length (crops are one chunk)")
    ((rate, n),) = shapes
    store = CleanStore(VAL, rate)
    rng = np.random.default_rng(args.seed)
    kinds = ("shared (hum-v1)", f"own <= {args.depth:.0%}", "shared + own <= 10%", "own <= 10%")
    sets: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in kinds}
    for i in range(args.items):
        clean = store.crop(rng, n)
        params = sample_params(rng, rate)
        snr = SNRS_DB[i % len(SNRS_DB)]
        variants = (
            params,
            with_own_swells(params, np.random.default_rng([args.seed, i, 1]), args.depth, False),
            with_own_swells(params, np.random.default_rng([args.seed, i, 2]), 0.1, True),
            with_own_swells(params, np.random.default_rng([args.seed, i, 2]), 0.1, False),
        )
        hums = [render(p, n, rate) for p in variants]
        for kind, hum in zip(kinds, hums, strict=True):
            noisy, _ = mix(clean, hum, snr)
            sets[kind].append((noisy, clean))
    print(f"{args.items} crops of {n / rate:g} s from {VAL} (seed {args.seed}); mean SI-SDR (dB)")
    print(f"{'hum':22s}" + "".join(f"{name:>14s}" for name in names) + f"   {names[-1]} - {names[0]}")
    for kind, items in sets.items():
        parts = np.array_split(np.stack([x for x, _ in items]).astype(np.float32), max(1, len(items) // 8))
        scores = []
        for est in models.values():
            hum = np.concatenate(
                [est.estimate(part, np.zeros(len(part), np.int64), np.full(len(part), np.nan)) for part in parts]
            )
            scores.append(np.mean([si_sdr(c, x - h) for (x, c), h in zip(items, hum, strict=True)]))
        print(f"{kind:22s}" + "".join(f"{s:14.2f}" for s in scores) + f"   {scores[-1] - scores[0]:+.2f}")


if __name__ == "__main__":
    main()
