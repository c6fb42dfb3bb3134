"""Atomic file writes: write to a temporary name in the same directory, then rename.

A reader sees the old file or the whole new one, never a part: the data goes to
``.<name>.<host>.<pid>.<random>.tmp`` next to the target, is synced, and is renamed over the
target. A process killed in between leaves only that temporary file, which nothing reads; a
later process's first write into that folder removes temporary files of dead processes of
this host.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crane.errors import ConfigError
from crane.faults import kill_point

_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_modes(folder: str | Path) -> None:
    """Give the files in ``folder`` (not recursive) and the folder itself the modes a plain
    ``open``/``mkdir`` would (``0o666``/``0o777`` less the umask): some writers (temporary
    files renamed into place) leave 0600 files that other users of a shared cache cannot
    read."""
    mask = _umask()
    folder = Path(folder)
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o666 & ~mask)
    os.chmod(folder, 0o777 & ~mask)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


_swept: set[str] = set()


def _remove_orphans(folder: Path) -> None:
    """Delete the temporary files that dead processes of this host left in ``folder`` (once
    per folder and process, so a folder of many shards is listed once, not once per write)."""
    key = os.path.abspath(folder)
    if key in _swept:
        return
    _swept.add(key)
    marker = f".{_HOST}."
    try:
        names = [e.name for e in os.scandir(folder) if e.name[:1] == "." and e.name[-4:] == ".tmp"]
    except OSError:
        return
    for name in names:
        _, found, rest = name.rpartition(marker)
        pid = rest.split(".", 1)[0]
        if found and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            (folder / name).unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.{_HOST}.{os.getpid()}.", suffix=".tmp", dir=path.parent
        )
    except OSError as exc:
        raise ConfigError(
            f"Cannot write to {path.parent} ({exc.strerror}); choose a writable output directory."
        ) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        kill_point(f"write:{path.name}")  # a complete temporary, no rename
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a quota, a directory in the way: nothing half-written
        Path(tmp).unlink(missing_ok=True)
        what = "is a directory" if path.is_dir() else exc.strerror or type(exc).__name__
        raise ConfigError(
            f"Cannot write {path} ({what}); free some space or choose another output path "
            "(rerun the same command to resume)."
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _remove_orphans(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(
    path: str | Path,
    data: Any,
    *,
    indent: int | None = 1,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = str,
    allow_nan: bool = True,
) -> Path:
    """Write ``data`` as JSON text and a final newline to ``path`` atomically
    (:func:`atomic_write_bytes`); the keyword arguments go to :func:`json.dumps`."""
    text = json.dumps(
        data, indent=indent, sort_keys=sort_keys, default=default, allow_nan=allow_nan
    )
    return atomic_write_text(path, text + "\n")


def check_output_dir(path: str | Path) -> Path:
    """Raise ConfigError now, before any work, unless directory ``path`` can be created or
    written (a missing directory is not created here)."""
    target = Path(path).absolute()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is not a directory"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"no permission to write in {existing}"
    if problem is not None:
        raise ConfigError(
            f"Cannot write to {target} ({problem}); choose a writable output directory."
        )
    return target


def check_output_file(path: str | Path) -> Path:
    """:func:`check_output_dir` for the folder of output file ``path``; also refuses a folder."""
    target = Path(path)
    if target.is_dir():
        raise ConfigError(
            f"Cannot write the output file {target}: it is a directory; give a file name."
        )
    check_output_dir(target.parent)
    return target


def parse_json(text: str, *, unique_keys: bool = False) -> Any:
    """``json.loads`` for files a user may hand us: every way a text can fail to be JSON this
    reader accepts is a ``json.JSONDecodeError``, so each reader's "not valid JSON" path covers
    it — nesting too deep for the parser (a RecursionError), an integer too long for Python to
    convert (over 4300 digits, a ValueError) and, with ``unique_keys``, an object that gives a
    key twice (``json.loads`` would silently keep the last: ``{"1": [0], "1": [2]}`` would lose
    neuron 0). Files crane writes never repeat a key; their readers pass ``unique_keys``."""
    try:
        return json.loads(text, object_pairs_hook=_unique_object if unique_keys else None)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text[:64], 0) from None
    except _DuplicateKey as exc:
        raise json.JSONDecodeError(f"key {exc.args[0]!r} given twice", text[:64], 0) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise json.JSONDecodeError(str(exc).split(";")[0], text[:64], 0) from None


class _DuplicateKey(Exception):
    """An object of a JSON text gives one key twice (raised inside the parser)."""


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj
