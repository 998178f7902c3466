"""Buzz past the 40th line: a hum series that runs on to several kHz (dimmers, rectifiers, bad grounding).

The hum recipe (and the default model) stop at 40 lines, 2.0-2.4 kHz. For each clean file of a corpus split,
a hum-v1 buzz of 40 lines (SNR 0/5/10/15 dB in turn) is added as it is (``lines40``) and with its series
continued to ``lines`` (default 100, kept below 7.9 kHz) by :func:`humclean.training.hum.extend_series`, set to the
same SNR. Every method runs through the real pipeline (``humclean run --reference``); prints mean SI-SDR, per
content, and the worst file.

    python benchmarks/wide_buzz.py [--methods default,dsp] [--split test] [--lines 100]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
from band_limited import RATE, SNRS_DB, programme, run
from humclean.training.hum import extend_series, mix, render, sample_params


def build(split: str, lines: int, work: Path, seed: int) -> None:
    """Write ``work/lines40/{in,ref}`` and ``work/lines{lines}/{in,ref}`` (KIND/NAME.wav, float, 16 kHz)."""
    rng = np.random.default_rng(seed)
    for i, path, x in programme(split):
        params = sample_params(rng, RATE, harmonics=40, shape="buzz")
        top = min(lines, int((RATE / 2 - 100) // params.f0_hz))
        wide = extend_series(np.random.default_rng([seed, i]), params, top)
        rel = f"{path.parent.name}/{path.stem}.wav"
        for cond, hum in (("lines40", params), (f"lines{lines}", wide)):
            noisy, _ = mix(x, render(hum, x.size, RATE), SNRS_DB[i % len(SNRS_DB)])
            for sub, y in (("in", noisy), ("ref", x)):
                (work / cond / sub / rel).parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(work / cond / sub / rel), y, RATE, subtype="FLOAT")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="default,dsp")
    ap.add_argument("--split", default="test")
    ap.add_argument("--lines", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/humclean-wide-buzz"))
    args = ap.parse_args()
    work = args.work / args.split
    build(args.split, args.lines, work, args.seed)
    print(f"{'hum':<9} {'method':<22} {'cleaned':>8} {'in':>6} {'SI-SDR':>7} {'speech':>7} {'music':>7} {'worst':>6}")
    for cond in ("lines40", f"lines{args.lines}"):
        for method in args.methods.split(","):
            tag = method.strip("/").replace("/", "__")
            rows = run(method, work / cond / "in", work / cond / "out" / tag, work / cond / "ref")
            out = {r["path"]: float(r["si_sdr_out"]) for r in rows}
            by = {k: [v for p, v in out.items() if p.startswith(k)] for k in ("speech", "music")}
            cleaned = sum(r["status"] == "cleaned" for r in rows)
            print(
                f"{cond:<9} {method:<22} {cleaned:>4}/{len(rows):<3} "
                f"{np.mean([float(r['si_sdr_in']) for r in rows]):>6.2f} {np.mean(list(out.values())):>7.2f} "
                f"{np.mean(by['speech']):>7.2f} {np.mean(by['music']):>7.2f} {min(out.values()):>6.1f}"
            )


if __name__ == "__main__":
    main()
