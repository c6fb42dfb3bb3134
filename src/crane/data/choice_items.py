"""Multiple-choice items and sets: :class:`ChoiceItem`, :class:`ChoiceSet` and the styles in
which items are put to a model; :func:`uses_spaces` tells which languages separate words.
"""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from crane.data.languages import ByLanguage, normalize_language, parse_language_list
from crane.errors import ConfigError, CorpusError, LanguageError

__all__ = ["NO_SPACE_LANGUAGES", "STYLES", "ChoiceItem", "ChoiceSet", "nfc", "uses_spaces"]

STYLES = ("question", "continuation")
"""How items are put to a model (see :mod:`crane.evaluation.choice`): ``question`` items are
asked as ``"{prompt}\\nAnswer:"``; ``continuation`` items use the prompt as it is."""

NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "dz"})
"""Languages written without spaces between words (primary subtags)."""


def uses_spaces(language: str) -> bool:
    """Whether ``language`` separates words with spaces (``False`` for zh, ja, th, ...)."""
    return normalize_language(language).split("-")[0] not in NO_SPACE_LANGUAGES


def nfc(text: str) -> str:
    """``text`` NFC-normalised and stripped (the form of every multiple-choice text)."""
    return unicodedata.normalize("NFC", text).strip()


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
class ChoiceSet(ByLanguage):
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

    _holder, _unit, _fix = "The multiple-choice set", "items", "add a file for that language"

    def _by_language(self) -> dict[str, list[ChoiceItem]]:
        return self.items

    def select(self, langs: Iterable[str] | str) -> ChoiceSet:
        """Keep only ``langs`` (in that order); LanguageError if one is missing."""
        codes = parse_language_list(langs)
        self._require(codes)
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
