"""Low-level corpus file parsing: decode safely, then split into records.

Each parser returns :class:`Record` objects (raw text, raw language value or None, and where in
the file it came from); :func:`crane.data.corpus.read_corpus` turns them into a ``Corpus``.
A language field may name several fields joined by ``+`` (``iso_639_3+iso_15924``, as FLORES+
has them): their values are joined with ``_`` (``cmn_Hans``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crane.errors import CorpusError
from crane.io import parse_json

# Extension → format name. Formats: txt (plain text), jsonl, csv, tsv, parquet, arrow (Arrow
# IPC stream or file: the shards ``datasets.Dataset.save_to_disk`` writes, Feather v2).
EXTENSIONS: dict[str, str] = {
    ".txt": "txt",
    ".text": "txt",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
}
FORMAT_ALIASES: dict[str, str] = {
    "txt": "txt",
    "text": "txt",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "csv": "csv",
    "tsv": "tsv",
    "parquet": "parquet",
    "arrow": "arrow",
    "feather": "arrow",
}
UNITS = ("line", "paragraph")

_NEWLINE = re.compile(r"\r\n|\n|\r")


@dataclass
class Record:
    """One text as found in a file, before normalisation and language resolution."""

    text: str
    lang: Any
    where: str  # e.g. "line 3", "row 7"


def format_of(path: Path) -> str | None:
    """Format name for a file extension, or None when the extension is not a corpus format."""
    return EXTENSIONS.get(path.suffix.lower())


def decode_text_file(path: Path) -> str:
    """Read ``path`` as UTF-8 (a leading BOM is dropped); CorpusError on NUL bytes or bad bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(
            f"Corpus file '{path}' cannot be read ({exc.strerror}); check its permissions."
        ) from exc
    nul = data.find(b"\x00")
    if nul >= 0:
        raise CorpusError(
            f"Corpus file '{path}' contains a NUL byte at offset {nul}, so it looks binary "
            "(or UTF-16); save it as UTF-8 text."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"Corpus file '{path}' is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); re-save it as UTF-8."
        ) from exc
    return text[1:] if text.startswith("\ufeff") else text


def parse_plain(text: str, unit: str) -> list[Record]:
    """One record per line (``unit="line"``) or per blank-line-separated paragraph."""
    if unit == "line":
        return [Record(t, None, f"line {i + 1}") for i, t in enumerate(_NEWLINE.split(text))]
    records: list[Record] = []
    block: list[str] = []
    start = 0
    for i, line in enumerate(_NEWLINE.split(text) + [""]):
        if line.strip():
            if not block:
                start = i + 1
            block.append(line.strip())
        elif block:
            records.append(Record("\n".join(block), None, f"paragraph at line {start}"))
            block = []
    return records


def _field_text(value: Any, path: Path, where: str, text_field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CorpusError(
            f"{where.capitalize()} of corpus file '{path}' has a {type(value).__name__} in field "
            f"'{text_field}', not a string; store the text as a string."
        )
    return value


def _missing_field(path: Path, where: str, kind: str, name: str, available: list[str]) -> str:
    names = ", ".join(repr(a) for a in available) or "none"
    return (
        f"{where} of corpus file '{path}' has no {kind} '{name}' (available: {names}); "
        f"pass the right {kind} name for the text."
    )


def lang_fields(lang_field: str) -> list[str]:
    """The field names of a language field: ``"iso_639_3+iso_15924"`` → both, else one."""
    return [f for f in lang_field.split("+") if f] if "+" in lang_field else [lang_field]


def join_lang(values: list[Any]) -> Any:
    """One language value from the values of :func:`lang_fields` (None when one is missing)."""
    if len(values) == 1:
        return values[0]
    if any(v is None or not str(v).strip() for v in values):
        return None
    return "_".join(str(v).strip() for v in values)


def parse_jsonl(text: str, path: Path, text_field: str, lang_field: str) -> list[Record]:
    """One record per non-blank line; a line is a JSON object (or a bare JSON string)."""
    records = []
    for i, line in enumerate(_NEWLINE.split(text)):
        if not line.strip():
            continue
        where = f"line {i + 1}"
        try:
            obj = parse_json(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(
                f"Line {i + 1} of corpus file '{path}' is not valid JSON ({exc.msg} at column "
                f"{exc.colno}); fix or remove that line."
            ) from exc
        if isinstance(obj, str):
            records.append(Record(obj, None, where))
            continue
        if not isinstance(obj, dict):
            raise CorpusError(
                f"Line {i + 1} of corpus file '{path}' is a JSON {type(obj).__name__}, not an "
                f'object; write one object per line, e.g. {{"{text_field}": "..."}}.'
            )
        if text_field not in obj:
            raise CorpusError(_missing_field(path, f"Line {i + 1}", "field", text_field, list(obj)))
        value = _field_text(obj[text_field], path, where, text_field)
        if value is not None:
            lang = join_lang([obj.get(f) for f in lang_fields(lang_field)])
            records.append(Record(value, lang, where))
    return records


def parse_csv(
    text: str, path: Path, text_field: str, lang_field: str, delimiter: str
) -> list[Record]:
    """One record per data row (the first row is the header)."""
    old_limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        columns = list(reader.fieldnames or [])
        if not columns:
            return []
        if text_field not in columns:
            raise CorpusError(_missing_field(path, "The header", "column", text_field, columns))
        fields = lang_fields(lang_field)
        has_lang = all(f in columns for f in fields)
        records = []
        for row in reader:
            where = f"row {reader.line_num}"
            value = row.get(text_field)
            if value is None:
                continue
            lang = join_lang([row.get(f) or None for f in fields]) if has_lang else None
            records.append(Record(value, lang or None, where))
    except csv.Error as exc:
        raise CorpusError(
            f"Corpus file '{path}' is not valid {'TSV' if delimiter == chr(9) else 'CSV'} "
            f"({exc}); check its quoting."
        ) from exc
    finally:
        csv.field_size_limit(old_limit)
    return records


def _pyarrow(path: Path, kind: str) -> Any:
    try:
        import pyarrow as pa
    except ImportError as exc:  # pragma: no cover - pyarrow is installed in tests
        raise CorpusError(
            f"Reading the {kind} file '{path}' needs pyarrow; install it with "
            "pip install 'crane-neurons[parquet]'."
        ) from exc
    return pa


def _table_records(
    schema: Any, read: Any, path: Path, text_field: str, lang_field: str, pa: Any
) -> list[Record]:
    """Records of a table whose ``schema`` is known; ``read(columns)`` reads those columns."""
    columns = list(schema.names)
    if text_field not in columns:
        raise CorpusError(_missing_field(path, "The schema", "column", text_field, columns))
    kind = schema.field(text_field).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise CorpusError(
            f"Column '{text_field}' of corpus file '{path}' has type {kind}, not string; "
            "choose a text column."
        )
    fields = lang_fields(lang_field)
    has_lang = all(f in columns for f in fields)
    wanted = [text_field] + ([f for f in fields if f != text_field] if has_lang else [])
    table = read(wanted)
    texts = table.column(text_field).to_pylist()
    if has_lang:
        per_field = [table.column(f).to_pylist() for f in fields]
        langs = [join_lang(list(values)) for values in zip(*per_field, strict=True)]
    else:
        langs = [None] * len(texts)
    return [
        Record(t, lg, f"row {i + 1}")
        for i, (t, lg) in enumerate(zip(texts, langs, strict=True))
        if t is not None
    ]


def parse_parquet(path: Path, text_field: str, lang_field: str) -> list[Record]:
    """One record per row of a Parquet file (null texts skipped)."""
    pa = _pyarrow(path, "Parquet")
    import pyarrow.parquet as pq

    def bad(exc: Exception) -> CorpusError:
        return CorpusError(
            f"Corpus file '{path}' is not a readable Parquet file ({exc}); check the file."
        )

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise bad(exc) from exc

    def read(columns: list[str]) -> Any:
        try:
            return pq.read_table(path, columns=columns)
        except (pa.ArrowException, OSError) as exc:
            raise bad(exc) from exc

    return _table_records(schema, read, path, text_field, lang_field, pa)


def parse_arrow(path: Path, text_field: str, lang_field: str) -> list[Record]:
    """One record per row of an Arrow IPC file: the stream format ``datasets``'
    ``save_to_disk`` writes (``data-00000-of-00001.arrow``) or the file format (Feather v2)."""
    pa = _pyarrow(path, "Arrow")
    import pyarrow.ipc as ipc

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(
            f"Corpus file '{path}' cannot be read ({exc.strerror}); check its permissions."
        ) from exc
    table = None
    problems = []
    for opener in (ipc.open_stream, ipc.open_file):
        try:
            table = opener(pa.py_buffer(data)).read_all()
            break
        except (pa.ArrowException, OSError, ValueError) as exc:
            problems.append(str(exc))
    if table is None:
        raise CorpusError(
            f"Corpus file '{path}' is not a readable Arrow stream or file ({problems[-1]}); "
            "check the file (datasets' save_to_disk writes Arrow streams)."
        )
    return _table_records(
        table.schema, table.select, path, text_field, lang_field, pa
    )
