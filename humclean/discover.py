"""Discovery: walk the source roots, filter, and map every input to its mirrored destination.

Symlinked directories are followed once (a loop is detected by device and inode and not
re-entered). Every destination is checked against every other (case-insensitively, so that the
tree can be copied to a case-insensitive filesystem) and against the inputs themselves.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

AUDIO_PATTERNS = (
    "*.wav", "*.wave", "*.bwf", "*.rf64", "*.w64", "*.flac", "*.ogg", "*.oga", "*.opus",
    "*.aif", "*.aiff", "*.aifc", "*.mp3", "*.m4a", "*.mp4", "*.aac", "*.caf", "*.wma", "*.mka",
)  # fmt: skip


@dataclass(frozen=True)
class FileTask:
    """One input and where its output goes. ``rel`` is the path relative to its source root."""

    src: Path
    rel: Path
    dest: Path
    error: str = ""


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
    name = rel.rsplit("/", 1)[-1].lower()
    return any(fnmatch.fnmatch(name, p.lower()) or fnmatch.fnmatch(rel.lower(), p.lower()) for p in patterns)


def _walk(root: Path) -> tuple[list[Path], list[str]]:
    """Files under ``root`` (sorted, symlinked dirs followed once) and one-line walk problems."""
    files: list[Path] = []
    problems: list[str] = []
    seen: set[tuple[int, int]] = set()

    def onerror(exc: OSError) -> None:
        problems.append(f"{exc.filename}: cannot list directory: {exc.strerror}")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=onerror):
        st = os.stat(dirpath)
        key = (st.st_dev, st.st_ino)
        if key in seen:
            problems.append(f"{dirpath}: symlink loop, not entered again")
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames.sort()
        for name in sorted(filenames):
            files.append(Path(dirpath) / name)
    return files, problems


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def discover(
    sources: list[Path],
    dest_root: Path,
    include: tuple[str, ...] = AUDIO_PATTERNS,
    exclude: tuple[str, ...] = (),
) -> tuple[list[FileTask], list[str]]:
    """Map every matching file under ``sources`` to ``dest_root / rel``.

    Returns the tasks (tasks with a non-empty ``error`` must not be processed) and walk-level
    problems (unlistable directories, symlink loops). Raises :class:`UsageError` when
    ``dest_root`` is a source, lies inside one, or a source does not exist.
    """
    dest_real = dest_root.resolve()
    roots: list[tuple[Path, Path]] = []
    for src in sources:
        if not src.exists():
            raise UsageError(f"source does not exist: {src}")
        real = src.resolve()
        if real.is_dir() and _inside(dest_real, real):
            raise UsageError(f"output directory {dest_root} is inside source {src}; choose one outside it")
        if real.is_file() and real.parent == dest_real:
            raise UsageError(f"output directory {dest_root} holds the input {src}")
        roots.append((src, real))

    tasks: list[FileTask] = []
    problems: list[str] = []
    input_reals: set[Path] = set()
    for src, real in roots:
        if real.is_file():
            candidates = [(src, Path(src.name))]
        else:
            found, probs = _walk(src)
            problems += probs
            candidates = [(f, f.relative_to(src)) for f in found]
        for path, rel in candidates:
            rel_s = rel.as_posix()
            if not _matches(rel_s, include) or (exclude and _matches(rel_s, exclude)):
                continue
            if ".humclean-tmp-" in rel.name:
                continue
            input_reals.add(path.resolve())
            tasks.append(FileTask(path, rel, dest_root / rel))

    by_key: dict[str, Path] = {}
    checked: list[FileTask] = []
    for t in tasks:
        key = t.rel.as_posix().casefold()
        err = ""
        dest_resolved = t.dest.resolve()
        if key in by_key:
            err = f"output {t.dest} collides with the output of {by_key[key]}"
        elif dest_resolved in input_reals:
            err = f"output {t.dest} would overwrite an input"
        elif not _inside(dest_resolved, dest_real):
            err = f"output {t.dest} resolves outside {dest_root} (symlink in the output tree)"
        else:
            by_key[key] = t.src
        checked.append(FileTask(t.src, t.rel, t.dest, err) if err else t)
    return checked, problems


def parse_shard(spec: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 1 <= K <= N."""
    try:
        k_s, n_s = spec.split("/")
        k, n = int(k_s), int(n_s)
    except ValueError:
        raise UsageError(f"--shard must look like K/N (e.g. 2/8), got {spec!r}") from None
    if not 1 <= k <= n:
        raise UsageError(f"--shard {spec}: need 1 <= K <= N")
    return k, n


def shard(tasks: list[FileTask], k: int, n: int) -> list[FileTask]:
    """The K-th of N deterministic parts of ``tasks``, by a hash of each relative path.

    Every host of a job array computes the same partition from the same tree, whatever the order
    in which files were listed, and a file keeps its shard when other files come and go.
    """
    import hashlib

    def part(t: FileTask) -> int:
        return int.from_bytes(hashlib.sha256(t.rel.as_posix().encode()).digest()[:8], "little") % n

    return [t for t in tasks if part(t) == k - 1]
