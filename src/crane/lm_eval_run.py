"""Running lm-eval tasks with a crane neuron set masked: :func:`evaluate` and the command line.

:func:`evaluate` registers the ``crane-masked`` model type (:mod:`crane.lm_eval_bridge`), builds
the model, resolves the tasks (built-in names, glob patterns, YAML paths, extra task folders) and
calls ``lm_eval.simple_evaluate``. :func:`main` is lm-eval's own command line with the model type
registered; run it as ``python -m crane.lm_eval_bridge run ...``.

Both are re-exported by :mod:`crane.lm_eval_bridge`, the public import path. This module imports
the bridge only inside the functions, so either module can be imported first; importing it does
not import lm-eval.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crane.errors import ConfigError, CraneError, ModelLoadError
from crane.neurons import NeuronSet

__all__ = ["evaluate", "main"]


# --- Python API --------------------------------------------------------------------------------


def _task_dirs(task_dir: str | Path | Sequence[str | Path] | None) -> list[str]:
    if task_dir is None:
        return []
    items = [task_dir] if isinstance(task_dir, (str, Path)) else list(task_dir)
    dirs = []
    for item in items:
        path = Path(item).expanduser()
        if not path.is_dir():
            raise ConfigError(f"Task directory {item} does not exist or is not a directory.")
        dirs.append(str(path))
    return dirs


def _resolve_tasks(task_manager: Any, tasks: str | Sequence[str], dirs: list[str]) -> list[str]:
    """Task names (glob patterns expanded, as lm-eval's CLI does) and YAML paths, checked."""
    requested = [t.strip() for t in tasks.split(",")] if isinstance(tasks, str) else list(tasks)
    requested = [t for t in requested if t]
    if not requested:
        raise ConfigError("No lm-eval task given; pass task names such as ['cmmlu'].")
    resolved: list[str] = []
    for task in requested:
        if task.endswith((".yaml", ".yml")) and Path(task).is_file():
            resolved.append(task)
            continue
        matched = task_manager.match_tasks([task])
        if not matched:
            where = f" or in {', '.join(dirs)}" if dirs else ""
            raise ConfigError(
                f"Unknown lm-eval task '{task}': not a built-in task{where}; list tasks with "
                "`lm_eval ls tasks` (add --include_path DIR for your own YAMLs)."
            )
        resolved.extend(m for m in matched if m not in resolved)
    return resolved


def _json_safe(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def evaluate(
    model: Any,
    neurons: str | Path | NeuronSet | None = None,
    languages: str | Sequence[str] | None = "all",
    tasks: str | Sequence[str] = (),
    task_dir: str | Path | Sequence[str | Path] | None = None,
    limit: int | float | None = None,
    *,
    mode: str = "zero",
    alpha: float | None = None,
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int | str = 8,
    include_default_tasks: bool = True,
    model_args: Mapping[str, Any] | None = None,
    **simple_evaluate_kwargs: Any,
) -> dict[str, Any]:
    """Run lm-eval ``tasks`` on ``model`` with ``neurons`` (of ``languages``) masked.

    Args:
        model: a model directory or hub id (as lm-eval's ``pretrained=``), crane's demo name
            ``gemma-3-270m``, a :class:`crane.models.LoadedModel`, or a transformers model.
        neurons: a neuron set file (JSON or safetensors) or a :class:`NeuronSet`; ``None``
            evaluates the unmasked model (exactly lm-eval's ``hf`` model).
        languages: ``"all"``, one code, codes joined by ``+``, or a list of codes.
        tasks: lm-eval task/group/tag names (glob patterns allowed), a comma-separated string,
            or paths to task YAML files.
        task_dir: folder(s) of extra task YAMLs (lm-eval's ``--include_path``).
        limit: at most this many documents per task (a fraction if < 1).
        mode: ``zero`` or ``scale`` (with ``alpha``).
        device: ``cpu``, ``cuda``, ``cuda:N``, ``mps``; default ``cuda`` if available, else ``cpu``.
        dtype: weights dtype for a model lm-eval loads (default: lm-eval's ``auto``).
        batch_size: an int or lm-eval's ``"auto"``.
        include_default_tasks: index lm-eval's ~15k built-in tasks (about 10 s); turn off when
            every task comes from ``task_dir``.
        model_args: further ``HFLM`` arguments (``max_length``, ``trust_remote_code``, ...).
        **simple_evaluate_kwargs: passed to ``lm_eval.simple_evaluate`` (``num_fewshot``,
            ``log_samples`` (default here: False), ``gen_kwargs``, ``apply_chat_template``,
            ``random_seed``, ...). Do not share a ``use_cache`` database between masks: lm-eval
            keys it on the request only.

    Returns:
        lm-eval's results dict (``results``, ``configs``, ``versions``, ``n-samples``,
        ``config`` with ``model == "crane-masked"`` and the mask under ``config["crane_mask"]``,
        ``samples`` when ``log_samples=True``). Empty on non-zero ranks of a multi-process run.

    Raises:
        ConfigError: lm-eval missing, bad options, unknown task, missing task directory.
        NeuronSetError: unreadable set, unknown language, set does not fit the model.
        UnsupportedModelError: the architecture has no crane adapter (only with ``neurons``).
        ModelLoadError: lm-eval could not load ``model``.
    """
    from crane.lm_eval_bridge import MODEL_NAME, register

    cls = register()
    import lm_eval
    import torch
    from lm_eval.tasks import TaskManager

    from crane.models.loading import LoadedModel

    dirs = _task_dirs(task_dir)
    kwargs: dict[str, Any] = dict(model_args or {})
    tokenizer = None
    if isinstance(model, LoadedModel):
        pretrained: Any = model.model
        tokenizer = model.tokenizer
        spec = str(model.source.get("spec", type(model.model).__name__))
    elif isinstance(model, (str, Path)):
        text = str(model)
        path = Path(text).expanduser()
        pretrained = str(path) if path.exists() else text
        spec = pretrained
    else:
        pretrained, spec = model, type(model).__name__
    if tokenizer is not None:
        kwargs.setdefault("tokenizer", tokenizer)
    if isinstance(pretrained, str):
        kwargs.setdefault("device", device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is not None:
            kwargs.setdefault("dtype", dtype)
    kwargs.setdefault("batch_size", batch_size)
    if neurons is not None:
        kwargs.update(neurons=neurons, languages=languages, mode=mode, alpha=alpha)
    elif languages not in (None, "all") or mode != "zero" or alpha is not None:
        raise ConfigError(
            "languages, mode and alpha only apply with a neuron set; pass `neurons` or drop them."
        )

    metadata = dict(simple_evaluate_kwargs.pop("metadata", None) or {})
    if isinstance(pretrained, str):
        metadata.setdefault("pretrained", pretrained)
    task_manager = TaskManager(
        include_path=dirs or None, include_defaults=include_default_tasks, metadata=metadata
    )
    task_names = _resolve_tasks(task_manager, tasks, dirs)

    try:
        lm = cls(pretrained=pretrained, **kwargs)
    except CraneError:
        raise
    except OSError as err:
        lines = str(err).strip().splitlines() or [type(err).__name__]
        raise ModelLoadError(
            f"lm-eval could not load model {spec} ({lines[0][:200]}); pass a local model "
            "directory, a cached hub id, or a crane LoadedModel."
        ) from err

    simple_evaluate_kwargs.setdefault("log_samples", False)
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=task_names,
        limit=limit,
        batch_size=kwargs.get("batch_size"),
        device=kwargs.get("device"),
        task_manager=task_manager,
        **simple_evaluate_kwargs,
    )
    if not results:
        return {}
    config = results.setdefault("config", {})
    config["model"] = MODEL_NAME
    config["model_args"] = {
        "pretrained": spec,
        **{k: _json_safe(v) for k, v in kwargs.items() if k != "tokenizer"},
    }
    return dict(results)


# --- command line: lm-eval's own CLI with the model registered -------------------------------


@contextmanager
def _argv(argv: Sequence[str] | None) -> Iterator[None]:
    if argv is None:
        yield
        return
    saved = sys.argv
    sys.argv = ["lm-eval", *argv]
    try:
        yield
    finally:
        sys.argv = saved


def main(argv: Sequence[str] | None = None) -> None:
    """lm-eval's command line (``run``, ``ls``, ``validate``) with ``crane-masked`` registered.

    ``argv`` defaults to ``sys.argv[1:]``. A crane error (bad neuron set, unknown language, ...)
    is printed as one line and exits with code 2.
    """
    try:
        from crane.lm_eval_bridge import register

        register()
        from lm_eval.__main__ import cli_evaluate

        with _argv(argv):
            cli_evaluate()
    except CraneError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
