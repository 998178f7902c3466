"""How faint a hum the detector still finds: detection rate against SNR, and false positives on the clean files.

For each clean file of a corpus split, one hum (recipe hum-v1, seeded) is mixed at each SNR of ``--snr`` and the
detector (``humclean.detect.detect_hum``, what ``humclean run`` and ``--dry-run`` use) judges the mix at the default
model's rate, as the pipeline feeds it; a hit needs the right mains family. The clean files alone give the false
positives. Prints hits per content and SNR.

    python benchmarks/detection_snr.py [--split val] [--snr 15,20,25,30,35,40] [--seed 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
from humclean.training.hum import mix, render, sample_params

from humclean import zoo
from humclean.detect import detect_hum
from humclean.resample import resample

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="val")
    ap.add_argument("--snr", default="15,20,25,30,35,40")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    snrs = [float(v) for v in args.snr.split(",")]
    rng = np.random.default_rng(args.seed)
    model_rate = int(zoo.describe("default")["sample_rate"])
    hits: dict[tuple[str, float], list[bool]] = {}
    false_pos: dict[str, list[bool]] = {}
    for kind in ("speech", "music"):
        for path in sorted((CORPUS / args.split / kind).glob("*.ogg")):
            x, rate = sf.read(str(path), dtype="float64")
            x = x.mean(axis=1) if x.ndim > 1 else x
            params = sample_params(rng, rate)
            hum = render(params, x.size, rate)
            for snr in snrs:
                det = detect_hum(resample(mix(x, hum, snr)[0], rate, model_rate), model_rate)
                hits.setdefault((kind, snr), []).append(det.has_hum and det.mains_hz == params.mains_hz)
            false_pos.setdefault(kind, []).append(detect_hum(resample(x, rate, model_rate), model_rate).has_hum)
    print(f"{args.split} split: hum found / files, by input SNR (dB re the programme)")
    print(f"{'content':<8} " + " ".join(f"{f'SNR {s:g}':>8}" for s in snrs) + f" {'clean: taken for hum':>21}")
    for kind in ("speech", "music"):
        cells = " ".join(f"{f'{sum(hits[kind, s])}/{len(hits[kind, s])}':>8}" for s in snrs)
        print(f"{kind:<8} {cells} {f'{sum(false_pos[kind])}/{len(false_pos[kind])}':>21}")


if __name__ == "__main__":
    main()
