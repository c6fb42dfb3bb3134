"""What the built-in corpora hold per language: the bundled UDHR's declarations and this
machine's gettext catalogs (for ``crane data show``). Nothing here raises for a language that
has no data: the rows say so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crane.data.gettext_catalogs import (
    DEFAULT_LOCALE_DIR,
    GettextUnavailable,
    find_locale,
    locale_dirs,
    locale_language,
)
from crane.data.languages import is_language_code, language_name, normalize_language
from crane.data.udhr import N_UNITS, candidates, declarations, resolve_declaration
from crane.errors import CraneError, LanguageError

__all__ = ["describe_language", "language_inventory"]


def _udhr_keys() -> set[str]:
    """The codes that name the declarations: each tag as normalised, and its language alone."""
    keys: set[str] = set()
    for decl in declarations():
        if decl.bcp47 == "und" or not is_language_code(decl.bcp47):
            continue
        code = normalize_language(decl.bcp47)
        keys.update({code, code.split("-")[0]})
    return keys


def language_inventory(locale_dir: str | Path = DEFAULT_LOCALE_DIR) -> list[dict[str, Any]]:
    """One row per language code the built-in corpora can serve, sorted by code.

    Keys: ``language`` (the code to ask for), ``name``, ``udhr`` (the declaration's code, or
    None), ``udhr_units`` (units it has, of 31), ``udhr_alternatives`` (other declarations of
    the language), ``gettext`` (the locale directory, ``"msgid"`` for English, or None) and
    ``gettext_catalogs`` (its number of .mo files). Cheap: no catalog is read.
    """
    dirs = locale_dirs(locale_dir)
    keys = _udhr_keys()
    for name in dirs:
        code = locale_language(name)
        if code is not None:
            keys.add(code)
    rows = []
    for code in sorted(keys):
        row: dict[str, Any] = {
            "language": code,
            "name": language_name(code),
            "udhr": None,
            "udhr_units": 0,
            "udhr_alternatives": 0,
            "gettext": None,
            "gettext_catalogs": 0,
        }
        found = candidates(code)
        if found:
            row.update(
                udhr=found[0].code,
                udhr_units=found[0].n_units,
                udhr_alternatives=len(found) - 1,
            )
        try:
            locale = find_locale(code, locale_dir, dirs)
        except GettextUnavailable:
            locale = ""
        if locale is None:
            row.update(gettext="msgid", gettext_catalogs=sum(dirs.values()))
        elif locale:
            row.update(gettext=locale, gettext_catalogs=dirs[locale])
        if row["udhr"] or row["gettext"]:
            rows.append(row)
    return rows


def describe_language(
    language: str, locale_dir: str | Path = DEFAULT_LOCALE_DIR, *, seed: int = 0
) -> dict[str, Any]:
    """Everything the built-in corpora hold for one language (``crane data show fr``).

    ``udhr``: the chosen declaration (code, tag, name, script, units present and missing, the
    units of the identify and heldout parts it has) and the other candidates; or ``error``.
    ``gettext``: the locale directory, its catalogs, and the clean sentences paired with
    English (``sentences``; ``identify`` and ``heldout`` sizes with ``seed``); or ``error``.
    Raises LanguageError only for a code that is no language.
    """
    from crane.data.builtin import UDHR_PARTS, gettext_corpus

    code = normalize_language(language)
    out: dict[str, Any] = {"language": code, "name": language_name(code)}
    try:
        decl = resolve_declaration(code)
        present = set(decl.units_present)
        out["udhr"] = {
            **decl.summary(),
            "units_present": list(decl.units_present),
            "units_missing": [i for i in range(N_UNITS) if i not in present],
            "identify": sum(1 for i in UDHR_PARTS["identify"] if i in present),
            "heldout": sum(1 for i in UDHR_PARTS["heldout"] if i in present),
            "chars": decl.chars,
            "alternatives": [d.summary() for d in candidates(code)[1:]],
        }
    except LanguageError as exc:
        out["udhr"] = {"error": str(exc)}
    dirs = locale_dirs(locale_dir)
    try:
        locale = find_locale(code, locale_dir, dirs)
    except GettextUnavailable as exc:
        out["gettext"] = {"error": str(exc)}
        return out
    if locale is None:
        out["gettext"] = {
            "locale": "msgid",
            "catalogs": sum(dirs.values()),
            "note": "English is the msgids: it pairs with every other language's catalogs.",
        }
        return out
    info: dict[str, Any] = {"locale": locale, "catalogs": dirs[locale]}
    try:
        sizes = {}
        for part in ("identify", "heldout"):
            corpus = gettext_corpus(part, languages=[code], seed=seed, locale_dir=locale_dir)
            sizes[part] = len(corpus[code])
        info.update(sentences=sum(sizes.values()), **sizes)
    except CraneError as exc:
        info["error"] = str(exc)
    out["gettext"] = info
    return out
