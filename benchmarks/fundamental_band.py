"""Mostly-fundamental hum: how much of the error sits on the hum line, and how much programme shares its band.

Runs ``humclean evaluate`` with the ``fundamental`` condition only (the test split by default: one file per
clean file, hum whose harmonics are 30-50 dB below its fundamental), then, per file, follows the hum's own
fundamental (its phase, from the hum the benchmark added) and measures, in dB re the programme:
  - ``prog@line``: the programme within +-0.5 Hz of the moving line (where the hum's own swell, up to 0.5 Hz,
    lives: no filter can take the hum there without taking this programme with it);
  - ``err@line``: the output's error within that band, and ``err`` the whole error (``1 / SI-SDR``);
  - where the whole error lies: within 3 Hz of the fundamental (``f0+-3``), within 3 Hz of harmonics 2 to 40
    (``h2-40``), elsewhere (``rest``);
  - ``no line error``: the SI-SDR the output would have if the error within 0.5 Hz of the line were zero.
Prints the mean per content (speech, music) and the worst files.

    python benchmarks/fundamental_band.py [--methods default] [--split test] [--work /tmp/humclean-fundamental]
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
from humclean.training.evaluate import method_out

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
BAND_HZ = 0.5


def line_phase(hum: np.ndarray, rate: int, f0: float) -> np.ndarray:
    """Phase of the hum's fundamental: its analytic signal, band-passed to within 3 Hz of ``f0``."""
    spec = np.fft.fft(hum)
    f = np.fft.fftfreq(hum.size, 1 / rate)
    return np.angle(np.fft.ifft(spec * (np.abs(f - f0) < 3.0)))


def band_power(x: np.ndarray, phase: np.ndarray, rate: int, band_hz: float) -> float:
    """Mean power of ``x`` within ``band_hz`` of the line whose phase is ``phase`` (both sides of a real signal)."""
    base = np.fft.fft(x * np.exp(-1j * phase))
    f = np.fft.fftfreq(x.size, 1 / rate)
    return 2 * float(np.mean(np.abs(np.fft.ifft(base * (np.abs(f) <= band_hz))) ** 2))


def db(v: float) -> float:
    return 10 * math.log10(max(v, 1e-30))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="default")
    ap.add_argument("--split", default="test")
    ap.add_argument("--work", type=Path, default=Path("/tmp/humclean-fundamental"))
    args = ap.parse_args()
    out_csv = args.work / "results.csv"
    subprocess.run(
        ["humclean", "evaluate", "--clean", str(CORPUS / args.split), "--methods", args.methods, "--snr", "0"]
        + ["--conditions", "fundamental", "--spectrograms", "0", "--work", str(args.work), "--out", str(out_csv)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    bench = args.work / "bench"
    with open(bench / "metadata.csv", newline="") as f:
        f0_of = {r["noisy_path"]: float(r["f0_hz"]) for r in csv.DictReader(f)}
    with open(out_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["condition"] == "fundamental"]
    print(
        f"{'method':<14} {'content':<8} {'files':>5} {'SI-SDR':>7} {'prog@line':>10} {'err@line':>9} {'err':>6}"
        f" {'f0+-3':>6} {'h2-40':>6} {'rest':>6} {'no line error':>14}   (dB re programme; mean over files)"
    )
    for method in args.methods.split(","):
        per: dict[str, list[tuple[float, ...]]] = {}
        worst: list[tuple[float, str, tuple[float, ...]]] = []
        for r in (r for r in rows if r["method"] == method):
            rel = r["path"].removeprefix("bench/")
            clean, rate = sf.read(str(bench / "bench" / "clean" / rel))
            noisy, _ = sf.read(str(bench / "bench" / "noisy" / rel))
            out, _ = sf.read(str(method_out(args.work, method) / "bench" / rel))
            f0 = f0_of[f"bench/noisy/{rel}"]
            phase = line_phase(noisy - clean, rate, f0)
            scale = float(out @ clean) / float(clean @ clean)
            err = out - scale * clean
            prog = float(np.mean((scale * clean) ** 2))
            e_all = float(np.mean(err**2))
            e_line = band_power(err, phase, rate, BAND_HZ)
            p_line = band_power(scale * clean, phase, rate, BAND_HZ)
            spec = np.abs(np.fft.rfft(err)) ** 2
            spec *= e_all / spec.sum()
            f = np.fft.rfftfreq(err.size, 1 / rate) / f0  # in harmonics of the hum
            k = np.rint(f)
            near = np.abs(f - k) * f0 < 3.0
            e_f0 = float(spec[near & (k == 1)].sum())
            e_h = float(spec[near & (k >= 2) & (k <= 40)].sum())
            fig = (db(prog / e_all), db(p_line / prog), db(e_line / prog), db(e_all / prog))
            fig += (db(e_f0 / prog), db(e_h / prog), db((e_all - e_f0 - e_h) / prog), db(prog / (e_all - e_line)))
            per.setdefault(r["content"], []).append(fig)
            worst.append((fig[0], rel, fig))
        for content, figs in sorted(per.items()):
            m = np.mean(np.array(figs), axis=0)
            print(
                f"{method:<14} {content:<8} {len(figs):>5} {m[0]:>7.2f} {m[1]:>10.1f} {m[2]:>9.1f} {m[3]:>6.1f}"
                f" {m[4]:>6.1f} {m[5]:>6.1f} {m[6]:>6.1f} {m[7]:>14.2f}"
            )
        for _, rel, fig in sorted(worst)[:4]:
            print(f"  worst: {rel:<48} SI-SDR {fig[0]:.1f}  prog@line {fig[1]:.1f}  err@line {fig[2]:.1f}")


if __name__ == "__main__":
    main()
