"""Discovery: filters, mirrored destinations, symlink loops, collisions, refusing to write into a source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from humclean.discover import discover
from humclean.errors import UsageError

from .conftest import noise, write_audio


def _tree(root: Path) -> None:
    for rel in ("a/one.wav", "a/b/two.flac", "c/three.WAV", "skip/me.wav"):
        write_audio(root / rel, noise(800, 1, 0), 8000, "PCM_16")
    (root / "a" / "notes.txt").write_text("x")


def test_mirrors_and_filters(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    tasks, problems = discover([tmp_path / "src"], tmp_path / "dst")
    assert not problems
    rels = sorted(t.rel.as_posix() for t in tasks)
    assert rels == ["a/b/two.flac", "a/one.wav", "c/three.WAV", "skip/me.wav"]
    assert all(t.dest == tmp_path / "dst" / t.rel for t in tasks)
    tasks, _ = discover([tmp_path / "src"], tmp_path / "dst", include=("*.wav",), exclude=("skip/*",))
    assert sorted(t.rel.as_posix() for t in tasks) == ["a/one.wav", "c/three.WAV"]


def test_symlink_loop_is_safe(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    os.symlink(tmp_path / "src" / "a", tmp_path / "src" / "a" / "b" / "loop")
    tasks, problems = discover([tmp_path / "src"], tmp_path / "dst")
    assert any("symlink loop" in p for p in problems)
    assert sorted(t.rel.as_posix() for t in tasks) == ["a/b/two.flac", "a/one.wav", "c/three.WAV", "skip/me.wav"]


def test_case_insensitive_collision_is_an_error_for_the_second(tmp_path: Path) -> None:
    write_audio(tmp_path / "src" / "Tape.wav", noise(800, 1, 0), 8000, "PCM_16")
    write_audio(tmp_path / "src" / "tape.wav", noise(800, 1, 1), 8000, "PCM_16")
    tasks, _ = discover([tmp_path / "src"], tmp_path / "dst")
    errors = [t for t in tasks if t.error]
    assert len(errors) == 1 and "collides" in errors[0].error


@pytest.mark.parametrize("where", ["same", "inside"])
def test_refuses_output_in_source(tmp_path: Path, where: str) -> None:
    _tree(tmp_path / "src")
    dst = tmp_path / "src" if where == "same" else tmp_path / "src" / "out"
    with pytest.raises(UsageError):
        discover([tmp_path / "src"], dst)


def test_output_that_would_overwrite_an_input(tmp_path: Path) -> None:
    """An output tree whose subfolder is a symlink back into the source."""
    write_audio(tmp_path / "src" / "sub" / "x.wav", noise(800, 1, 0), 8000, "PCM_16")
    write_audio(tmp_path / "src" / "y.wav", noise(800, 1, 1), 8000, "PCM_16")
    (tmp_path / "dst").mkdir()
    os.symlink(tmp_path / "src" / "sub", tmp_path / "dst" / "sub")
    tasks = {t.rel.as_posix(): t for t in discover([tmp_path / "src"], tmp_path / "dst")[0]}
    assert "overwrite an input" in tasks["sub/x.wav"].error
    assert tasks["y.wav"].error == ""


def test_single_file_source(tmp_path: Path) -> None:
    write_audio(tmp_path / "src" / "x.flac", noise(800, 1, 0), 8000, "PCM_16")
    tasks, _ = discover([tmp_path / "src" / "x.flac"], tmp_path / "dst")
    assert [t.dest for t in tasks] == [tmp_path / "dst" / "x.flac"]


def test_outputs_never_escape_the_output_tree(tmp_path: Path) -> None:
    write_audio(tmp_path / "src" / "sub" / "x.wav", noise(800, 1, 0), 8000, "PCM_16")
    (tmp_path / "dst").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "dst" / "sub")
    tasks, _ = discover([tmp_path / "src"], tmp_path / "dst")
    assert "outside" in tasks[0].error
