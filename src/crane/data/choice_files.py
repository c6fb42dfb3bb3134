"""Multiple-choice items per language: MMLU-style file readers and a built-in parallel test.

Readers cover the layouts of MMLU (raw headerless ``question,A,B,C,D,answer`` CSV rows), CMMLU
(``,Question,A,B,C,D,Answer`` with an id column), C-Eval (``id,question,A,B,C,D,answer``) and
VMLU (JSONL with ``"choices": ["A. ...", "B. ...", ...]`` and a letter answer). Field names
are matched case-insensitively; answers are letters (``A``-``Z``) or 0-based indices; every
text is NFC-normalised and stripped. Any problem a user can fix raises
:class:`~crane.errors.CorpusError` naming the file (and the row or line) and the fix.

:func:`builtin_continuation_set` derives a *parallel* continuation test from the held-out
gettext sentences (or, without gettext catalogs, from the held-out UDHR paragraphs): the same
items, distractor sources and answer positions in every language.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import random
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crane.data.builtin import (
    UDHR_PARTS,
    GettextUnavailable,
    gettext_corpus,
    udhr_corpus,
    udhr_units,
)
from crane.data.languages import normalize_language, parse_language_list
from crane.data.readers import decode_text_file
from crane.errors import ConfigError, CorpusError, LanguageError

__all__ = [
    "STYLES",
    "ChoiceItem",
    "ChoiceSet",
    "builtin_continuation_set",
    "load_choice_set",
    "read_choice_file",
    "split_half",
    "uses_spaces",
]

STYLES = ("question", "continuation")
"""How items are put to a model (see :mod:`crane.evaluation.choice`): ``question`` items are
asked as ``"{prompt}\\nAnswer:"``; ``continuation`` items use the prompt as it is."""

NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "dz"})
"""Languages written without spaces between words (primary subtags)."""

BUILTIN_LANGUAGES = ("en", "zh", "vi")
"""Languages of the built-in continuation test."""

MIN_WORDS = 4
"""Built-in set: fewest words a message needs in a space-separated language (≥ 2 per half)."""
MIN_CHARS = 6
"""Built-in set: fewest characters a message needs in a language without spaces (≥ 3 per half)."""

FORMATS: dict[str, str] = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_LETTER_ANSWER = re.compile(r"^\(?([A-Za-z])[.):]?$")
_INDEX_ANSWER = re.compile(r"^\d+$")


def uses_spaces(language: str) -> bool:
    """Whether ``language`` separates words with spaces (``False`` for zh, ja, th, ...)."""
    return normalize_language(language).split("-")[0] not in NO_SPACE_LANGUAGES


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


# ---- items and sets -----------------------------------------------------------------------


@dataclass(frozen=True)
class ChoiceItem:
    """One multiple-choice item.

    Attributes:
        id: an identifier (from the file, or ``<file stem>:<n>``).
        prompt: the question (``question`` style) or the text to continue (``continuation``).
        choices: the answer options, at least two.
        answer: index of the correct option (0-based).
    """

    id: str
    prompt: str
    choices: tuple[str, ...]
    answer: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        if len(self.choices) < 2:
            raise CorpusError(
                f"Item {self.id!r} has {len(self.choices)} choice(s); give at least two."
            )
        if not 0 <= int(self.answer) < len(self.choices):
            raise CorpusError(
                f"Item {self.id!r} has answer {self.answer}, outside 0-{len(self.choices) - 1}; "
                "give the 0-based index of the correct choice."
            )


@dataclass
class ChoiceSet:
    """Multiple-choice items per language (``language → [ChoiceItem, ...]``) with provenance.

    ``style`` (one of :data:`STYLES`) says how the items are put to a model. Language keys are
    normalised (:func:`normalize_language`); every language needs at least one item.
    ``provenance`` gains ``style``, ``normalization`` and ``counts`` (items per language).
    """

    items: dict[str, list[ChoiceItem]]
    provenance: dict[str, Any] = field(default_factory=dict)
    style: str = "question"

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ConfigError(
                f"Unknown multiple-choice style {self.style!r}; use one of {', '.join(STYLES)}."
            )
        clean: dict[str, list[ChoiceItem]] = {}
        for lang, items in self.items.items():
            code = normalize_language(lang)
            if code in clean:
                raise ConfigError(
                    f"Language '{lang}' appears twice (as '{code}'); give one item list per "
                    "language."
                )
            if not items:
                raise LanguageError(
                    f"The multiple-choice set has no items in '{code}'; give at least one item "
                    "per language or leave the language out."
                )
            clean[code] = list(items)
        self.items = clean
        prov = dict(self.provenance)
        prov.setdefault("source", "in-memory")
        prov["normalization"] = "NFC"
        prov["style"] = self.style
        prov["counts"] = {lang: len(items) for lang, items in clean.items()}
        self.provenance = prov

    @property
    def languages(self) -> list[str]:
        """Languages with items, in insertion order."""
        return list(self.items)

    def __getitem__(self, lang: str) -> list[ChoiceItem]:
        code = normalize_language(lang)
        if code not in self.items:
            raise LanguageError(self._missing_message(code))
        return self.items[code]

    def __contains__(self, lang: object) -> bool:
        if not isinstance(lang, str):
            return False
        try:
            return normalize_language(lang) in self.items
        except LanguageError:
            return False

    def _missing_message(self, code: str) -> str:
        available = ", ".join(self.languages) or "none"
        return (
            f"The multiple-choice set has no items in '{code}' (available: {available}); "
            "choose among the available languages or add a file for that language."
        )

    def select(self, langs: Iterable[str] | str) -> ChoiceSet:
        """Keep only ``langs`` (in that order); LanguageError if one is missing."""
        codes = parse_language_list(langs)
        for code in codes:
            if code not in self.items:
                raise LanguageError(self._missing_message(code))
        prov = copy.deepcopy(self.provenance)
        prov["selected_languages"] = codes
        return ChoiceSet({c: list(self.items[c]) for c in codes}, prov, self.style)

    def take(self, n: int) -> ChoiceSet:
        """Keep the first ``n`` items of every language (a parallel set stays parallel)."""
        if n < 1:
            raise ConfigError(f"take needs at least 1 item per language, got {n}.")
        prov = copy.deepcopy(self.provenance)
        prov["take_per_language"] = n
        if isinstance(prov.get("items"), list):  # per-item provenance of a built-in set
            prov["items"] = prov["items"][:n]
        return ChoiceSet({lang: items[:n] for lang, items in self.items.items()}, prov, self.style)


# ---- file readers --------------------------------------------------------------------------


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
            value = json.loads(value)
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
    items: list[ChoiceItem] = []
    for i, line in enumerate(re.split(r"\r\n|\n|\r", text)):
        if not line.strip():
            continue
        where = f"line {i + 1}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _fail(
                path,
                where,
                f"is not valid JSON ({exc.msg} at column {exc.colno})",
                "fix or remove that line",
            ) from exc
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


# ---- built-in parallel continuation test -----------------------------------------------------


def _has_letter(text: str) -> bool:
    return any(unicodedata.category(ch).startswith(("L", "N")) for ch in text)


def _split_spaced(text: str) -> tuple[str, str] | None:
    """At the whitespace nearest the character middle that leaves ≥ 2 words on each side."""
    gaps = list(re.finditer(r"\s+", text))
    n_words = len(gaps) + 1
    if n_words < MIN_WORDS:
        return None
    middle = len(text) / 2
    candidates = gaps[1 : n_words - 2]  # gap k has k + 1 words before it
    best = min(candidates, key=lambda m: abs(m.start() - middle))
    return text[: best.start()], text[best.end() :]


def _cuttable(text: str, p: int) -> bool:
    before, after = text[p - 1], text[p]
    if after.isspace() or unicodedata.category(after).startswith("P"):
        return False  # the continuation would open with a space or a punctuation mark
    # never inside a Latin word or a number embedded in the text ("shell", "2024")
    return not (before.isascii() and before.isalnum() and after.isascii() and after.isalnum())


def _split_unspaced(text: str) -> tuple[str, str] | None:
    """At the character middle (moved to the nearest position that does not cut a Latin word
    or open the continuation with punctuation), leaving ≥ 3 characters on each side."""
    if len(text) < MIN_CHARS:
        return None
    half = MIN_CHARS // 2
    positions = [p for p in range(half, len(text) - half + 1) if _cuttable(text, p)]
    if not positions:
        return None
    middle = len(text) / 2
    p = min(positions, key=lambda q: abs(q - middle))
    return text[:p].rstrip(), text[p:].strip()


def split_half(text: str, language: str) -> tuple[str, str] | None:
    """``(first half, second half)`` of a message, or ``None`` when it is too short.

    Space-separated languages split at the word boundary nearest the middle (each half at least
    two words, the message at least :data:`MIN_WORDS`); languages without spaces (zh, ja, ...)
    at the character middle (each half at least three characters). Both halves must contain a
    letter or digit.
    """
    text = _nfc(text)
    halves = _split_spaced(text) if uses_spaces(language) else _split_unspaced(text)
    if halves is None or not all(_has_letter(h) for h in halves):
        return None
    return halves


def _parallel_source(languages: list[str]) -> tuple[list[list[str]], dict[str, Any]]:
    """Held-out parallel messages ``[n_messages][language]`` and their provenance."""
    try:
        corpus = gettext_corpus("heldout")
        texts = {lang: corpus[lang] for lang in languages}
        provenance = {
            "source": "gettext",
            "part": "heldout",
            "gettext_seed": corpus.provenance.get("seed"),
            "corpus_sha256": corpus.sha256,
            "unit": "message",
        }
    except GettextUnavailable as exc:
        units = {u["id"]: u for u in udhr_units()}
        texts = {
            lang: [_nfc(p) for i in UDHR_PARTS["heldout"] for p in units[i][lang]]
            for lang in languages
        }
        provenance = {
            "source": "udhr",
            "part": "heldout",
            "corpus_sha256": udhr_corpus("heldout").sha256,
            "unit": "paragraph of the held-out units (articles 16-30)",
            "fallback_reason": str(exc),
        }
    lengths = {len(t) for t in texts.values()}
    if len(lengths) != 1:
        raise CorpusError(
            f"The built-in {provenance['source']} texts are not aligned across languages "
            f"({', '.join(f'{k}: {len(v)}' for k, v in texts.items())}); this is a bug, "
            "please report it."
        )
    n = lengths.pop()
    return [[texts[lang][i] for lang in languages] for i in range(n)], provenance


def builtin_continuation_set(
    languages: Sequence[str] | str = ("en", "zh", "vi"),
    *,
    n_items: int = 60,
    n_choices: int = 4,
    seed: int = 0,
) -> ChoiceSet:
    """A parallel continuation test: the same items in every language, built on this machine.

    From the held-out gettext messages (or the held-out UDHR paragraphs when the gettext
    catalogs are missing), messages that split into two non-trivial halves in every language
    (:func:`split_half`) are eligible. With ``random.Random(seed)``: ``n_items`` messages are
    drawn (fewer when fewer are eligible); for each, ``n_choices - 1`` distractor messages are
    drawn from the other eligible ones, skipping any whose second half equals the true one or an
    earlier distractor's in some language; the correct answer's position is drawn uniformly.
    Item = prompt (first half) and choices (second halves). Messages, distractor sources and
    answer positions are shared by every language; ``provenance["items"]`` lists, per item, the
    source message index and the source of every choice (``choice_sources``).
    """
    langs = parse_language_list(languages)
    for lang in langs:
        if lang not in BUILTIN_LANGUAGES:
            raise LanguageError(
                f"The built-in continuation test has no '{lang}' texts; choose among "
                f"{', '.join(BUILTIN_LANGUAGES)} or load your own files."
            )
    if n_items < 1:
        raise ConfigError(f"n_items must be at least 1, got {n_items}.")
    if n_choices < 2:
        raise ConfigError(f"n_choices must be at least 2, got {n_choices}.")
    # Eligibility and distinctness are judged in all built-in languages, so a seed gives the
    # same items whichever languages are asked for.
    every = list(BUILTIN_LANGUAGES)
    messages, source = _parallel_source(every)
    halves: dict[int, list[tuple[str, str]]] = {}
    for index, texts in enumerate(messages):
        split = [split_half(t, lang) for t, lang in zip(texts, every, strict=True)]
        if all(s is not None for s in split):
            halves[index] = split  # type: ignore[assignment]
    eligible = sorted(halves)
    if len(eligible) < n_choices:
        raise CorpusError(
            f"Only {len(eligible)} built-in {source['source']} messages split into two halves in "
            f"every language, fewer than the {n_choices} choices asked for; ask for fewer choices."
        )
    rng = random.Random(seed)
    chosen = rng.sample(eligible, min(n_items, len(eligible)))
    items: dict[str, list[ChoiceItem]] = {lang: [] for lang in langs}
    records: list[dict[str, Any]] = []
    for index in chosen:
        taken: list[int] = []
        for other in rng.sample(eligible, len(eligible)):
            if len(taken) == n_choices - 1:
                break
            if other == index:
                continue
            clash = any(
                halves[other][k][1] == halves[j][k][1]
                for k in range(len(every))
                for j in (index, *taken)
            )
            if not clash:
                taken.append(other)
        if len(taken) < n_choices - 1:
            raise CorpusError(
                f"The built-in {source['source']} messages have too few distinct second halves "
                f"for {n_choices} choices; ask for fewer choices."
            )
        answer = rng.randrange(n_choices)
        sources = taken[:answer] + [index] + taken[answer:]
        item_id = f"{source['source']}:{index}"
        for lang in langs:
            k = every.index(lang)
            prompt = halves[index][k][0]
            choices = tuple(halves[j][k][1] for j in sources)
            items[lang].append(ChoiceItem(item_id, prompt, choices, answer))
        records.append({"source_index": index, "choice_sources": sources, "answer": answer})
    provenance = {
        **source,
        "builder": "builtin_continuation_set",
        "seed": seed,
        "n_items": len(chosen),
        "n_items_requested": n_items,
        "n_choices": n_choices,
        "n_eligible": len(eligible),
        "split": (
            f"space-separated languages: at the word boundary nearest the middle, message of at "
            f"least {MIN_WORDS} words; others: at the character middle, message of at least "
            f"{MIN_CHARS} characters"
        ),
        "items": records,
    }
    return ChoiceSet(items, provenance, "continuation")
