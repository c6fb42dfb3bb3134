"""Splitting a user's corpus into identification / validation / evaluation parts, and the
overlap check between the texts neurons are found on and the texts they are judged on.

Both compare texts by :func:`overlap_key`: NFC, whitespace runs collapsed to one space, ends
stripped (case and punctuation count: two texts that differ only there tokenize differently).
A text contained in a longer one is not an overlap.
"""

from __future__ import annotations

import json
import math
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crane.data.corpus import Corpus
from crane.errors import ConfigError, CorpusError

__all__ = [
    "DEFAULT_FRACTIONS",
    "SPLIT_PARTS",
    "Overlap",
    "check_overlap",
    "find_overlap",
    "overlap_key",
    "parse_fractions",
    "split_corpus",
    "write_split",
]

SPLIT_PARTS = ("identification", "validation", "evaluation")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)


def overlap_key(text: str) -> str:
    """The form two texts are compared in: NFC, whitespace collapsed, stripped."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def parse_fractions(spec: str | Sequence[float]) -> tuple[float, float, float]:
    """``"0.6,0.2,0.2"`` (or three numbers) → identification, validation and evaluation
    fractions: each ≥ 0, summing to 1, identification and evaluation > 0. ConfigError else."""
    try:
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        values = [float(v) for v in items]
    except (TypeError, ValueError):
        values = []
    ok = (
        len(values) == 3
        and all(math.isfinite(v) and v >= 0 for v in values)
        and abs(sum(values) - 1.0) < 1e-6
        and values[0] > 0
        and values[2] > 0
    )
    if not ok:
        raise ConfigError(
            f"Split fractions {spec!r} are not three numbers for identification, validation and "
            "evaluation that are ≥ 0 and sum to 1 (identification and evaluation above 0); use "
            "e.g. 0.6,0.2,0.2 (or 0.8,0,0.2 without a validation part)."
        )
    return values[0], values[1], values[2]


def _groups(columns: list[list[str]]) -> list[list[int]]:
    """Items (indices into every column) joined when they share a text in some column, so
    identical texts land in the same part; groups ordered by their first item."""
    n = len(columns[0])
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for column in columns:
        first: dict[str, int] = {}
        for i, text in enumerate(column):
            key = overlap_key(text)
            j = first.setdefault(key, i)
            if j != i:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def _assign(
    groups: list[list[int]], n: int, fractions: Sequence[float], rng: random.Random
) -> list[list[int]]:
    """Shuffle the groups and fill the parts in order up to their sizes (round(fraction × n),
    at least one item for a fraction above 0, the rest to evaluation); items sorted."""
    targets = [max(1, round(f * n)) if f > 0 else 0 for f in fractions[:2]]
    order = list(range(len(groups)))
    rng.shuffle(order)
    parts: list[list[int]] = [[], [], []]
    p = 0
    for g in order:
        while p < 2 and len(parts[p]) >= targets[p]:
            p += 1
        parts[p].extend(groups[g])
    return [sorted(part) for part in parts]


def split_corpus(
    corpus: Corpus,
    fractions: Sequence[float] | str = DEFAULT_FRACTIONS,
    *,
    seed: int = 0,
) -> dict[str, Corpus]:
    """Seeded identification / validation / evaluation parts of ``corpus`` (keys
    :data:`SPLIT_PARTS`).

    A parallel corpus (every language has the same number of texts) is split by item, so item
    ``i`` lands in the same part in every language; otherwise each language is split on its
    own (seeded with ``seed`` and the language code). Texts that are identical (see
    :func:`overlap_key`) always land in the same part, so the parts never overlap. Sizes are
    ``round(fraction × n)`` for identification and validation (at least one text for a fraction
    above 0), the rest for evaluation; texts keep their corpus order within a part. The same
    corpus, fractions and seed give the same parts. Raises CorpusError when a language has too
    few texts (or too few distinct ones) to fill every part.
    """
    fracs = parse_fractions(fractions)
    counts = {lang: len(corpus[lang]) for lang in corpus.languages}
    if not counts:
        raise CorpusError("The corpus has no texts to split; add texts first.")
    aligned = len(set(counts.values())) == 1
    picks: dict[str, list[list[int]]] = {}
    if aligned:
        n = next(iter(counts.values()))
        groups = _groups([corpus[lang] for lang in corpus.languages])
        parts = _assign(groups, n, fracs, random.Random(seed))
        picks = {lang: parts for lang in corpus.languages}
    else:
        for lang in corpus.languages:
            groups = _groups([corpus[lang]])
            picks[lang] = _assign(groups, counts[lang], fracs, random.Random(f"{seed}\0{lang}"))
    for lang, parts in picks.items():
        empty = [SPLIT_PARTS[k] for k in range(3) if fracs[k] > 0 and not parts[k]]
        if empty:
            raise CorpusError(
                f"Language '{lang}' has too few distinct texts ({counts[lang]}) to fill the "
                f"{', '.join(empty)} part(s) with fractions {', '.join(map(str, fracs))}; add "
                "texts or change the fractions."
            )
    parent = corpus._derived_provenance()
    out = {}
    for k, name in enumerate(SPLIT_PARTS):
        texts = {lang: [corpus[lang][i] for i in picks[lang][k]] for lang in corpus.languages}
        provenance = {
            "source": corpus.provenance.get("source"),
            "split": {
                "part": name,
                "seed": seed,
                "fractions": list(fracs),
                "aligned": aligned,
                "items": {lang: picks[lang][k] for lang in corpus.languages},
                "rule": (
                    "shuffled with the seed (by item when aligned), identical texts kept "
                    "together, parts filled in order to round(fraction × n)"
                ),
            },
            "parent": parent,
        }
        out[name] = Corpus(texts, provenance)
    return out


def write_split(parts: dict[str, Corpus], out_dir: str | Path) -> dict[str, Path]:
    """Write each part as ``<out_dir>/<part>.jsonl`` (``{"text", "lang", "item"}`` per line,
    ``item`` = the text's index in the original corpus language) and ``split.json`` (the
    parts' provenance and counts); returns ``{part: path}``. Files are written atomically."""
    from crane.io import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    written = {}
    summary: dict[str, Any] = {}
    for name, part in parts.items():
        items = part.provenance.get("split", {}).get("items", {})
        lines = []
        for lang in part.languages:
            ids = items.get(lang) or list(range(len(part[lang])))
            for text, item in zip(part[lang], ids, strict=False):
                record = {"text": text, "lang": lang, "item": item}
                lines.append(json.dumps(record, ensure_ascii=False))
        written[name] = atomic_write_text(out / f"{name}.jsonl", "".join(f"{x}\n" for x in lines))
        summary[name] = {
            "file": f"{name}.jsonl",
            "texts": {lang: len(part[lang]) for lang in part.languages},
            "sha256": part.sha256,
        }
    first = next(iter(parts.values()))
    split = dict(first.provenance.get("split", {}))
    split.pop("part", None)
    split.pop("items", None)
    atomic_write_json(
        out / "split.json",
        {"parts": summary, "split": split, "parent": first.provenance.get("parent")},
    )
    return written


@dataclass
class Overlap:
    """Texts found in both corpora (compared per language, by :func:`overlap_key`)."""

    per_language: dict[str, int] = field(default_factory=dict)
    examples: list[tuple[str, str]] = field(default_factory=list)
    """Up to three ``(language, text)`` pairs."""

    @property
    def count(self) -> int:
        return sum(self.per_language.values())

    def __bool__(self) -> bool:
        return self.count > 0

    def message(self, first: str = "identification", second: str = "evaluation") -> str:
        """One sentence naming the count, the languages and an example."""
        langs = ", ".join(f"{lang}: {n}" for lang, n in self.per_language.items())
        lang, text = self.examples[0] if self.examples else ("", "")
        shown = text if len(text) <= 80 else text[:77] + "..."
        return (
            f"{self.count} text(s) appear in both the {first} and the {second} corpus ({langs}; "
            f"e.g. {lang}: {shown!r})"
        )


def find_overlap(first: Corpus, second: Corpus, *, max_examples: int = 3) -> Overlap:
    """Texts of ``second`` that also appear in ``first``, per language both have."""
    found = Overlap()
    for lang in first.languages:
        if lang not in second.texts:
            continue
        seen = {overlap_key(t) for t in first[lang]}
        hits = [t for t in second[lang] if overlap_key(t) in seen]
        if hits:
            found.per_language[lang] = len(hits)
            for text in hits:
                if len(found.examples) < max_examples:
                    found.examples.append((lang, text))
    return found


def check_overlap(
    identification: Corpus, evaluation: Corpus, *, allow_overlap: bool = False
) -> Overlap:
    """Refuse identification and evaluation corpora that share a text.

    Raises ConfigError naming the count and an example when some normalised text (see
    :func:`overlap_key`) of a language appears in both; with ``allow_overlap`` the overlap is
    returned instead, for the caller to warn about (an empty :class:`Overlap` when disjoint).
    """
    found = find_overlap(identification, evaluation)
    if found and not allow_overlap:
        raise ConfigError(
            f"{found.message()}: neurons found on a text would be judged on it too. Evaluate "
            "on other texts (`crane data split` cuts your corpus into disjoint parts), or set "
            "allow_overlap = true (--allow-overlap) to go on with a warning."
        )
    return found
