"""Hum that runs through part of a recording only: a unit switched on or off mid-take, two transfers spliced.

Builds takes of about 90 s (three files of a corpus split end to end), adds hum (recipe hum-v1) switched on at
40 % of each take or off at 60 % (in turn), at SNR 0/5/10/15 dB over the part where it runs, and runs each
method through the real pipeline (``humclean run`` with ``--reference``). Prints per method: how many takes were
cleaned (the rest passed through untouched: hum not detected), mean SI-SDR, and the error (output minus clean,
dB re the programme, pooled over the cleaned takes: summed error power over summed programme power) in three
places: the hum-free part (more than 2 s from the switch), the 4 s around the switch, and the hum part (more
than 2 s from it); and how far the part of the recording that the report names (``hum_span_s``) lies from the
true one.

    python benchmarks/switched_hum.py [--methods harmonic-v11,dsp] [--split test] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from humclean.training.hum import render, sample_params  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
SNRS_DB = (0.0, 5.0, 10.0, 15.0)
RATE = 16000


def build(split: str, work: Path, seed: int) -> list[dict]:
    """Write the takes (noisy under ``work/in``, clean under ``work/ref``); returns one dict per take."""
    rng = np.random.default_rng(seed)
    takes: list[dict[str, Any]] = []
    for kind in ("speech", "music"):
        files = sorted((CORPUS / split / kind).glob("*.ogg"))
        for i in range(0, len(files) - 2, 3):
            parts = [sf.read(p, dtype="float64")[0] for p in files[i : i + 3]]
            x = np.concatenate([p if p.ndim == 1 else p.mean(axis=1) for p in parts])
            n = x.size
            t = np.arange(n) / RATE
            on = len(takes) % 2 == 0
            switch_s = n / RATE * (0.4 if on else 0.6)
            part = (t >= switch_s) == on
            hum = render(sample_params(rng, RATE), n, RATE) * part
            snr = SNRS_DB[len(takes) // 2 % len(SNRS_DB)]  # each SNR with a switch on and a switch off
            g = math.sqrt(float(np.mean(x[part] ** 2)) / float(np.mean(hum[part] ** 2))) / 10 ** (snr / 20)
            rel = f"{kind}/take-{i // 3:02d}.wav"
            for sub, y in (("in", x + g * hum), ("ref", x)):
                (work / sub / rel).parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(work / sub / rel), y, RATE, subtype="FLOAT")
            takes.append({"rel": rel, "switch_s": switch_s, "on": on, "snr": snr})
    return takes


def pooled_db(pairs: list[tuple[float, float]]) -> float:
    """Summed error power over summed programme power, in dB (-inf when every error is exactly 0)."""
    err = sum(e for e, _ in pairs)
    return 10 * math.log10(err / sum(c for _, c in pairs)) if err > 0 else float("-inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="harmonic-v11,dsp")
    ap.add_argument("--split", default="test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/humclean-switched"))
    args = ap.parse_args()
    takes = build(args.split, args.workdir, args.seed)
    print(f"{len(takes)} takes of about 90 s ({args.split} split), hum in 40 % (switched on) or 60 % (off)")
    print(
        f"{'method':<14} {'cleaned':>8} {'in':>6} {'SI-SDR':>7} {'hum-free':>9} {'switch':>7} {'hum part':>9}"
        f" {'part named':>10}   (error, dB; the named part's ends: mean / worst distance, s)"
    )
    for method in args.methods.split(","):
        out = args.workdir / "out" / method.replace("/", "_")
        cmd = ["humclean", "run", str(args.workdir / "in"), "--out", str(out), "-m", method, "--overwrite", "-q"]
        subprocess.run(cmd + ["--reference", str(args.workdir / "ref")], check=True)
        with open(out / "humclean-report.csv", newline="") as f:
            rows = {r["path"]: r for r in csv.DictReader(f)}
        with open(out / "humclean-report.jsonl") as f:
            spans = {r["path"]: r["extra"].get("hum_span_s") for r in map(json.loads, f)}
        cleaned, sdr_in, sdr = 0, [], []
        free: list[tuple[float, float]] = []
        near: list[tuple[float, float]] = []
        hum: list[tuple[float, float]] = []
        ends: list[float] = []
        for take in takes:
            row = rows[take["rel"]]
            cleaned += row["status"] == "cleaned"
            sdr_in.append(float(row["si_sdr_in"]))
            sdr.append(float(row["si_sdr_out"]))
            y, _ = sf.read(str(out / take["rel"]))
            c, _ = sf.read(str(args.workdir / "ref" / take["rel"]))
            t = np.arange(c.size) / RATE
            away = np.abs(t - take["switch_s"]) > 2.0
            in_part = (t >= take["switch_s"]) == take["on"]
            for pairs, mask in ((free, away & ~in_part), (near, ~away), (hum, away & in_part)):
                if row["status"] == "cleaned":  # a take passed through is counted under "cleaned" only
                    pairs.append((float(np.sum((y[mask] - c[mask]) ** 2)), float(np.sum(c[mask] ** 2))))
            span = spans.get(take["rel"])
            if span:
                true = (take["switch_s"], c.size / RATE) if take["on"] else (0.0, take["switch_s"])
                ends.append(max(abs(span[0] - true[0]), abs(span[1] - true[1])))
        named = f"{np.mean(ends):.1f} / {max(ends):.1f}" if ends else "-"
        print(
            f"{method:<14} {cleaned:>4}/{len(takes):<3} {np.mean(sdr_in):>6.2f} {np.mean(sdr):>7.2f} "
            f"{pooled_db(free):>9.1f} {pooled_db(near):>7.1f} {pooled_db(hum):>9.1f} {named:>10}  ({len(ends)} named)"
        )
    (args.workdir / "takes.json").write_text(json.dumps(takes, indent=1))


if __name__ == "__main__":
    main()
