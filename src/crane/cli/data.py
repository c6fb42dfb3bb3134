"""``crane data show`` (the built-in corpora per language, any corpus files, one language in
detail) and ``crane data split`` (seeded identification / validation / evaluation parts)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from crane.cli.options import LangFieldOpt, TextFieldOpt
from crane.cli.render import console

app = typer.Typer(help="Inspect and split corpora.", no_args_is_help=True)

FormatOpt = Annotated[
    str, typer.Option("--format", help="auto | text | jsonl | csv | parquet | arrow.")
]
UnitOpt = Annotated[str, typer.Option(help="Plain text: one text per 'line' or 'paragraph'.")]


@app.command("show")
def data_show(
    languages: Annotated[
        list[str] | None,
        typer.Argument(
            help="Language codes to describe in detail (e.g. fr sw zh-Hant).", show_default=False
        ),
    ] = None,
    corpus: Annotated[
        list[Path] | None, typer.Option(help="Corpus file or directory to describe (repeatable).")
    ] = None,
    lang: Annotated[str | None, typer.Option(help="Language of plain-text files.")] = None,
    fmt: FormatOpt = "auto",
    text_field: TextFieldOpt = "text",
    lang_field: LangFieldOpt = "lang",
    unit: UnitOpt = "line",
) -> None:
    """Show the built-in corpora and what they hold per language (UDHR declarations and their
    completeness, this machine's gettext catalogs), any corpus files given, or, with language
    codes, the details for those languages."""
    from crane.data.builtin import describe_builtin
    from crane.data.corpus import read_corpus

    if languages:
        from crane.data.inventory import describe_language
        from crane.data.languages import parse_language_list

        for code in parse_language_list(languages):
            _print_language(describe_language(code))
        return
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
    if not corpus:
        _print_inventory()


def _print_inventory() -> None:
    from crane.data.inventory import language_inventory
    from crane.data.udhr import N_UNITS, declarations

    rows = language_inventory()
    table = Table(
        "language", "name", "udhr", "units", "gettext", "catalogs",
        title="Languages of the built-in corpora (udhr: the declaration a code gets, "
        f"units of {N_UNITS}; gettext: this machine's locale, .mo files)",
    )
    for row in rows:
        more = f" (+{row['udhr_alternatives']})" if row["udhr_alternatives"] else ""
        table.add_row(
            row["language"],
            row["name"],
            (row["udhr"] or "-") + more,
            str(row["udhr_units"]) if row["udhr"] else "-",
            row["gettext"] or "-",
            str(row["gettext_catalogs"]) if row["gettext"] else "-",
        )
    console.print(table)
    decls = declarations()
    complete = sum(1 for d in decls if d.complete)
    with_gettext = sum(1 for r in rows if r["gettext"] not in (None, "msgid"))
    console.print(
        f"UDHR: {len(decls)} declarations ({complete} with all {N_UNITS} units); gettext: "
        f"{with_gettext} language codes with catalogs on this machine. "
        "`crane data show fr` shows one language in detail (gettext sentence counts included)."
    )


def _print_language(info: dict[str, Any]) -> None:
    table = Table("corpus", "what", "value", title=f"{info['language']}: {info['name']}")
    udhr = info["udhr"]
    if "error" in udhr:
        table.add_row("udhr", "-", udhr["error"])
    else:
        table.add_row("udhr", "declaration", f"{udhr['code']} ({udhr['bcp47']}): {udhr['name']}")
        table.add_row("udhr", "script", str(udhr["script"] or "-"))
        missing = ", ".join(map(str, udhr["units_missing"])) or "none"
        table.add_row("udhr", "units", f"{udhr['units']} of 31 (missing: {missing})")
        table.add_row("udhr", "parts", f"identify {udhr['identify']}, heldout {udhr['heldout']}")
        table.add_row("udhr", "characters", str(udhr["chars"]))
        others = ", ".join(f"{d['code']} ({d['name']})" for d in udhr["alternatives"]) or "none"
        table.add_row("udhr", "other declarations", others)
    gettext = info["gettext"]
    if "locale" not in gettext:
        table.add_row("gettext", "-", gettext["error"])
    else:
        table.add_row("gettext", "locale", f"{gettext['locale']} ({gettext['catalogs']} catalogs)")
        if "sentences" in gettext:
            table.add_row(
                "gettext",
                "sentences",
                f"{gettext['sentences']} paired with English (identify {gettext['identify']}, "
                f"heldout {gettext['heldout']})",
            )
        for key in ("note", "error"):
            if key in gettext:
                table.add_row("gettext", key, gettext[key])
    console.print(table)


@app.command("split")
def data_split(
    corpus: Annotated[str, typer.Argument(help="Corpus file or directory (or a built-in name).")],
    out: Annotated[
        Path,
        typer.Option(
            help="Directory for identification/validation/evaluation.jsonl and split.json."
        ),
    ],
    seed: Annotated[int, typer.Option(help="Seed of the shuffle.")] = 0,
    fractions: Annotated[
        str, typer.Option(help="Identification, validation and evaluation shares, summing to 1.")
    ] = "0.6,0.2,0.2",
    lang: Annotated[str | None, typer.Option(help="Language of plain-text files.")] = None,
    fmt: FormatOpt = "auto",
    text_field: TextFieldOpt = "text",
    lang_field: LangFieldOpt = "lang",
    unit: UnitOpt = "line",
    overwrite: Annotated[bool, typer.Option(help="Replace split files already in --out.")] = False,
) -> None:
    """Cut a corpus into seeded identification / validation / evaluation parts (JSONL files
    with text, lang and item): a parallel corpus by item, identical texts kept in one part, so
    the parts never overlap."""
    from crane.data.builtin import load_corpus
    from crane.data.splits import SPLIT_PARTS, parse_fractions, split_corpus, write_split
    from crane.errors import ConfigError
    from crane.io import check_output_dir

    fracs = parse_fractions(fractions)
    if seed < 0:
        raise ConfigError(f"--seed must be 0 or more, got {seed}.")
    target = check_output_dir(out)
    existing = [
        p.name
        for p in [target / f"{name}.jsonl" for name in SPLIT_PARTS] + [target / "split.json"]
        if p.exists()
    ]
    if existing and not overwrite:
        raise ConfigError(
            f"{target} already holds {', '.join(existing)}; choose another --out or pass "
            "--overwrite to replace them."
        )
    texts = load_corpus(
        corpus,
        part="all",
        lang=lang,
        fmt=fmt,
        text_field=text_field,
        lang_field=lang_field,
        unit=unit,
    )
    parts = split_corpus(texts, fracs, seed=seed)
    written = write_split(parts, target)
    table = Table("part", *texts.languages, "file", title=f"Split of {corpus} (seed {seed})")
    for name, part in parts.items():
        counts = [str(len(part[lg])) if lg in part else "0" for lg in texts.languages]
        table.add_row(name, *counts, str(written[name]))
    console.print(table)
