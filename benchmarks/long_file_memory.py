"""Peak memory on a long recording: RSS must not grow with file length.

Writes a long 48 kHz stereo 24-bit WAV with hum (blockwise, so the generator itself stays small),
runs ``humclean run`` on it in a child process and prints the child's peak RSS next to the same run
on a file a tenth as long (the baseline measured in the same run). Usage:

    python benchmarks/long_file_memory.py --hours 3 --model dsp --workdir /tmp/humclean-mem
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def same_shape(path: Path, frames: int, rate: int, channels: int, subtype: str) -> bool:
    """Whether ``path`` already holds audio of this length and format (so a cached file can be reused)."""
    if not path.is_file():
        return False
    info = sf.info(str(path))
    return (info.frames, info.samplerate, info.channels, info.subtype) == (frames, rate, channels, subtype)


def write_long(path: Path, seconds: float, rate: int = 48000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    block = rate * 60
    with sf.SoundFile(str(path), "w", rate, 2, "PCM_24", format="RF64" if seconds > 3 * 3600 else "WAV") as f:
        done = 0
        total = int(seconds * rate)
        while done < total:
            n = min(block, total - done)
            t = (done + np.arange(n)) / rate
            hum = 0.03 * np.cos(2 * np.pi * 50.02 * t) + 0.01 * np.cos(2 * np.pi * 150.06 * t + 1)
            x = 0.05 * rng.standard_normal((n, 2)) + hum[:, None]
            f.write(x)
            done += n


def run(src: Path, out: Path, model: str, extra: tuple[str, ...] = ()) -> tuple[float, float]:
    """(peak RSS in MB of a child running ``humclean run`` on ``src`` alone, wall seconds); ``extra``:
    further ``humclean run`` options."""
    rss_file = out.parent / f"{out.name}.rss"
    out.parent.mkdir(parents=True, exist_ok=True)
    code = (
        "import sys\n"
        "from humclean.cli import main\n"
        f"sys.argv = ['humclean', 'run', {str(src.parent)!r}, '--out', {str(out)!r}, '--model', {model!r},"
        f" '--overwrite', '-q', '--include', {src.name!r}] + {list(extra)!r}\n"
        "try:\n    main()\nfinally:\n"
        # VmHWM, not ru_maxrss: the kernel carries ru_maxrss over fork+exec from a large parent
        "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        f"    open({str(rss_file)!r}, 'w').write(hwm)\n"
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return int(rss_file.read_text()) / 1024, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--model", default="dsp")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/humclean-mem"))
    args = ap.parse_args()
    long_s = args.hours * 3600
    short_s = long_s / 10
    short = args.workdir / "short" / "short.wav"
    long = args.workdir / "long" / "long.wav"
    for path, secs in ((short, short_s), (long, long_s)):
        # reuse a file of the right length only (a different --hours rewrites it)
        if not same_shape(path, int(secs * 48000), 48000, 2, "PCM_24"):
            write_long(path, secs)
    rss_short, wall_short = run(short, args.workdir / "out-short", args.model)
    rss_long, wall_long = run(long, args.workdir / "out-long", args.model)
    for label, secs, rss, wall in (("short", short_s, rss_short, wall_short), ("long", long_s, rss_long, wall_long)):
        print(f"{label:<5} {secs / 3600:.2f} h: peak RSS {rss:.0f} MB, {wall:.0f} s ({secs / wall:.1f}x RT)")
    print(f"RSS ratio long/short: {rss_long / rss_short:.2f} (1.0 = flat); limit 2048 MB: "
          f"{'OK' if rss_long < 2048 else 'EXCEEDED'}")  # fmt: skip


if __name__ == "__main__":
    main()
