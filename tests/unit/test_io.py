"""Atomic writes: whole files or nothing, the usual permissions, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crane.errors import ConfigError
from crane.io import atomic_write_bytes, atomic_write_text


def test_writes_whole_file_with_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "sub" / "a.json", "{}\n")
    finally:
        os.umask(old)
    assert path.read_text() == "{}\n"
    assert path.stat().st_mode & 0o777 == 0o644  # readable by others, like any other output
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = atomic_write_bytes(tmp_path / "b.bin", b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(path, object())  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["b.bin"]


def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="writable output directory"):
        atomic_write_text(blocker / "inside.json", "{}")


def test_temporaries_of_dead_processes_are_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    from crane.io import _HOST

    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()  # its pid is now free: a writer killed before its rename
    dead = tmp_path / f".a.json.{_HOST}.{done.pid}.x1y2.tmp"
    alive = tmp_path / f".a.json.{_HOST}.{os.getppid()}.z3.tmp"  # a writer still running
    other_host = tmp_path / f".a.json.elsewhere.{done.pid}.q4.tmp"  # not ours to judge
    for path in (dead, alive, other_host):
        path.write_bytes(b"partial")
    atomic_write_text(tmp_path / "b.json", "{}\n")  # any write into the folder sweeps it
    assert not dead.exists()
    assert alive.exists() and other_host.exists()


def test_usual_modes_open_up_files_a_writer_left_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import stat

    from crane.io import usual_modes

    folder = tmp_path / "model"
    folder.mkdir(mode=0o700)
    private = folder / "model.safetensors"
    private.write_bytes(b"x")
    os.chmod(private, 0o600)
    old = os.umask(0o022)
    try:
        usual_modes(folder)
    finally:
        os.umask(old)
    assert stat.S_IMODE(private.stat().st_mode) == 0o644
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
