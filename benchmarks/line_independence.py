"""Quality when hum lines do not swell together (the benchmark's hum recipe makes them).

Recipe ``hum-v1`` scales every line by one slow swell; ``harmonic-v5`` exploits that (its common-envelope
estimate). This draws eight-second crops of the validation split with hum-v1 hum and three variants of the same
hum: every line with its own swell of up to ``--depth`` (no shared one), up to 10 % per line on top of the shared
swell, and up to 10 % per line alone. Each model estimates whole crops (one chunk each, tracker unhinted); prints
mean SI-SDR per hum and the difference to the first model.

    python benchmarks/line_independence.py [--models harmonic-v4,harmonic-v5] [--items 96] [--seed 11]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from humclean.training.data import CleanStore  # noqa: E402
from humclean.training.hum import HumParams, mix, render, sample_params  # noqa: E402

from humclean import zoo  # noqa: E402
from humclean.metrics import si_sdr  # noqa: E402

VAL = ROOT.parent / "shared" / "corpus" / "val"
SNRS_DB = (0.0, 5.0, 10.0, 15.0)


def own_swells(
    params: HumParams, n: int, rate: int, rng: np.random.Generator, depth: float, shared: bool
) -> np.ndarray:
    """``params``' hum with every line scaled by its own swell (0.05-0.5 Hz, up to ``depth``); with ``shared``,
    the recipe's common swell on top. Same fundamental track as :func:`render`."""
    lines = HumParams(**{**params.to_dict(), "am_depth": 0.0, "amplitudes": [0.0] * params.harmonics})
    t = np.arange(n) / rate
    y = np.zeros(n)
    for k, amp in enumerate(params.amplitudes):
        if not amp:
            continue
        one = [0.0] * params.harmonics
        one[k] = amp
        swell = 1 + rng.uniform(0, depth) * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t + rng.uniform(0, 2 * np.pi))
        y += swell * render(HumParams(**{**lines.to_dict(), "amplitudes": one}), n, rate)
    if shared:
        y *= 1 + params.am_depth * np.sin(2 * np.pi * params.am_hz * t + params.am_phase)
    return y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="harmonic-v4,harmonic-v5")
    ap.add_argument("--items", type=int, default=96)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--depth", type=float, default=0.4, help="largest swell of a line on its own")
    args = ap.parse_args()
    names = args.models.split(",")
    models = {name: zoo.load(name, "cpu") for name in names}
    rates = {m.card.sample_rate for m in models.values()} | {m.card.chunk_samples for m in models.values()}
    if len(rates) != 2:
        raise SystemExit("models must share one rate and chunk length (crops are one chunk)")
    card = next(iter(models.values())).card
    rate, n = card.sample_rate, card.chunk_samples
    store = CleanStore(VAL, rate)
    rng = np.random.default_rng(args.seed)
    kinds = ("shared (hum-v1)", f"own <= {args.depth:.0%}", "shared + own <= 10%", "own <= 10%")
    sets: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in kinds}
    for i in range(args.items):
        clean = store.crop(rng, n)
        params = sample_params(rng, rate)
        snr = SNRS_DB[i % len(SNRS_DB)]
        hums = (
            render(params, n, rate),
            own_swells(params, n, rate, np.random.default_rng([args.seed, i, 1]), args.depth, False),
            own_swells(params, n, rate, np.random.default_rng([args.seed, i, 2]), 0.1, True),
            own_swells(params, n, rate, np.random.default_rng([args.seed, i, 2]), 0.1, False),
        )
        for kind, hum in zip(kinds, hums, strict=True):
            noisy, _ = mix(clean, hum, snr)
            sets[kind].append((noisy, clean))
    print(f"{args.items} crops of {n / rate:g} s from {VAL} (seed {args.seed}); mean SI-SDR (dB)")
    print(f"{'hum':22s}" + "".join(f"{name:>14s}" for name in names) + f"   {names[-1]} - {names[0]}")
    for kind, items in sets.items():
        noisy = np.stack([x for x, _ in items])
        scores = []
        for est in models.values():
            hum = np.concatenate(
                [
                    est.estimate(part, np.zeros(len(part), np.int64), np.full(len(part), np.nan))
                    for part in np.array_split(noisy.astype(np.float32), max(1, len(noisy) // 8))
                ]
            )
            scores.append(np.mean([si_sdr(c, x - h) for (x, c), h in zip(items, hum, strict=True)]))
        print(f"{kind:22s}" + "".join(f"{s:14.2f}" for s in scores) + f"   {scores[-1] - scores[0]:+.2f}")


if __name__ == "__main__":
    main()
