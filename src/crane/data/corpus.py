"""Corpora: texts per language with provenance, and readers for text, JSONL, CSV, Parquet and
Arrow (a ``datasets`` ``save_to_disk`` directory).

Every text is NFC-normalised and stripped on the way in; empty texts are dropped. A corpus's
``provenance["sha256"]`` hashes the normalised content, so two corpora with the same texts in
the same order have the same hash wherever they came from.
"""

from __future__ import annotations

import copy
import hashlib
import json
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crane.data.languages import (
    ByLanguage,
    is_language_code,
    language_name,
    normalize_language,
    parse_language_list,
)
from crane.data.readers import (
    EXTENSIONS,
    FORMAT_ALIASES,
    UNITS,
    Record,
    decode_text_file,
    format_of,
    parse_arrow,
    parse_csv,
    parse_jsonl,
    parse_parquet,
    parse_plain,
)
from crane.errors import ConfigError, CorpusError, LanguageError

__all__ = ["Corpus", "corpus_sha256", "normalize_text", "read_corpus"]


def normalize_text(text: str) -> str:
    """NFC-normalise and strip one text."""
    return unicodedata.normalize("NFC", text).strip()


def corpus_sha256(texts: dict[str, list[str]]) -> str:
    """SHA-256 of a canonical JSON of ``texts`` (keys sorted, UTF-8, no whitespace)."""
    canonical = json.dumps(texts, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _counts(texts: list[str]) -> dict[str, int]:
    return {
        "texts": len(texts),
        "chars": sum(len(t) for t in texts),
        "bytes": sum(len(t.encode("utf-8")) for t in texts),
    }


@dataclass
class Corpus(ByLanguage):
    """Texts per language (``language → [text, ...]``) with their provenance.

    On construction, language keys are normalised (:func:`normalize_language`), texts are
    NFC-normalised and stripped, empty texts and languages without texts are dropped, and
    ``provenance`` gains ``sha256``, ``normalization`` and ``counts``
    (``{lang: {texts, chars, bytes}}``) computed from the normalised texts.
    """

    texts: dict[str, list[str]]
    provenance: dict[str, Any] = field(default_factory=dict)
    loader: Callable[[list[str]], Corpus] | None = field(default=None, repr=False, compare=False)
    """For a built-in corpus: builds the same corpus (same part and options) for other
    languages, so :meth:`select` reaches languages this object did not load (the bundled
    UDHR's ~450, this machine's gettext locales). None for corpora read from files."""

    def __post_init__(self) -> None:
        clean: dict[str, list[str]] = {}
        for lang, items in self.texts.items():
            if isinstance(items, str):
                raise TypeError(f"texts[{lang!r}] must be a list of strings, not a string")
            code = normalize_language(lang)
            normalized = [normalize_text(t) for t in items]
            kept = [t for t in normalized if t]
            if kept:
                clean.setdefault(code, []).extend(kept)
        self.texts = clean
        prov = dict(self.provenance)
        prov.setdefault("source", "in-memory")
        prov["normalization"] = "NFC"
        prov["sha256"] = corpus_sha256(clean)
        prov["counts"] = {lang: _counts(items) for lang, items in clean.items()}
        self.provenance = prov

    @property
    def sha256(self) -> str:
        """Hash of the normalised content (see :func:`corpus_sha256`)."""
        return str(self.provenance["sha256"])

    _holder, _unit, _fix = "The corpus", "texts", "add texts in that language"

    def _by_language(self) -> dict[str, list[str]]:
        return self.texts

    def __iter__(self) -> Iterator[str]:
        return iter(self.texts)

    def select(self, langs: list[str] | str) -> Corpus:
        """Keep only ``langs`` (in that order); LanguageError if one has no texts.

        A built-in corpus (one with a :attr:`loader`) asked for a language it did not load is
        built anew for ``langs`` (a parallel corpus keeps only the items every language has).
        """
        codes = parse_language_list(langs)
        if self.loader is not None and any(c not in self.texts for c in codes):
            built = self.loader(codes)
            prov = copy.deepcopy(built.provenance)
            prov["selected_languages"] = codes
            return Corpus({c: list(built.texts[c]) for c in codes}, prov, built.loader)
        self._require(codes)
        prov = self._derived_provenance()
        prov["selected_languages"] = codes
        return Corpus({c: list(self.texts[c]) for c in codes}, prov, self.loader)

    def take(self, n_per_lang: int) -> Corpus:
        """Keep the first ``n_per_lang`` texts of every language (deterministic)."""
        if n_per_lang < 1:
            raise ValueError("n_per_lang must be at least 1")
        prov = self._derived_provenance()
        prov["take_per_language"] = n_per_lang
        return Corpus({lang: items[:n_per_lang] for lang, items in self.texts.items()}, prov)

    def merge(self, other: Corpus) -> Corpus:
        """Concatenate texts per language: this corpus's texts first, then ``other``'s."""
        texts = {lang: list(items) for lang, items in self.texts.items()}
        for lang, items in other.texts.items():
            texts.setdefault(lang, []).extend(items)
        sources: list[Any] = []
        for prov in (self.provenance, other.provenance):
            src = prov.get("source")
            sources.extend(src if isinstance(src, list) else [src])
        merged = {
            "source": sources,
            "merged_from": [self._derived_provenance(), other._derived_provenance()],
        }
        return Corpus(texts, merged)

    def summary(self) -> list[dict[str, Any]]:
        """One row per language: ``language, name, texts, chars, bytes``."""
        rows = []
        for lang, items in self.texts.items():
            rows.append({"language": lang, "name": language_name(lang), **_counts(items)})
        return rows

    def _derived_provenance(self) -> dict[str, Any]:
        """A copy of this corpus's provenance, with the parent's hash kept as ``parent_sha256``."""
        prov = copy.deepcopy(self.provenance)
        prov["parent_sha256"] = prov.pop("sha256", None)
        prov.pop("counts", None)
        return prov


def language_from_path(path: Path, root: Path | None = None) -> str | None:
    """Language named by a file (``en.txt``, ``corpus.zh-Hans.jsonl``) or a parent directory.

    Dotted parts of the file name are tried last to first, then parent directories from the
    nearest outwards, stopping at ``root`` (inclusive; only the direct parent when ``root`` is
    None). Returns None when nothing names a known language.
    """
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    candidates = list(reversed(stem.split(".")))
    parent = path.parent
    while True:
        candidates.append(parent.name)
        if root is None or parent == root or parent == parent.parent:
            break
        parent = parent.parent
    for cand in candidates:
        if cand and is_language_code(cand):
            return normalize_language(cand)
    return None


def _list_files(root: Path, fmt: str) -> list[Path]:
    """Corpus files below ``root`` (recursive, hidden entries skipped), sorted by relative path."""
    found = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        kind = format_of(p)
        if kind is not None and (fmt == "auto" or kind == fmt):
            found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _read_records(
    path: Path, fmt: str, unit: str, text_field: str, lang_field: str
) -> list[Record]:
    """Parse one file of format ``fmt`` into records."""
    if fmt == "parquet":
        return parse_parquet(path, text_field, lang_field)
    if fmt == "arrow":
        return parse_arrow(path, text_field, lang_field)
    text = decode_text_file(path)
    if fmt == "txt":
        return parse_plain(text, unit)
    if fmt == "jsonl":
        return parse_jsonl(text, path, text_field, lang_field)
    return parse_csv(text, path, text_field, lang_field, "\t" if fmt == "tsv" else ",")


def _resolve_lang(
    record: Record, path: Path, lang: str | None, from_name: str | None, lang_field: str
) -> str:
    if lang is not None:
        return lang
    if record.lang is not None and str(record.lang).strip():
        try:
            return normalize_language(str(record.lang))
        except LanguageError as exc:
            raise LanguageError(
                f"{record.where.capitalize()} of corpus file '{path}' has an unknown language "
                f"code {str(record.lang)!r} in field '{lang_field}'; use an ISO 639-1 code such "
                "as en, zh or vi (optionally with a script or region, e.g. zh-Hans)."
            ) from exc
    if from_name is not None:
        return from_name
    raise LanguageError(
        f"The language of {record.where} of corpus file '{path}' cannot be determined; "
        f"pass --lang or add a '{lang_field}' field (or name the file or its folder by language, "
        "e.g. en.txt)."
    )


def read_corpus(
    path: str | Path,
    *,
    lang: str | None = None,
    fmt: str = "auto",
    text_field: str = "text",
    lang_field: str = "lang",
    unit: str = "line",
) -> Corpus:
    """Read a corpus from a file or a directory of files.

    Formats (``fmt="auto"`` picks by extension): plain text (``.txt``/``.text``; one text per
    line, or per blank-line-separated paragraph with ``unit="paragraph"``), JSONL
    (``.jsonl``/``.ndjson``; objects with ``text_field`` and optionally ``lang_field``, or bare
    strings), CSV/TSV (a header row naming the columns), Parquet and Arrow (``.arrow``/``.feather``:
    the shards of a ``datasets`` ``save_to_disk`` directory; both need pyarrow). A directory
    is read recursively in sorted order and merged; hidden files and unknown extensions are
    skipped.

    The language of a text is ``lang`` when given (it overrides any per-record field), else the
    record's ``lang_field``, else the file's name (``en.txt``, ``corpus.zh-Hans.txt``) or a parent
    folder named by language. Raises CorpusError for unreadable or empty input and LanguageError
    when a language is unknown or cannot be determined.
    """
    root = Path(path)
    fmt_key = FORMAT_ALIASES.get(fmt.lower()) if fmt.lower() != "auto" else "auto"
    if fmt_key is None:
        raise ConfigError(
            f"Unknown corpus format {fmt!r}; use one of auto, {', '.join(sorted(FORMAT_ALIASES))}."
        )
    if unit not in UNITS:
        raise ConfigError(f"Unknown text unit {unit!r}; use 'line' or 'paragraph'.")
    lang_code = normalize_language(lang) if lang is not None else None
    if not root.exists():
        raise CorpusError(
            f"Corpus path '{root}' does not exist; check the path or use a built-in corpus "
            "(udhr, gettext)."
        )
    if root.is_dir():
        files = _list_files(root, fmt_key)
        if not files:
            exts = ", ".join(EXTENSIONS)
            raise CorpusError(
                f"Directory '{root}' contains no corpus files ({exts}); add files with one of "
                "these extensions or point at a single file."
            )
        name_root: Path | None = root
    else:
        kind = format_of(root) if fmt_key == "auto" else fmt_key
        if kind is None:
            raise CorpusError(
                f"Cannot tell the format of corpus file '{root}' from its extension; pass a "
                "format (txt, jsonl, csv, tsv, parquet or arrow)."
            )
        files = [root]
        name_root = None

    texts: dict[str, list[str]] = {}
    for file in files:
        kind = fmt_key if fmt_key != "auto" else format_of(file)
        assert kind is not None
        records = _read_records(file, kind, unit, text_field, lang_field)
        from_name = language_from_path(file, name_root) if lang_code is None else None
        for record in records:
            text = normalize_text(record.text)
            if not text:
                continue
            code = _resolve_lang(record, file, lang_code, from_name, lang_field)
            texts.setdefault(code, []).append(text)

    if not texts:
        what = "Directory" if root.is_dir() else "Corpus file"
        raise CorpusError(
            f"{what} '{root}' contains no texts; add at least one non-empty text "
            f"(for JSONL, CSV, Parquet and Arrow, in the field '{text_field}')."
        )
    provenance = {
        "source": str(root),
        "files": [f.relative_to(root).as_posix() if name_root else f.name for f in files],
        "reader": {
            "format": fmt_key,
            "unit": unit,
            "text_field": text_field,
            "lang_field": lang_field,
            "lang": lang_code,
        },
    }
    return Corpus(texts, provenance)
