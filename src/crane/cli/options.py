"""Option types that several commands share (the same flag, help text and type everywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
