"""Option types that several commands share (the same flag, help text and type everywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

ModelArg = Annotated[str, typer.Argument(help="Hub id, local model directory, .gguf file, or gemma-3-270m.")]
ModelOpt = Annotated[str, typer.Option(help="Hub id, model directory, .gguf file or gemma-3-270m.")]
DtypeOpt = Annotated[str, typer.Option(help="float32 | bfloat16 | float16 | auto.")]
DeviceOpt = Annotated[str, typer.Option(help="cpu | cuda | cuda:N | mps | auto (accelerate device_map).")]
TrustOpt = Annotated[bool, typer.Option(help="Allow a model's own Python code (only for sources you trust).")]

CorpusLangOpt = Annotated[str | None, typer.Option(help="Language of plain-text corpus files.")]
TextFieldOpt = Annotated[str, typer.Option(help="Text field/column (JSONL, CSV, Parquet).")]
LangFieldOpt = Annotated[str, typer.Option(help="Language field/column.")]
BatchSizeOpt = Annotated[int, typer.Option(help="Most windows per batch.")]
BatchTokensOpt = Annotated[int, typer.Option(help="Most padded tokens per batch.")]

RunDirOpt = Annotated[Path, typer.Option(help="Run directory (reused to resume).")]

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        help="Study configuration file (.toml/.yaml) whose keys fill the options not given "
        "on the command line (docs/study.md lists the keys).",
    ),
]


def config_values(
    context: Any, config: Path | None, values: dict[str, Any], keys: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Config key → value for the options ``values`` (parameter name → value as parsed) of the
    running command (``context``: its ``typer.Context``), mapped to configuration keys by
    ``keys``, by the precedence command line > file > default: an option typed on the command
    line (or set by its environment variable) wins, else the file's key, else the option's
    default. Also returns every key the file sets (for keys that have no option)."""
    from crane.study.config import read_config_keys

    given = read_config_keys(config) if config is not None else {}
    merged: dict[str, Any] = {}
    for name, key in keys.items():
        source = context.get_parameter_source(name)
        typed = getattr(source, "name", None) in ("COMMANDLINE", "ENVIRONMENT")
        merged[key] = given[key] if key in given and not typed else values[name]
    return merged, given
