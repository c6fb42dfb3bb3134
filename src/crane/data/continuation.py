"""The built-in parallel continuation test: :func:`builtin_continuation_set` is the cloze test
(:mod:`crane.evaluation.cloze`) on the held-out gettext sentences of en, zh and vi (or, without
gettext catalogs, the held-out UDHR paragraphs): the same items, distractor sources and answer
positions in every language. :func:`split_half` cuts a message into prompt and continuation.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from crane.data.builtin import (
    UDHR_PARTS,
    GettextUnavailable,
    gettext_corpus,
    udhr_corpus,
    udhr_units,
)
from crane.data.choice_items import ChoiceSet, uses_spaces
from crane.data.choice_items import nfc as _nfc
from crane.data.languages import parse_language_list
from crane.errors import ConfigError, CorpusError, LanguageError

__all__ = ["BUILTIN_LANGUAGES", "MIN_CHARS", "MIN_WORDS", "builtin_continuation_set", "split_half"]

BUILTIN_LANGUAGES = ("en", "zh", "vi")
"""Languages of the built-in continuation test."""

MIN_WORDS = 4
"""Built-in set: fewest words a message needs in a space-separated language (≥ 2 per half)."""
MIN_CHARS = 6
"""Built-in set: fewest characters a message needs in a language without spaces (≥ 3 per half)."""


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
    """A parallel continuation test in en, zh and vi, built on this machine: the cloze test
    (:func:`crane.evaluation.cloze.cloze_set`, which takes any parallel corpus and language)
    on the held-out gettext messages, or the held-out UDHR paragraphs when the gettext catalogs
    are missing, with the shortest messages it accepts (:data:`MIN_WORDS`,
    :data:`MIN_CHARS`). Items are judged in all three languages, so a seed gives the same items
    whichever ``languages`` are returned; ``provenance`` names the source and lists every item.
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
    from crane.data.corpus import Corpus
    from crane.evaluation.cloze import cloze_set

    every = list(BUILTIN_LANGUAGES)
    messages, source = _parallel_source(every)
    corpus = Corpus(
        {lang: [row[k] for row in messages] for k, lang in enumerate(every)}, dict(source)
    )
    built = cloze_set(
        corpus, n_items=n_items, n_choices=n_choices, seed=seed, min_words=MIN_WORDS,
        min_chars=MIN_CHARS, languages=langs,
    )
    provenance = {**source, **built.provenance, "builder": "builtin_continuation_set (cloze_set)"}
    return ChoiceSet(built.items, provenance, "continuation")
