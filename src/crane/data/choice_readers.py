"""Multiple-choice files per language: MMLU-style CSV/TSV and JSONL readers.

Readers cover the layouts of MMLU (raw headerless ``question,A,B,C,D,answer`` CSV rows), CMMLU
(``,Question,A,B,C,D,Answer`` with an id column), C-Eval (``id,question,A,B,C,D,answer``) and
VMLU (JSONL with ``"choices": ["A. ...", "B. ...", ...]`` and a letter answer). Field names
are matched case-insensitively; answers are letters (``A``-``Z``) or 0-based indices; every
text is NFC-normalised and stripped. Any problem a user can fix raises
:class:`~crane.errors.CorpusError` naming the file (and the row or line) and the fix.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crane.data.choice_items import ChoiceItem, ChoiceSet
from crane.data.choice_items import nfc as _nfc
from crane.data.jsonl import json_lines
from crane.data.languages import normalize_language
from crane.data.readers import decode_text_file
from crane.errors import ConfigError, CorpusError
from crane.io import parse_json

__all__ = ["FORMATS", "load_choice_set", "read_choice_file"]

FORMATS: dict[str, str] = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_LETTER_ANSWER = re.compile(r"^\(?([A-Za-z])[.):]?$")
_INDEX_ANSWER = re.compile(r"^\d+$")


def _fail(path: Path, where: str | None, problem: str, fix: str) -> CorpusError:
    place = (
        f"{where[0].upper()}{where[1:]} of multiple-choice file"
        if where
        else "Multiple-choice file"
    )
    return CorpusError(f"{place} '{path}' {problem}; {fix}.")


def _letter(i: int) -> str:
    return chr(ord("A") + i)


def _parse_answer(value: Any, n_choices: int, path: Path, where: str) -> int:
    """Letter (``A``-``Z``, any case) or 0-based index → index; CorpusError when invalid."""
    index: int | None = None
    if isinstance(value, bool):
        index = None
    elif isinstance(value, int):
        index = value
    elif isinstance(value, float) and value.is_integer():
        index = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if _LETTER_ANSWER.match(text):
            index = ord(_LETTER_ANSWER.match(text).group(1).upper()) - ord("A")  # type: ignore[union-attr]
        elif _INDEX_ANSWER.match(text):
            index = int(text)
    if index is None or not 0 <= index < n_choices:
        last = _letter(n_choices - 1)
        raise _fail(
            path,
            where,
            f"has answer {value!r}, which is not a valid letter or index for {n_choices} choices",
            f"give a letter A-{last} or a 0-based index 0-{n_choices - 1}",
        )
    return index


def _text_value(value: Any, path: Path, where: str, name: str) -> str:
    if isinstance(value, str):
        return _nfc(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _nfc(str(value))
    raise _fail(
        path,
        where,
        f"has a {type(value).__name__} in field '{name}', not text",
        "store the text as a string",
    )


_CHOICE_LABEL = re.compile(r"^\s*\(?([A-Za-z])\s*[.)]\s*")


def _strip_label(text: str, position: int) -> str:
    """Drop a leading ``A. `` / ``A) `` / ``(A) `` label when it names this position's letter."""
    match = _CHOICE_LABEL.match(text)
    if match and match.group(1).upper() == _letter(position):
        return text[match.end() :]
    return text


@dataclass
class _Fields:
    question: str
    answer: str
    choice_fields: list[str] | None
    choices_field: str | None
    id_field: str | None

    def configured(self) -> list[str]:
        names = [self.question, self.answer, *(self.choice_fields or [])]
        names += [n for n in (self.choices_field, self.id_field) if n]
        return names


class _Columns:
    """Case-insensitive field lookup over one header (CSV) or one object (JSONL)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.by_lower: dict[str, str] = {}
        for name in self.names:
            self.by_lower.setdefault(name.strip().lower(), name)

    def find(self, name: str) -> str | None:
        return self.by_lower.get(name.strip().lower())

    def listing(self) -> str:
        return ", ".join(repr(n) for n in self.names) or "none"


def _choice_plan(cols: _Columns, fields: _Fields) -> tuple[list[str] | None, str | None]:
    """``(letter/choice field names, list field name)``: exactly one is set, or neither."""
    if fields.choice_fields is not None:
        found = [cols.find(name) for name in fields.choice_fields]
        return ([f for f in found if f is not None] if all(found) else None), None
    if fields.choices_field is not None:
        return None, cols.find(fields.choices_field)
    letters: list[str] = []
    for i in range(26):
        name = cols.find(_letter(i))
        if name is None:
            break
        letters.append(name)
    if len(letters) >= 2:
        return letters, None
    for name in ("choices", "options"):
        if cols.find(name) is not None:
            return None, cols.find(name)
    return None, None


def _missing(path: Path, where: str, kind: str, wanted: str, cols: _Columns) -> CorpusError:
    return _fail(
        path,
        where,
        f"has no {kind} {wanted} (found: {cols.listing()})",
        "pass the right field names (question_field, choice_fields or choices_field, answer_field)",
    )


def _wanted_choices(fields: _Fields) -> str:
    if fields.choice_fields is not None:
        return "choice columns " + ", ".join(repr(n) for n in fields.choice_fields)
    if fields.choices_field is not None:
        return f"choice list '{fields.choices_field}'"
    return "choice columns 'A', 'B', ... or a 'choices' list"


def _make_item(
    path: Path,
    where: str,
    item_id: str,
    question: str,
    choices: list[str],
    answer: Any,
) -> ChoiceItem:
    if not question:
        raise _fail(path, where, "has an empty question", "fill in the question or drop the row")
    if len(choices) < 2:
        raise _fail(
            path,
            where,
            f"has {len(choices)} choice(s)",
            "give at least two answer choices per question",
        )
    for i, choice in enumerate(choices):
        if not choice:
            raise _fail(
                path,
                where,
                f"has an empty choice {_letter(i)}",
                "fill in every answer choice",
            )
    index = _parse_answer(answer, len(choices), path, where)
    return ChoiceItem(item_id, question, tuple(choices), index)


def _list_choices(value: Any, path: Path, where: str, name: str) -> list[str]:
    if isinstance(value, str):  # a JSON-encoded list in a CSV cell
        try:
            value = parse_json(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, list):
        raise _fail(
            path,
            where,
            f"has no list of choices in field '{name}'",
            'write the choices as a JSON list, e.g. ["A. ...", "B. ..."]',
        )
    return [_nfc(_strip_label(_text_value(v, path, where, name), i)) for i, v in enumerate(value)]


def _record_item(
    record: dict[str, Any], cols: _Columns, fields: _Fields, path: Path, where: str, n: int
) -> ChoiceItem:
    """One item from a header-keyed record (a CSV row or a JSONL object)."""
    q_name = cols.find(fields.question)
    if q_name is None:
        raise _missing(path, where, "question field", repr(fields.question), cols)
    a_name = cols.find(fields.answer)
    if a_name is None:
        raise _missing(path, where, "answer field", repr(fields.answer), cols)
    letters, list_name = _choice_plan(cols, fields)
    if letters is None and list_name is None:
        raise _missing(path, where, "choice fields:", _wanted_choices(fields), cols)
    question = _text_value(record[q_name], path, where, q_name)
    if letters is not None:
        choices = [_text_value(record[c], path, where, c) for c in letters]
    else:
        choices = _list_choices(record[list_name], path, where, str(list_name))
    if fields.id_field is not None:
        id_name = cols.find(fields.id_field)
        if id_name is None:
            raise _missing(path, where, "id field", repr(fields.id_field), cols)
    else:
        id_name = cols.find("id") or cols.find("")
    raw_id = record.get(id_name) if id_name is not None else None
    item_id = _nfc(str(raw_id)) if raw_id not in (None, "") else f"{path.stem}:{n}"
    return _make_item(path, where, item_id, question, choices, record[a_name])


def _csv_rows(text: str, path: Path, delimiter: str) -> list[tuple[int, list[str]]]:
    """``(line number, cells)`` of every non-blank row."""
    old_limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        rows = []
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append((reader.line_num, cells))
        return rows
    except csv.Error as exc:
        kind = "TSV" if delimiter == "\t" else "CSV"
        raise _fail(path, None, f"is not valid {kind} ({exc})", "check its quoting") from exc
    finally:
        csv.field_size_limit(old_limit)


def _is_headerless(first: list[str], fields: _Fields) -> bool:
    """MMLU's raw layout: the first row already ends in an answer letter and names no field."""
    if len(first) < 4 or first[-1].strip().upper() not in ("A", "B", "C", "D"):
        return False
    cols = _Columns(first)
    return not any(cols.find(name) is not None for name in fields.configured())


def _read_csv(text: str, path: Path, delimiter: str, fields: _Fields) -> list[ChoiceItem]:
    rows = _csv_rows(text, path, delimiter)
    if not rows:
        raise _fail(path, None, "has no rows", "add one question per row")
    items: list[ChoiceItem] = []
    if _is_headerless(rows[0][1], fields):
        width = len(rows[0][1])
        for n, (line, cells) in enumerate(rows):
            where = f"row {line}"
            if len(cells) != width:
                raise _fail(
                    path,
                    where,
                    f"has {len(cells)} cells where the first row has {width}",
                    "give every row the layout question,A,B,C,D,answer",
                )
            question = _nfc(cells[0])
            choices = [_nfc(c) for c in cells[1:-1]]
            items.append(_make_item(path, where, f"{path.stem}:{n}", question, choices, cells[-1]))
        return items
    header = rows[0][1]
    cols = _Columns(header)
    if len(rows) == 1:
        raise _fail(path, None, "has a header but no questions", "add one question per row")
    for n, (line, cells) in enumerate(rows[1:]):
        where = f"row {line}"
        if len(cells) != len(header):
            raise _fail(
                path,
                where,
                f"has {len(cells)} cells where the header has {len(header)}",
                "check the row's delimiters and quoting",
            )
        record = dict(zip(header, cells, strict=True))
        items.append(_record_item(record, cols, fields, path, where, n))
    return items


def _read_jsonl(text: str, path: Path, fields: _Fields) -> list[ChoiceItem]:
    def bad_json(line: int, exc: json.JSONDecodeError) -> CorpusError:
        return _fail(
            path,
            f"line {line}",
            f"is not valid JSON ({exc.msg} at column {exc.colno})",
            "fix or remove that line",
        )

    items: list[ChoiceItem] = []
    for line, obj in json_lines(text, bad_json):
        where = f"line {line}"
        if not isinstance(obj, dict):
            raise _fail(
                path,
                where,
                f"is a JSON {type(obj).__name__}, not an object",
                'write one object per line, e.g. {"question": ..., "choices": [...], '
                '"answer": "A"}',
            )
        items.append(_record_item(obj, _Columns(list(obj)), fields, path, where, len(items)))
    return items


def read_choice_file(
    path: str | Path,
    *,
    question_field: str = "question",
    choice_fields: Sequence[str] | None = None,
    choices_field: str | None = None,
    answer_field: str = "answer",
    id_field: str | None = None,
) -> list[ChoiceItem]:
    """Read multiple-choice items from a CSV, TSV or JSONL file.

    CSV/TSV files have a header row, except MMLU's raw ``question,A,B,C,D,answer`` rows (detected
    when the first row's last cell is a letter A-D and it names none of the configured fields).
    Choices come from ``choice_fields`` (columns, in order), else ``choices_field`` (a list per
    record; a leading ``A. ``/``A) `` label matching the position is stripped), else columns
    ``A``, ``B``, ... when present, else a ``choices`` list. Field names match case-insensitively.
    The id is ``id_field``, else an ``id`` (or unnamed, as in CMMLU) column, else
    ``<file stem>:<n>``. Answers: a letter (any case) or a 0-based index.

    Raises CorpusError for an unreadable, empty or non-UTF-8 file, a missing field (listing the
    fields found), an invalid answer, fewer than two choices, or an empty question or choice.
    """
    path = Path(path).expanduser()
    if choice_fields is not None and choices_field is not None:
        raise ConfigError(
            "Give either choice_fields (one column per choice) or choices_field "
            "(one list of choices), not both."
        )
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise _fail(
            path,
            None,
            f"has an unsupported extension '{path.suffix}'",
            f"use one of {', '.join(FORMATS)} (MMLU-style CSV/TSV or JSONL)",
        )
    if not path.is_file():
        raise _fail(path, None, "does not exist", "check the path")
    text = decode_text_file(path)
    if not text.strip():
        raise _fail(path, None, "is empty", "add one question per row or line")
    fields = _Fields(
        question_field,
        answer_field,
        list(choice_fields) if choice_fields is not None else None,
        choices_field,
        id_field,
    )
    if fmt == "jsonl":
        items = _read_jsonl(text, path, fields)
    else:
        items = _read_csv(text, path, "\t" if fmt == "tsv" else ",", fields)
    if not items:
        raise _fail(path, None, "has no questions", "add one question per row or line")
    return items


def load_choice_set(files: dict[str, str | Path], **fields: Any) -> ChoiceSet:
    """Read one file per language (``{language: path}``) into a ``question``-style ChoiceSet.

    ``fields`` go to :func:`read_choice_file`. Provenance records each file's path, sha256 and
    item count.
    """
    if not files:
        raise ConfigError("No multiple-choice files were given; pass {language: path, ...}.")
    items: dict[str, list[ChoiceItem]] = {}
    record: dict[str, dict[str, Any]] = {}
    for lang, file in files.items():
        code = normalize_language(lang)
        if code in items:
            raise ConfigError(
                f"Language '{lang}' is given twice (as '{code}'); give one file per language."
            )
        path = Path(file).expanduser()
        items[code] = read_choice_file(path, **fields)
        record[code] = {
            "path": str(path),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "n_items": len(items[code]),
        }
    provenance = {
        "source": "files",
        "files": record,
        "fields": {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in fields.items()},
    }
    return ChoiceSet(items, provenance, "question")
