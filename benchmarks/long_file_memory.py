"""Peak memory on a long recording: RSS must not grow with file length.

Writes a long 48 kHz stereo 24-bit WAV with hum (blockwise, so the generator itself stays small),
runs ``humclean run`` on it in a child process and prints the child's peak RSS, and the peak summed PSS
of the child and its model worker processes, next to the same run on a file a tenth as long (the
baseline measured in the same run). Usage:

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


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (the model's worker processes), from /proc."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [root], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        todo += kids
    return found


def _pss_kb(pids: list[int]) -> int:
    """Summed proportional set size: shared pages (torch's libraries in every worker) count once in all."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def run(src: Path, out: Path, model: str, extra: tuple[str, ...] = ()) -> tuple[float, float, float]:
    """(peak RSS in MB of a child running ``humclean run`` on ``src`` alone, peak summed PSS in MB of
    that child and its model worker processes, sampled every 50 ms, wall seconds); ``extra``: further
    ``humclean run`` options."""
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
    child = subprocess.Popen([sys.executable, "-c", code])
    peak_pss = 0
    while child.poll() is None:
        peak_pss = max(peak_pss, _pss_kb(_tree(child.pid)))
        time.sleep(0.05)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, child.args)
    return int(rss_file.read_text()) / 1024, peak_pss / 1024, time.perf_counter() - t0


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
    rss_short, pss_short, wall_short = run(short, args.workdir / "out-short", args.model)
    rss_long, pss_long, wall_long = run(long, args.workdir / "out-long", args.model)
    for label, secs, rss, pss, wall in (
        ("short", short_s, rss_short, pss_short, wall_short),
        ("long", long_s, rss_long, pss_long, wall_long),
    ):
        print(f"{label:<5} {secs / 3600:.2f} h: peak RSS {rss:.0f} MB (main process), peak PSS {pss:.0f} MB "
              f"(with model workers), {wall:.0f} s ({secs / wall:.1f}x RT)")  # fmt: skip
    print(f"ratio long/short: RSS {rss_long / rss_short:.2f}, PSS {pss_long / pss_short:.2f} (1.0 = flat); "
          f"limit 2048 MB: {'OK' if max(rss_long, pss_long) < 2048 else 'EXCEEDED'}")  # fmt: skip


if __name__ == "__main__":
    main()
