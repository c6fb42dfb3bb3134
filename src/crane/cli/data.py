"""``crane data show``: the built-in corpora and any corpus files, with sizes per language."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from crane.cli.options import LangFieldOpt, TextFieldOpt
from crane.cli.render import console

app = typer.Typer(help="Inspect corpora.", no_args_is_help=True)


@app.command("show")
def data_show(
    corpus: Annotated[
        list[Path] | None, typer.Option(help="Corpus file or directory to describe (repeatable).")
    ] = None,
    lang: Annotated[str | None, typer.Option(help="Language of plain-text files.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto | text | jsonl | csv | parquet.")] = "auto",
    text_field: TextFieldOpt = "text",
    lang_field: LangFieldOpt = "lang",
    unit: Annotated[str, typer.Option(help="Plain text: one text per 'line' or 'paragraph'.")] = "line",
) -> None:
    """Show the built-in corpora (and any corpus files given) with sizes per language."""
    from crane.data.builtin import describe_builtin
    from crane.data.corpus import read_corpus

    table = Table("corpus", "language", "texts", "characters", "bytes", "note")
    for entry in describe_builtin():
        if not entry.get("available"):
            table.add_row(entry["name"], "-", "-", "-", "-", str(entry.get("reason", "")))
            continue
        for row in entry.get("summary", []):
            table.add_row(
                entry["name"], row["language"], str(row["texts"]), str(row["chars"]),
                str(row["bytes"]), str(entry.get("note", "")),
            )
    for path in corpus or []:
        found = read_corpus(
            path, lang=lang, fmt=fmt, text_field=text_field, lang_field=lang_field, unit=unit
        )
        for row in found.summary():
            table.add_row(
                str(path), row["language"], str(row["texts"]), str(row["chars"]),
                str(row["bytes"]), f"sha256 {found.provenance['sha256'][:12]}",
            )
    console.print(table)
