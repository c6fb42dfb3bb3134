"""Parallel sentences from the machine's gettext catalogs, in any language it has catalogs for.

Debian-style systems ship compiled catalogs as ``<locale_dir>/<locale>/LC_MESSAGES/<domain>.mo``;
their msgids are the English source strings. For the languages asked for, this module finds
one locale directory per language (:func:`find_locale`: ``fr`` → ``fr``, ``zh`` → ``zh_CN``,
``pt-BR`` → ``pt_BR``, ``sr-Latn`` → ``sr@latin``; English is the msgids themselves), pairs the
translations of each msgid over the domains every chosen locale has, and keeps only clean
natural-language sentences (see :func:`clean_message`). The strings keep their packages' own
licences (mostly GPL), so they are read at run time and never written into this repository.
"""

from __future__ import annotations

import functools
import gettext
import hashlib
import re
import struct
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from crane.data.languages import normalize_language, parse_language_list, tag_parts
from crane.errors import CorpusError, LanguageError

DEFAULT_LOCALE_DIR = "/usr/share/locale"
LOCALES: dict[str, str] = {"zh": "zh_CN", "vi": "vi"}
"""The locales of the default languages (en, zh, vi); English is the msgid."""
ENGLISH = "en"
MIN_WORDS = 8
MAX_WORDS = 30

# printf-style (%s, %-10d, %1$s, %(name)s, %%), brace-style ({}, {0}, {name}) and shell ($x, ${x}).
_FORMAT = re.compile(
    r"%(?:\([^)]*\))?[-+ #0']*(?:\d+\$)?(?:\d+|\*)?(?:\.(?:\d+|\*))?"
    r"(?:hh|h|ll|l|L|q|j|z|t|I64|I32)?[A-Za-z%]"
    r"|\{[^{}]*\}|\$\{?\w"
)
_OPTION = re.compile(r"(?:^|[\s(\[\"'`‘“«])--?[A-Za-z0-9]")  # --foo, -x
_MARKUP = re.compile(r"<[^<>\s][^<>]*>|&[A-Za-z]+;|&#\d+;")  # <b>, </a>, <FILE>, &amp;
# Command syntax and aligned help columns: [--x], a|b, `cmd`, \\, ^c, "  ", leading "* " or "- ".
_SYNTAX = re.compile(r"[<>\[\]\\`|^~@#]| {2,}|^[*\-•]")
# Identifiers, calls, paths, URLs, assignments, file extensions: code rather than prose.
_CODE = re.compile(r"[A-Za-z0-9]_[A-Za-z0-9]|\w\(\)|::|->|=|[/\\][\w.]|\bhttps?:|\.\w{2,4}\b")
_SENTENCE_BREAK = re.compile(r"[.!?][\"'”’)]?\s+[\"'“‘(]?[A-Z]")
_ACCEL_SUFFIX = re.compile(r"\s*\([_&][A-Za-z0-9]\)")  # "文件(_F)", "Tệp (&F)"
_ACCEL_PREFIX = re.compile(r"(?<![\w&])[_&](?=\w)")  # "_File", "&Open"
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_NON_ASCII_LATIN = frozenset({"vi"})
"""Latin-script languages whose real sentences always carry diacritics: an ASCII-only
translation is dropped (untranslated or stripped of its tone marks)."""

# Locale-name modifiers (``sr@latin``) that name a script or a variant; others (``en@quot``,
# ``en@boldquot``) mark typographic variants of English and are skipped.
_MODIFIER_SCRIPTS = {"latin": "Latn", "latn": "Latn", "cyrillic": "Cyrl", "iqtelif": "Latn"}
_MODIFIER_VARIANTS = {"valencia": "valencia", "ije": "ijekavsk"}


class GettextUnavailable(CorpusError):
    """The machine has no usable gettext catalogs for the languages asked for."""


@dataclass(frozen=True)
class GettextMessage:
    """One msgid: its English text and its translations (in the order of ``languages`` of
    :func:`read_messages`, English excluded), cleaned and NFC."""

    domain: str
    en: str
    translations: tuple[str, ...]


@dataclass(frozen=True)
class GettextTriple:
    """One msgid with its Chinese (zh_CN) and Vietnamese translations, cleaned and NFC."""

    domain: str
    en: str
    zh: str
    vi: str


def _unavailable(locale_dir: Path, detail: str, locales: Sequence[str]) -> GettextUnavailable:
    names = "/".join(locales) or "non-English"
    return GettextUnavailable(
        f"This machine has no usable {names} gettext catalogs under '{locale_dir}' ({detail}); "
        "use the bundled 'udhr' corpus instead, or install the translations (on Debian/Ubuntu, "
        "packages such as coreutils, git, apt and libgtk2.0-common ship them; make sure dpkg "
        "does not exclude /usr/share/locale)."
    )


# --- locales --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def locale_language(name: str) -> str | None:
    """The language code a locale directory name stands for (``pt_BR`` → ``pt-BR``,
    ``sr@latin`` → ``sr-Latn``, ``zh_CN`` → ``zh-CN``, ``ca@valencia`` → ``ca-valencia``),
    or None for names that are no language (``locale.alias``, ``en@quot``)."""
    base, _, modifier = name.split(".")[0].partition("@")
    parts = base.replace("_", "-").split("-")
    if modifier:
        mod = modifier.lower()
        if mod in _MODIFIER_SCRIPTS:
            parts.insert(1, _MODIFIER_SCRIPTS[mod])
        elif mod in _MODIFIER_VARIANTS:
            parts.append(_MODIFIER_VARIANTS[mod])
        else:
            return None
    try:
        return normalize_language("-".join(parts))
    except LanguageError:
        return None


def locale_dirs(locale_dir: str | Path = DEFAULT_LOCALE_DIR) -> dict[str, int]:
    """``{locale directory name: number of .mo catalogs}`` for the locales that have any."""
    base = Path(locale_dir)
    if not base.is_dir():
        return {}
    out = {}
    for entry in sorted(base.iterdir()):
        folder = entry / "LC_MESSAGES"
        if folder.is_dir():
            n = sum(1 for p in folder.glob("*.mo") if p.is_file())
            if n:
                out[entry.name] = n
    return out


def gettext_locales(locale_dir: str | Path = DEFAULT_LOCALE_DIR) -> list[dict[str, object]]:
    """One row per locale with catalogs: ``locale``, ``language`` (its code, None when the
    name is no language) and ``catalogs`` (number of .mo files). Cheap: nothing is read."""
    return [
        {"locale": name, "language": locale_language(name), "catalogs": n}
        for name, n in locale_dirs(locale_dir).items()
    ]


def _locale_rank(want_code: str, name: str, n_catalogs: int) -> tuple[object, ...] | None:
    """Sort key of locale ``name`` for language ``want_code`` (lower is better), None if unfit.

    Same language (after langcodes normalisation); the same script (the code's, else its
    likely one: ``sr`` is Cyrillic, so never ``sr@latin``); a variant the code names; a region
    the code names (a locale without region may stand in), else the likely region first
    (``zh`` → ``zh_CN``, ``pt`` → ``pt_BR``), then no region, then others; then the locale
    whose name is the code itself, the most catalogs, the name."""
    code = locale_language(name)
    if code is None:
        return None
    want, have = tag_parts(want_code), tag_parts(code)
    if want is None or have is None or want.language != have.language:
        return None
    if (want.script or want.likely_script) != (have.script or have.likely_script):
        return None
    if set(want.variants) != set(have.variants):
        return None
    if want.region:
        if have.region not in (want.region, None):
            return None
        region = 0 if have.region == want.region else 1
    else:
        region = 0 if have.region == want.likely_region else 1 if have.region is None else 2
    exact = int(name.replace("_", "-").lower() != want_code.lower())
    return (region, exact, -n_catalogs, name)


def find_locale(
    language: str,
    locale_dir: str | Path = DEFAULT_LOCALE_DIR,
    dirs: Mapping[str, int] | None = None,
) -> str | None:
    """The locale directory serving ``language`` under ``locale_dir``; None for English (the
    msgids are English). ``dirs``: :func:`locale_dirs` of ``locale_dir``, when the caller has
    it already. Raises GettextUnavailable when no locale fits."""
    code = normalize_language(language)
    if code.split("-")[0] == ENGLISH:
        return None
    ranked = []
    for name, n in (locale_dirs(locale_dir) if dirs is None else dirs).items():
        key = _locale_rank(code, name, n)
        if key is not None:
            ranked.append((key, name))
    if not ranked:
        raise GettextUnavailable(
            f"This machine has no gettext catalogs for '{code}' under '{locale_dir}'; use the "
            "bundled 'udhr' corpus for it, or install its translations (`crane data show` lists "
            "the languages the machine has)."
        )
    return min(ranked)[1]


def resolve_locales(
    languages: Sequence[str], locale_dir: str | Path = DEFAULT_LOCALE_DIR
) -> dict[str, str | None]:
    """``{normalised code: locale directory, or None for English}`` for each language."""
    return {code: find_locale(code, locale_dir) for code in parse_language_list(list(languages))}


# --- catalogs -------------------------------------------------------------------------------


def catalog_files(
    locale_dir: str | Path = DEFAULT_LOCALE_DIR, locales: Mapping[str, str] | None = None
) -> dict[str, dict[str, Path]]:
    """``domain → {lang → .mo path}`` for the domains that exist in every one of ``locales``
    (``{lang: locale directory}``; default :data:`LOCALES`, the zh_CN and vi catalogs)."""
    base = Path(locale_dir)
    chosen = dict(LOCALES if locales is None else locales)
    if not chosen:
        return {}
    per_lang: dict[str, dict[str, Path]] = {}
    for lang, locale in chosen.items():
        folder = base / locale / "LC_MESSAGES"
        per_lang[lang] = (
            {p.stem: p for p in folder.glob("*.mo") if p.is_file()} if folder.is_dir() else {}
        )
    common = set.intersection(*(set(files) for files in per_lang.values()))
    return {d: {lang: per_lang[lang][d] for lang in chosen} for d in sorted(common)}


def catalog_key(files: dict[str, dict[str, Path]]) -> str:
    """Hash of the catalogs' paths, sizes and modification times (changes when any file does)."""
    h = hashlib.sha256()
    for domain in sorted(files):
        for lang in sorted(files[domain]):
            p = files[domain][lang]
            st = p.stat()
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _read_catalog(path: Path) -> dict[str, str] | None:
    """Singular msgid → msgstr of one .mo file (plural entries dropped); None if unreadable."""
    try:
        with path.open("rb") as fh:
            trans = gettext.GNUTranslations(fh)
    except (OSError, UnicodeError, LookupError, ValueError, struct.error):
        return None
    catalog = getattr(trans, "_catalog", None)
    if not isinstance(catalog, dict):
        return None
    return {k: v for k, v in catalog.items() if isinstance(k, str) and k and isinstance(v, str)}


# --- cleaning -------------------------------------------------------------------------------


def strip_accelerators(text: str) -> str:
    """Remove menu accelerators: ``"(_F)"`` suffixes and ``_``/``&`` before a letter."""
    return _ACCEL_PREFIX.sub("", _ACCEL_SUFFIX.sub("", text))


def _has_noise(text: str) -> bool:
    return bool(
        "\n" in text
        or "\t" in text
        or "\r" in text
        or "\x00" in text
        or _FORMAT.search(text)
        or _OPTION.search(text)
        or _MARKUP.search(text)
        or _SYNTAX.search(text)
    )


def _in_its_script(language: str, text: str) -> bool:
    """Whether a translation looks written in its language's script: Han characters for
    Chinese, Han or kana for Japanese, Hangul for Korean, a non-ASCII character for the other
    non-Latin scripts and for :data:`_NON_ASCII_LATIN`; any text for other Latin languages."""
    parts = tag_parts(language)
    script = (parts.script or parts.likely_script) if parts else None
    if script in ("Hans", "Hant", "Hani"):
        return bool(_HAN.search(text))
    if script == "Jpan":
        return bool(_HAN.search(text) or _KANA.search(text))
    if script == "Kore":
        return bool(_HANGUL.search(text))
    if script != "Latn" or language.split("-")[0] in _NON_ASCII_LATIN:
        return not text.isascii()
    return True


def clean_message(
    msgid: str, translations: Sequence[str], languages: Sequence[str]
) -> tuple[str, tuple[str, ...]] | None:
    """``(English, translations)`` cleaned, or None when the entry is not one clean sentence.

    Kept: the English text (the msgid without any ``context\\x04`` prefix) is a single sentence
    of ``MIN_WORDS``-``MAX_WORDS`` words; no text has format directives, newlines or tabs,
    command-line options or syntax (brackets, pipes, backquotes, aligned columns), markup or
    angle-bracket placeholders, or code-like tokens (checked on the English); every translation
    differs from the English, has no ``_`` and looks written in its language's script (Han for
    Chinese, non-ASCII for Vietnamese, ...). Accelerator markers are removed; every text is
    stripped and NFC-normalised. ``languages`` name the translations, in order.
    """
    if "\x00" in msgid:  # plural forms
        return None
    en = msgid.rsplit("\x04", 1)[-1].strip()
    # Word count first: cheap, and removing accelerators never changes it.
    if not MIN_WORDS <= len(en.split()) <= MAX_WORDS:
        return None
    raw = [t.strip() for t in translations]
    if _has_noise(en) or _CODE.search(en) or any(_has_noise(t) for t in raw):
        return None
    en = unicodedata.normalize("NFC", strip_accelerators(en)).strip()
    texts = tuple(unicodedata.normalize("NFC", strip_accelerators(t)).strip() for t in raw)
    if _SENTENCE_BREAK.search(en) or "&" in en:
        return None
    for lang, text in zip(languages, texts, strict=True):
        if text == en or "_" in text or not _in_its_script(lang, text):
            return None
    return en, texts


def clean_triple(domain: str, msgid: str, zh: str, vi: str) -> GettextTriple | None:
    """:func:`clean_message` for a Chinese and a Vietnamese translation."""
    cleaned = clean_message(msgid, (zh, vi), ("zh", "vi"))
    if cleaned is None:
        return None
    en, (zh_text, vi_text) = cleaned
    return GettextTriple(domain, en, zh_text, vi_text)


def read_messages(
    locale_dir: str | Path = DEFAULT_LOCALE_DIR, locales: Mapping[str, str] | None = None
) -> tuple[list[GettextMessage], dict[str, object]]:
    """Clean messages of ``locales`` (``{lang: locale directory}``, English excluded; default
    :data:`LOCALES`), deduplicated by English text and sorted by it, plus build information.

    Among entries with the same English text (the same msgid in several domains, or under
    several contexts), the smallest ``(domain, translations in language-code order)`` is kept,
    so the choice does not depend on the order the languages are given in.
    Raises GettextUnavailable when the catalogs are missing or yield no clean message.
    """
    base = Path(locale_dir)
    chosen = dict(LOCALES if locales is None else locales)
    names = list(chosen.values())
    if not chosen:
        raise _unavailable(base, "no language other than English was asked for", names)
    langs = list(chosen)
    files = catalog_files(base, chosen)
    if not files:
        detail = f"no domain has a .mo file in every one of {', '.join(names)}"
        raise _unavailable(base, detail, names)
    order = sorted(range(len(langs)), key=lambda k: langs[k])
    by_en: dict[str, GettextMessage] = {}
    used: list[str] = []
    skipped: list[str] = []
    for domain, paths in files.items():
        catalogs = [_read_catalog(paths[lang]) for lang in langs]
        if any(c is None for c in catalogs):
            skipped.append(domain)
            continue
        used.append(domain)
        first, *others = catalogs
        assert first is not None
        for msgid, text in first.items():
            found = [text]
            for other in others:
                assert other is not None
                t = other.get(msgid)
                if t is None:
                    break
                found.append(t)
            if len(found) != len(langs):
                continue
            cleaned = clean_message(msgid, found, langs)
            if cleaned is None:
                continue
            en, texts = cleaned
            message = GettextMessage(domain, en, texts)
            prev = by_en.get(en)
            if prev is None or (domain, *(texts[k] for k in order)) < (
                prev.domain,
                *(prev.translations[k] for k in order),
            ):
                by_en[en] = message
    if not by_en:
        holders = f"that {', '.join(names)} all have" if len(names) > 1 else f"of {names[0]}"
        detail = f"the {len(used)} domain(s) {holders} hold no clean sentence in every language"
        raise _unavailable(base, detail, names)
    messages = [by_en[en] for en in sorted(by_en)]
    info: dict[str, object] = {
        "locale_dir": str(base),
        "locales": dict(chosen),
        "domains": used,
        "skipped_domains": skipped,
        "catalog_key": catalog_key(files),
        "n_messages": len(messages),
    }
    return messages, info


def read_triples(
    locale_dir: str | Path = DEFAULT_LOCALE_DIR,
) -> tuple[list[GettextTriple], dict[str, object]]:
    """English/Chinese/Vietnamese triples (:func:`read_messages` of :data:`LOCALES`)."""
    messages, info = read_messages(locale_dir, LOCALES)
    triples = [GettextTriple(m.domain, m.en, *m.translations) for m in messages]
    return triples, info
