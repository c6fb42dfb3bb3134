"""A parallel cloze (continuation) test built from any parallel corpus.

:func:`cloze_set` turns a corpus whose languages are aligned by index (text ``i`` of every
language is a translation of the same text) into a multiple-choice test: the prompt of an item
is the first half of text ``i`` (cut by :func:`crane.data.continuation.split_half`), its choices
the real second half and ``n_choices - 1`` second halves of other texts of the same corpus, of
the same *length class*. Items, distractor sources and answer positions are the same in every
language, so accuracies are comparable across languages item by item.

Length classes. A text's length class is the bin ``floor(log(L) / log(length_ratio))`` of
``L``, the geometric mean over the corpus's languages of the UTF-8 bytes of its second half
(bytes: the unit of the length-normalised accuracy). Every choice of an item comes from one
class, so their mean lengths differ by less than ``length_ratio`` (1.25 by default). Because
the class is a property of a text, not of its role, the prompt's text and its distractors are
an exchangeable draw from the class: under any length measure, in any language, the real ending
is the shortest (or longest, or second shortest) option as often as any distractor, and a rule
that picks by length alone scores chance in expectation. ``provenance["length_baseline"]``
reports what the shortest- and longest-option rules score on the set built. (A band around the
real ending's length, the obvious alternative, puts the real ending in the middle of the
options' lengths: 'pick a middle-length option' would then beat chance.)

Which texts to use. The texts must not be those the neurons were identified on: the study
identifies on the ``identify`` part of the built-in gettext corpus, so build the test from its
``heldout`` part (``load_corpus("gettext", part="heldout")``, disjoint by construction). The
bundled UDHR is small: :func:`udhr_paragraphs` gives one text per paragraph (about 50 test
items); when identification ran on UDHR (no gettext catalogs), only its ``heldout`` part
(articles 16-30) is disjoint from it.
"""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from crane.data.builtin import UDHR_PARTS, udhr_corpus, udhr_units
from crane.data.choice_items import ChoiceItem, ChoiceSet, uses_spaces
from crane.data.continuation import split_half
from crane.data.corpus import Corpus
from crane.data.languages import parse_language_list
from crane.errors import ConfigError, CorpusError

__all__ = ["DEFAULT_LENGTH_RATIO", "cloze_set", "udhr_paragraphs"]

DEFAULT_LENGTH_RATIO = 1.25
"""Width of a length class: the mean lengths of an item's choices differ by less than this."""


def _n_words(text: str) -> int:
    return len(text.split())


def _n_chars(text: str) -> int:
    return len(re.sub(r"\s+", "", text))


def _long_enough(text: str, language: str, min_words: int, min_chars: int) -> bool:
    if uses_spaces(language):
        return _n_words(text) >= min_words
    return _n_chars(text) >= min_chars


def _aligned(corpus: Corpus, languages: list[str]) -> int:
    """The number of texts per language; ConfigError unless every language has as many."""
    counts = {lang: len(corpus[lang]) for lang in languages}
    if len(set(counts.values())) != 1:
        listed = ", ".join(f"{lang}: {n}" for lang, n in counts.items())
        raise ConfigError(
            f"A cloze test needs a parallel corpus (text i of every language a translation of "
            f"the same text), but its languages have different numbers of texts ({listed}); "
            "give a corpus aligned by index (an empty translation is dropped on reading and "
            "shifts the rest)."
        )
    return next(iter(counts.values()))


def _source_name(corpus: Corpus) -> str:
    source = corpus.provenance.get("source")
    return source if isinstance(source, str) and source else "corpus"


def _length_baseline(
    items: dict[str, list[ChoiceItem]], n_choices: int
) -> dict[str, dict[str, float]]:
    """Accuracy, per language, of picking the shortest / longest choice (UTF-8 bytes, the
    first on ties): what length alone would score (chance is ``1 / n_choices``)."""
    out: dict[str, dict[str, float]] = {}
    for lang, rows in items.items():
        lengths = np.array([[len(c.encode("utf-8")) for c in it.choices] for it in rows])
        answer = np.array([it.answer for it in rows])
        out[lang] = {
            "shortest": float((lengths.argmin(axis=1) == answer).mean()),
            "longest": float((lengths.argmax(axis=1) == answer).mean()),
            "chance": 1.0 / n_choices,
        }
    return out


def cloze_set(
    corpus: Corpus,
    *,
    n_items: int,
    n_choices: int = 4,
    seed: int = 0,
    min_words: int = 6,
    min_chars: int = 8,
    length_ratio: float = DEFAULT_LENGTH_RATIO,
    languages: Sequence[str] | str | None = None,
) -> ChoiceSet:
    """A parallel cloze test from ``corpus`` (aligned by index): the same items in every language.

    A text is *eligible* when, in every language of the corpus, it has at least ``min_words``
    words (space-separated languages) or ``min_chars`` non-space characters (others) and splits
    into two halves (:func:`~crane.data.continuation.split_half`), and its length class (module
    docstring) holds at least ``n_choices`` eligible texts. With ``random.Random(seed)``:
    ``n_items`` eligible texts are drawn (fewer when fewer are eligible; ``provenance`` says how
    many); for each, ``n_choices - 1`` distractors are drawn from the other texts of its class,
    skipping any whose second half equals the real one's or an earlier distractor's in some
    language (an item whose class runs out is dropped and the next text drawn); the answer's
    position is drawn uniformly. Prompt = first half, choices = second halves, style
    ``continuation``.

    Eligibility and classes are judged in all the corpus's languages, so a seed gives the same
    items whichever ``languages`` (default: all the corpus's) are returned.
    ``provenance["items"]`` lists per item its ``source_index`` (text index in the corpus), the
    source of every choice (``choice_sources``), the ``answer`` and the ``length_class``;
    ``provenance["length_baseline"]`` what picking by length alone scores.

    Build it from texts the neurons were not identified on (module docstring): for the study,
    ``load_corpus("gettext", part="heldout")``, never the ``identify`` part.
    """
    every = list(corpus.languages)
    if not every:
        raise CorpusError("The corpus has no texts; give a parallel corpus with texts.")
    langs = parse_language_list(languages) if languages is not None else every
    corpus._require(langs)
    if n_items < 1:
        raise ConfigError(f"n_items must be at least 1, got {n_items}.")
    if n_choices < 2:
        raise ConfigError(f"n_choices must be at least 2, got {n_choices}.")
    if min_words < 4 or min_chars < 6:
        raise ConfigError(
            f"min_words must be at least 4 and min_chars at least 6 (two halves of two words or "
            f"three characters), got {min_words} and {min_chars}."
        )
    if not length_ratio > 1.0 or not math.isfinite(length_ratio):
        raise ConfigError(f"length_ratio must be a number above 1, got {length_ratio}; use 1.25.")
    n_texts = _aligned(corpus, every)

    halves: dict[int, list[tuple[str, str]]] = {}
    for index in range(n_texts):
        texts = [corpus[lang][index] for lang in every]
        if not all(
            _long_enough(t, lang, min_words, min_chars) for t, lang in zip(texts, every, strict=True)
        ):
            continue
        split = [split_half(t, lang) for t, lang in zip(texts, every, strict=True)]
        if all(s is not None for s in split):
            halves[index] = split  # type: ignore[assignment]
    width = math.log(length_ratio)
    length_class: dict[int, int] = {}
    members: dict[int, list[int]] = defaultdict(list)
    for index, split in halves.items():
        mean_log = sum(math.log(len(h[1].encode("utf-8"))) for h in split) / len(split)
        length_class[index] = math.floor(mean_log / width)
        members[length_class[index]].append(index)
    eligible = sorted(i for i in halves if len(members[length_class[i]]) >= n_choices)
    if len(eligible) < n_choices:
        raise CorpusError(
            f"Only {len(eligible)} of the corpus's {n_texts} texts are long enough, split into two "
            f"halves in every language and have {n_choices - 1} others of their length class; "
            "give more texts, fewer choices or a larger length_ratio."
        )

    rng = random.Random(seed)
    order = rng.sample(eligible, len(eligible))
    items: dict[str, list[ChoiceItem]] = {lang: [] for lang in langs}
    records: list[dict[str, Any]] = []
    dropped = 0
    name = _source_name(corpus)
    for index in order:
        if len(records) == n_items:
            break
        peers = [j for j in members[length_class[index]] if j != index]
        taken: list[int] = []
        for other in rng.sample(peers, len(peers)):
            if len(taken) == n_choices - 1:
                break
            clash = any(
                halves[other][k][1] == halves[j][k][1]
                for k in range(len(every))
                for j in (index, *taken)
            )
            if not clash:
                taken.append(other)
        if len(taken) < n_choices - 1:
            dropped += 1
            continue
        answer = rng.randrange(n_choices)
        sources = taken[:answer] + [index] + taken[answer:]
        for lang in langs:
            k = every.index(lang)
            choices = tuple(halves[j][k][1] for j in sources)
            items[lang].append(ChoiceItem(f"{name}:{index}", halves[index][k][0], choices, answer))
        records.append(
            {
                "source_index": index,
                "choice_sources": sources,
                "answer": answer,
                "length_class": length_class[index],
            }
        )
    if not records:
        raise CorpusError(
            "No item of the cloze test found distinct distractors of its length class; give more "
            "texts or a larger length_ratio."
        )
    corpus_provenance = {k: v for k, v in corpus.provenance.items() if k != "counts"}
    provenance = {
        "source": corpus.provenance.get("source", "in-memory"),
        "part": corpus.provenance.get("part"),
        "corpus_sha256": corpus.sha256,
        "corpus": corpus_provenance,
        "builder": "cloze_set",
        "seed": seed,
        "n_items": len(records),
        "n_items_requested": n_items,
        "n_choices": n_choices,
        "n_texts": n_texts,
        "n_split": len(halves),
        "n_eligible": len(eligible),
        "n_dropped": dropped,
        "judged_in": every,
        "min_words": min_words,
        "min_chars": min_chars,
        "length_ratio": length_ratio,
        "length_class": (
            "floor(log(L) / log(length_ratio)), L = geometric mean over the corpus's languages "
            "of the second half's UTF-8 bytes; all choices of an item from one class"
        ),
        "split": (
            "crane.data.continuation.split_half: space-separated languages at the word boundary "
            "nearest the middle, others at the character middle"
        ),
        "length_baseline": _length_baseline(items, n_choices),
        "items": records,
    }
    return ChoiceSet(items, provenance, "continuation")


def udhr_paragraphs(part: str = "all", languages: Sequence[str] | str | None = None) -> Corpus:
    """The bundled UDHR as a parallel corpus of paragraphs (one text per paragraph), in
    ``languages`` (default en, zh, vi; any declaration the extract holds).

    Units (0 = preamble, 1-30 = articles) of ``part`` (``all``, ``identify`` = 0-15,
    ``heldout`` = 16-30) whose paragraphs are equally many in every language give one text per
    paragraph; a unit whose translations are paragraphed differently (the preamble: 10 English,
    8 Chinese paragraphs) gives one text, its paragraphs joined with a newline, as
    :func:`~crane.data.builtin.udhr_corpus` does. ``provenance["texts"]`` gives
    ``[unit, paragraph]`` per text (paragraph ``None`` for a joined unit).
    """
    base = udhr_corpus(part, languages=languages)  # checks part and languages; provenance
    units = {u["id"]: u for u in udhr_units(languages)}
    languages = list(base.languages)
    texts: dict[str, list[str]] = {lang: [] for lang in languages}
    where: list[list[int | None]] = []
    for unit_id in UDHR_PARTS[part]:
        unit = units[unit_id]
        counts = {len(unit[lang]) for lang in languages}
        if len(counts) == 1:
            for p in range(counts.pop()):
                for lang in languages:
                    texts[lang].append(unit[lang][p])
                where.append([unit_id, p])
        else:
            for lang in languages:
                texts[lang].append("\n".join(unit[lang]))
            where.append([unit_id, None])
    provenance = {k: v for k, v in base.provenance.items() if k not in ("counts", "sha256")}
    provenance.update(
        unit_text="one text per paragraph; a unit paragraphed differently across languages is "
        "one text, its paragraphs joined with a newline",
        texts=where,
    )
    corpus = Corpus(texts, provenance)
    _aligned(corpus, languages)
    return corpus
