"""Band-limited recordings: hum and programme through a recording chain's filters (not in the hum recipe).

Field recorders' low-cut switches, small loudspeakers and microphones, telephone lines: the chain filters the
programme and the hum alike, so the hum's fundamental is often far weaker than its 3rd to 6th harmonics, or
gone. For each clean file of a corpus split, hum (recipe hum-v1, SNR 0/5/10/15 dB in turn, set before the
filter) is added and the mix goes through each chain; the reference is the clean file through the same chain.
Every method runs through the real pipeline (``humclean run --reference``). Also runs the filtered clean files
without hum (do no harm: how many pass untouched, and the worst output-vs-input SI-SDR of the rest).

Chains: ``lowcut80`` (2nd-order high-pass at 80 Hz), ``lowcut150`` (4th order at 150 Hz), ``phone`` (4th-order
band-pass 300-3400 Hz, written at 8 kHz), ``none`` (the recipe's own case, for comparison).

    python benchmarks/band_limited.py [--methods default,dsp] [--split test] [--chains lowcut80,lowcut150,phone,none]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from humclean.training.hum import mix, render, sample_params
from scipy.signal import butter, sosfilt

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
RATE = 16000
SNRS_DB = (0.0, 5.0, 10.0, 15.0)
CHAINS = {
    "lowcut80": (butter(2, 80, "highpass", fs=RATE, output="sos"), RATE),
    "lowcut150": (butter(4, 150, "highpass", fs=RATE, output="sos"), RATE),
    "phone": (butter(4, [300, 3400], "bandpass", fs=RATE, output="sos"), 8000),
    "none": (None, RATE),
}


def programme(split: str) -> Iterator[tuple[int, Path, np.ndarray]]:
    """``(index, path, mono float64 at RATE)`` for each clean file of ``split``: speech, then music."""
    files = sorted((CORPUS / split / "speech").glob("*.ogg")) + sorted((CORPUS / split / "music").glob("*.ogg"))
    for i, path in enumerate(files):
        x, sr = sf.read(str(path), dtype="float64")
        x = x.mean(axis=1) if x.ndim > 1 else x
        yield i, path, (soxr.resample(x, sr, RATE) if sr != RATE else x)


def build(split: str, chain: str, work: Path, seed: int) -> None:
    """Write ``work/{in,ref,clean}/KIND/NAME.wav`` for one chain: noisy, its reference, the filtered clean file."""
    sos, rate = CHAINS[chain]
    rng = np.random.default_rng(seed)
    for i, path, x in programme(split):
        noisy, _ = mix(x, render(sample_params(rng, RATE), x.size, RATE), SNRS_DB[i % len(SNRS_DB)])
        rel = f"{path.parent.name}/{path.stem}.wav"
        for sub, y in (("in", noisy), ("ref", x)):
            if sos is not None:
                y = sosfilt(sos, y)
            if rate != RATE:
                y = soxr.resample(y, RATE, rate)
            (work / sub / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(work / sub / rel), y, rate, subtype="FLOAT")


def run(method: str, src: Path, out: Path, ref: Path | None) -> list[dict[str, str]]:
    cmd = ["humclean", "run", str(src), "--out", str(out), "-m", method, "--overwrite", "-q"]
    subprocess.run(cmd + (["--reference", str(ref)] if ref else []), check=False)
    with open(out / "humclean-report.csv", newline="") as f:
        return list(csv.DictReader(f))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="default,dsp")
    ap.add_argument("--split", default="test")
    ap.add_argument("--chains", default="lowcut80,lowcut150,phone,none")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/humclean-band"))
    args = ap.parse_args()
    print(
        f"{'chain':<10} {'method':<14} {'cleaned':>8} {'in':>6} {'SI-SDR':>7} {'speech':>7} {'music':>7}"
        f" {'worst':>6}   no hum: {'untouched':>9} {'worst':>6}"
    )
    for chain in args.chains.split(","):
        work = args.work / args.split / chain
        build(args.split, chain, work, args.seed)
        for method in args.methods.split(","):
            tag = method.strip("/").replace("/", "__")
            rows = run(method, work / "in", work / "out" / tag, work / "ref")
            clean_rows = run(method, work / "ref", work / "out-clean" / tag, work / "ref")
            out = {r["path"]: float(r["si_sdr_out"]) for r in rows}
            by = {k: [v for p, v in out.items() if p.startswith(k)] for k in ("speech", "music")}
            cleaned = sum(r["status"] == "cleaned" for r in rows)
            touched = [float(r["si_sdr_out"]) for r in clean_rows if r["status"] != "no_hum"]
            print(
                f"{chain:<10} {method:<14} {cleaned:>4}/{len(rows):<3} "
                f"{np.mean([float(r['si_sdr_in']) for r in rows]):>6.2f} {np.mean(list(out.values())):>7.2f} "
                f"{np.mean(by['speech']):>7.2f} {np.mean(by['music']):>7.2f} {min(out.values()):>6.1f}"
                f"            {len(clean_rows) - len(touched):>4}/{len(clean_rows):<4} "
                f"{min(touched) if touched else float('nan'):>6.1f}"
            )


if __name__ == "__main__":
    main()
