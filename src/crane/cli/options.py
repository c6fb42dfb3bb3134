"""Option types that several commands share (the same flag, help text and type everywhere)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from crane.errors import ConfigError

ModelArg = Annotated[str, typer.Argument(help="Hub id, local model directory, .gguf file, or gemma-3-270m.")]
ModelOpt = Annotated[str, typer.Option(help="Hub id, model directory, .gguf file or gemma-3-270m.")]
DtypeOpt = Annotated[
    str, typer.Option(help="float32 | bfloat16 | float16 | auto (float32 on the CPU, else the "
                      "checkpoint's).")
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        help="cpu | cuda | cuda:N | mps | auto (CUDA, else MPS, else CPU) | shard (one model "
        "over every GPU and the CPU, accelerate's device_map)."
    ),
]
TrustOpt = Annotated[bool, typer.Option(help="Allow a model's own Python code (only for sources you trust).")]
RevisionOpt = Annotated[
    str | None,
    typer.Option(help="Model revision: a hub branch, tag or commit (recorded in its identity)."),
]
AttnOpt = Annotated[
    str | None,
    typer.Option(help="Attention implementation: eager | sdpa | flash_attention_2 (default: "
                 "the model's)."),
]

JsonOpt = Annotated[
    Path | None,
    typer.Option(
        "--json", "--out",
        help="Write the results as JSON to this file (--out: the old spelling, deprecated; "
        "--out names a run directory elsewhere).",
    ),
]


def note_deprecated(old: str, message: str) -> None:
    """Print ``message`` when the command line spells an option the deprecated way ``old``
    (typer gives the value, not the spelling, so the arguments are read)."""
    import sys

    if any(a == old or a.startswith(old + "=") for a in sys.argv[1:]):
        from crane.cli.render import note

        note(message)


def note_deprecated_out() -> None:
    """Say so when a results file was given as ``--out`` (a run directory in every other
    command; ``--json`` is the file's spelling)."""
    note_deprecated(
        "--out", "--out for a results file is deprecated; use --json (--out names a run directory)."
    )


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


def check_options(
    *,
    at_least: Mapping[str, tuple[Any, int]] | None = None,
    finite: Mapping[str, Any] | None = None,
    choices: Mapping[str, tuple[Any, Sequence[str]]] | None = None,
) -> None:
    """Raise ConfigError for the first option value that breaks its rule, naming the option,
    before any work (options are checked here, not where the value is first used, so a bad
    value never costs a model load or a statistics pass).

    ``at_least``: option → (value, minimum), ``None`` values pass (the option was left out);
    ``finite``: option → number (NaN and ±inf refused); ``choices``: option → (value, allowed).
    """
    for option, value in (finite or {}).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{option} must be a finite number, got {value}.")
    for option, (value, minimum) in (at_least or {}).items():
        if value is not None and value < minimum:
            raise ConfigError(f"{option} must be at least {minimum}, got {value}.")
    for option, (value, allowed) in (choices or {}).items():
        if value not in allowed:
            raise ConfigError(f"{option} {value!r} is not one of: {', '.join(allowed)}.")
