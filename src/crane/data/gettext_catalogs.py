"""English/Chinese/Vietnamese sentence triples from the machine's gettext catalogs.

Debian-style systems ship compiled catalogs as ``<locale_dir>/<locale>/LC_MESSAGES/<domain>.mo``;
their msgids are the English source strings. For every domain present for both ``zh_CN`` and
``vi``, this module pairs the two translations of each msgid and keeps only clean natural-language
sentences (see :func:`clean_triple`). The strings keep their packages' own licences (mostly GPL),
so they are read at run time and never written into this repository.
"""

from __future__ import annotations

import gettext
import hashlib
import re
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from crane.errors import CorpusError

DEFAULT_LOCALE_DIR = "/usr/share/locale"
LOCALES: dict[str, str] = {"zh": "zh_CN", "vi": "vi"}  # corpus language → gettext locale
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


class GettextUnavailable(CorpusError):
    """The machine has no usable zh_CN/vi gettext catalogs."""


@dataclass(frozen=True)
class GettextTriple:
    """One msgid with its Chinese (zh_CN) and Vietnamese translations, cleaned and NFC."""

    domain: str
    en: str
    zh: str
    vi: str


def _unavailable(locale_dir: Path, detail: str) -> GettextUnavailable:
    return GettextUnavailable(
        f"This machine has no usable zh_CN/vi gettext catalogs under '{locale_dir}' ({detail}); "
        "use the bundled 'udhr' corpus instead, or install the translations (on Debian/Ubuntu, "
        "packages such as coreutils, git, apt and libgtk2.0-common ship them; make sure dpkg "
        "does not exclude /usr/share/locale)."
    )


def catalog_files(locale_dir: str | Path = DEFAULT_LOCALE_DIR) -> dict[str, dict[str, Path]]:
    """``domain → {lang → .mo path}`` for the domains that exist in every locale of ``LOCALES``."""
    base = Path(locale_dir)
    per_lang: dict[str, dict[str, Path]] = {}
    for lang, locale in LOCALES.items():
        folder = base / locale / "LC_MESSAGES"
        per_lang[lang] = (
            {p.stem: p for p in folder.glob("*.mo") if p.is_file()} if folder.is_dir() else {}
        )
    common = set.intersection(*(set(files) for files in per_lang.values()))
    return {d: {lang: per_lang[lang][d] for lang in LOCALES} for d in sorted(common)}


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


def clean_triple(domain: str, msgid: str, zh: str, vi: str) -> GettextTriple | None:
    """Return the cleaned triple, or None when the entry is not one clean sentence.

    Kept: the English text (the msgid without any ``context\\x04`` prefix) is a single sentence
    of ``MIN_WORDS``-``MAX_WORDS`` words; no text has format directives, newlines or tabs,
    command-line options or syntax (brackets, pipes, backquotes, aligned columns), markup or
    angle-bracket placeholders, or code-like tokens; both translations differ from the English,
    the Chinese one contains Han characters and the Vietnamese one non-ASCII letters.
    Accelerator markers are removed; every text is stripped and NFC-normalised.
    """
    if "\x00" in msgid:  # plural forms
        return None
    en = msgid.rsplit("\x04", 1)[-1].strip()
    # Word count first: cheap, and removing accelerators never changes it.
    if not MIN_WORDS <= len(en.split()) <= MAX_WORDS:
        return None
    zh, vi = zh.strip(), vi.strip()
    if _has_noise(en) or _CODE.search(en) or _has_noise(zh) or _has_noise(vi):
        return None
    en, zh, vi = (unicodedata.normalize("NFC", strip_accelerators(t)).strip() for t in (en, zh, vi))
    if _SENTENCE_BREAK.search(en):
        return None
    if zh == en or vi == en or "_" in zh + vi or "&" in en:
        return None
    if not _HAN.search(zh) or vi.isascii():
        return None
    return GettextTriple(domain, en, zh, vi)


def read_triples(
    locale_dir: str | Path = DEFAULT_LOCALE_DIR,
) -> tuple[list[GettextTriple], dict[str, object]]:
    """Clean triples, deduplicated by English text and sorted by it, plus build information.

    Raises GettextUnavailable when the catalogs are missing or yield no clean triple.
    """
    base = Path(locale_dir)
    files = catalog_files(base)
    if not files:
        raise _unavailable(base, "no domain has both a zh_CN and a vi .mo file")
    by_en: dict[str, GettextTriple] = {}
    used: list[str] = []
    skipped: list[str] = []
    for domain, paths in files.items():
        zh_cat = _read_catalog(paths["zh"])
        vi_cat = _read_catalog(paths["vi"])
        if zh_cat is None or vi_cat is None:
            skipped.append(domain)
            continue
        used.append(domain)
        for msgid, zh in zh_cat.items():
            vi = vi_cat.get(msgid)
            if vi is None:
                continue
            triple = clean_triple(domain, msgid, zh, vi)
            if triple is None:
                continue
            prev = by_en.get(triple.en)
            # Deterministic choice among duplicates: the smallest (domain, zh, vi).
            if prev is None or (triple.domain, triple.zh, triple.vi) < (
                prev.domain,
                prev.zh,
                prev.vi,
            ):
                by_en[triple.en] = triple
    if not by_en:
        raise _unavailable(base, "the catalogs hold no clean English/Chinese/Vietnamese sentence")
    triples = [by_en[en] for en in sorted(by_en)]
    info: dict[str, object] = {
        "locale_dir": str(base),
        "locales": dict(LOCALES),
        "domains": used,
        "skipped_domains": skipped,
        "catalog_key": catalog_key(files),
        "n_triples": len(triples),
    }
    return triples, info
