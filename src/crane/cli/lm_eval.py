"""``crane lm-eval``: lm-evaluation-harness tasks with a neuron set masked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from crane.cli.options import JsonOpt, note_deprecated, note_deprecated_out
from crane.cli.render import console, write_json
from crane.errors import ConfigError
from crane.io import check_output_file


def lm_eval_cmd(
    model: Annotated[str, typer.Option(help="Model directory, hub id or gemma-3-270m.")],
    tasks: Annotated[str, typer.Option(help="lm-eval task names (comma-separated, globs allowed).")],
    neurons: Annotated[Path | None, typer.Option(help="Neuron set to mask (none: unmasked).")] = None,
    langs: Annotated[
        str,
        typer.Option(
            "--langs", "--languages",
            help="Languages of the set to mask: all, or en+zh (--languages: the old spelling, "
            "kept for one release).",
        ),
    ] = "all",
    task_dir: Annotated[Path | None, typer.Option(help="Folder of your own task YAMLs.")] = None,
    limit: Annotated[float | None, typer.Option(help="Most documents per task.")] = None,
    mode: Annotated[str, typer.Option(help="zero | scale.")] = "zero",
    alpha: Annotated[float | None, typer.Option(help="Factor for --mode scale.")] = None,
    batch_size: int = 8,
    device: Annotated[
        str, typer.Option(help="cpu | cuda | cuda:N | mps | auto (CUDA, else MPS, else CPU).")
    ] = "cpu",
    dtype: Annotated[
        str | None, typer.Option(help="float32 | bfloat16 | float16 | auto (default: lm-eval's).")
    ] = None,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Allow a model's own Python code (only for sources you trust).")
    ] = False,
    revision: Annotated[
        str | None, typer.Option(help="Model revision: a hub branch, tag or commit.")
    ] = None,
    defaults: Annotated[bool, typer.Option(help="Also index lm-eval's built-in tasks.")] = True,
    out: JsonOpt = None,
) -> None:
    """Run lm-evaluation-harness tasks with a neuron set masked (needs the eval extra)."""
    from crane.lm_eval_bridge import evaluate as lm_evaluate

    if out is not None:
        note_deprecated_out()
        check_output_file(out)
    note_deprecated(
        "--languages",
        "--languages is deprecated; use --langs (the same spelling as every command).",
    )
    if device == "shard":
        raise ConfigError(
            "crane lm-eval runs the model on one device; use --device auto, cuda or cpu."
        )
    if device == "auto":
        from crane.models.loading import best_device

        device = best_device()
    model_args = {
        k: v for k, v in (("trust_remote_code", trust_remote_code), ("revision", revision)) if v
    }
    results = lm_evaluate(
        model, neurons, langs, tasks, task_dir=task_dir,
        limit=int(limit) if limit is not None and limit >= 1 else limit, mode=mode, alpha=alpha,
        device=device, dtype=dtype, batch_size=batch_size, include_default_tasks=defaults,
        model_args=model_args or None,
    )
    masked = f", masked: {neurons} ({langs})" if neurons else ""
    table = Table(title=f"lm-eval on {model}{masked}")
    for column in ("task", "metric", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for task, metrics in results.get("results", {}).items():
        for name, value in metrics.items():
            is_metric = not name.endswith("_stderr,none") and name != "alias"
            if isinstance(value, (int, float)) and is_metric:
                table.add_row(task, name, f"{value:.4f}")
    console.print(table)
    if out is not None:
        from lm_eval.utils import handle_non_serializable

        write_json(out, results, default=handle_non_serializable)
