"""SI-SDR of the weightless hum estimators on the corpus test split with synthetic hum.

Simulates the pipeline's chunking (zero padding of ``overlap`` samples at both file ends, hop
``chunk - overlap``, linear cross-fades over the overlap, normalised by the summed weight),
subtracts the estimate and reports mean SI-SDR in/out per content type, SNR and mains family,
with per-condition worst cases.

    /work/venv/bin/python benchmarks/dsp_quality.py [--models dsp,notch] [--limit N] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from humsynth import add_hum, si_sdr, synth_hum  # noqa: E402

from humclean.models.base import HumEstimator  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"


def chunk_weights(chunk: int, overlap: int) -> np.ndarray:
    """Linear ramps over the overlap at both ends: ``[chunk]``, positive everywhere."""
    w = np.ones(chunk)
    if overlap:
        ramp = (np.arange(overlap) + 0.5) / overlap
        w[:overlap] = ramp
        w[-overlap:] = ramp[::-1]
    return w


def run_pipeline(
    model: HumEstimator, x: np.ndarray, f0_hz: float = float("nan"), batch: int = 4, rate: int = 16000
) -> np.ndarray:
    """Hum estimate ``[N]`` for a mono signal ``[N]`` at ``rate``, resampled to the model rate and chunked
    like the pipeline, then resampled back."""
    from humclean.resample import resample

    if rate != model.card.sample_rate:
        m_rate = model.card.sample_rate
        h = run_pipeline(model, resample(x[:, None], rate, m_rate)[:, 0], f0_hz, batch, m_rate)
        return resample(h[:, None], m_rate, rate)[: x.shape[0], 0]
    chunk, overlap = model.card.chunk_samples, model.card.overlap_samples
    hop = chunk - overlap
    n = x.shape[0]
    padded = np.concatenate([np.zeros(overlap), x, np.zeros(overlap + chunk)])
    starts = np.arange(-overlap, n + overlap - overlap, hop)  # last chunk covers the end
    w = chunk_weights(chunk, overlap)
    acc = np.zeros(padded.shape[0])
    wsum = np.zeros(padded.shape[0])
    for b0 in range(0, len(starts), batch):
        st = starts[b0 : b0 + batch]
        chunks = np.stack([padded[s + overlap : s + overlap + chunk] for s in st]).astype(np.float32)
        est = model.estimate(chunks, st.astype(np.int64), np.full(len(st), f0_hz))
        for s, e in zip(st, est, strict=True):
            acc[s + overlap : s + overlap + chunk] += w * e
            wsum[s + overlap : s + overlap + chunk] += w
    region = slice(overlap, overlap + n)
    assert np.all(wsum[region] > 0)
    return acc[region] / wsum[region]


def load_split(split: str = "test") -> list[tuple[str, str, np.ndarray]]:
    import soundfile as sf

    items = []
    for kind in ("speech", "music"):
        for path in sorted((CORPUS / split / kind).glob("*.ogg")):
            x, sr = sf.read(path, dtype="float64")
            assert sr == 16000
            items.append((kind, path.name, x if x.ndim == 1 else x.mean(axis=1)))
    return items


def make_models(names: list[str]) -> dict[str, HumEstimator]:
    models: dict[str, HumEstimator] = {}
    for name in names:
        if name == "dsp":
            from humclean.models.dsp import DspCanceller

            models[name] = DspCanceller()
        elif name == "notch":
            from humclean.models.notch import NotchComb

            models[name] = NotchComb()
        else:
            raise SystemExit(f"unknown model {name}")
    return models


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default="dsp,notch")
    ap.add_argument("--snrs", default="0,5,10,15")
    ap.add_argument("--limit", type=int, default=0, help="files per content type (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--hint",
        choices=["true", "none"],
        default="true",
        help="pass the true mean f0 as the hint (like the detector would) or NaN",
    )
    args = ap.parse_args()
    models = make_models(args.models.split(","))
    snrs = [float(s) for s in args.snrs.split(",")]
    items = load_split("test")
    if args.limit:
        items = [it for kind in ("speech", "music") for it in [i for i in items if i[0] == kind][: args.limit]]
    rng = np.random.default_rng(args.seed)
    rows = []  # (model, kind, snr, mains, profile, name, in, out)
    proc_time = {m: 0.0 for m in models}
    audio_s = 0.0
    for kind, name, clean in items:
        for snr in snrs:
            for mains in (50, 60):
                hum_unit, info = synth_hum(clean.shape[0], 16000, rng, mains_hz=mains)
                noisy, _ = add_hum(clean, hum_unit, snr)
                noisy32 = noisy.astype(np.float32).astype(np.float64)
                sdr_in = si_sdr(noisy32, clean)
                hint = info.f0_hz if args.hint == "true" else float("nan")
                audio_s += clean.shape[0] / 16000
                for mname, model in models.items():
                    t0 = time.perf_counter()
                    est = run_pipeline(model, noisy32, hint)
                    proc_time[mname] += time.perf_counter() - t0
                    sdr_out = si_sdr(noisy32 - est, clean)
                    rows.append((mname, kind, snr, mains, info.profile, name, sdr_in, sdr_out))
    print(f"files: {len(items)}  conditions per file: {len(snrs) * 2}  audio: {audio_s:.0f} s per model")
    for mname in models:
        print(f"\n== {mname}: {audio_s / proc_time[mname]:.0f}x real time (one process)")
        print(f"{'kind':7s} {'SNR':>4s} {'in':>7s} {'out':>7s} {'gain':>6s} {'worst out (file, mains, profile)':s}")
        for kind in ("speech", "music"):
            for snr in snrs:
                sel = [r for r in rows if r[0] == mname and r[1] == kind and r[2] == snr]
                if not sel:
                    continue
                i = np.mean([r[6] for r in sel])
                o = np.mean([r[7] for r in sel])
                worst = min(sel, key=lambda r: r[7] - r[6])
                print(
                    f"{kind:7s} {snr:4.0f} {i:7.2f} {o:7.2f} {o - i:6.2f}  "
                    f"{worst[7]:.2f} (in {worst[6]:.2f}; {worst[5]}, {worst[3]} Hz, {worst[4]})"
                )
            sel = [r for r in rows if r[0] == mname and r[1] == kind]
            print(f"{kind:7s}  all {np.mean([r[6] for r in sel]):7.2f} {np.mean([r[7] for r in sel]):7.2f}")
        for prof in ("fundamental", "rich", "buzz", "sparse"):
            sel = [r for r in rows if r[0] == mname and r[4] == prof]
            if sel:
                print(
                    f"  profile {prof:11s} n={len(sel):3d} gain {np.mean([r[7] - r[6] for r in sel]):6.2f}"
                    f"  min gain {np.min([r[7] - r[6] for r in sel]):6.2f}"
                )


if __name__ == "__main__":
    main()
