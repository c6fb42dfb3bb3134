"""The built-in benchmarks (:class:`crane.evaluation.conditions.Benchmark`): bits per byte on a
corpus, multiple choice by option log-likelihood, and generation fidelity.

Each is bound to one model and tokenizer, prepares (tokenizes) each language's units once and
evaluates them under whatever masks :func:`~crane.evaluation.conditions.run_conditions` has
applied. Adding a benchmark is one class with ``name``, ``title``, ``unit``,
``higher_is_better``, ``items``, ``key`` and ``evaluate(language) -> Cell``
(docs/contributing.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from crane.data.batching import TokenizedTexts, count_batches, pad_token_id, tokenize_texts
from crane.data.choice_files import ChoiceSet
from crane.data.corpus import Corpus
from crane.data.languages import ByLanguage
from crane.evaluation.bpb import BitsPerByte, text_nats
from crane.evaluation.choice import (
    _count_batches,
    _prepare,
    _Prepared,
    _resolve_max_length,
    _score,
)
from crane.evaluation.conditions import Cell
from crane.evaluation.metrics import bpb_units
from crane.progress import NullProgress, Progress


@dataclass(frozen=True)
class Labels:
    """How a benchmark is named and read: its name (files, tables), title, unit, and whether
    a higher value is better (accuracy) or worse (bits per byte)."""

    name: str
    title: str
    unit: str
    higher_is_better: bool


BPB = Labels("bpb", "Bits per byte", "bits/byte", False)
CHOICE = Labels("mc", "Multiple choice (accuracy, length-normalised)", "accuracy", True)
GENERATION = Labels(
    "generation", "Generation fidelity (greedy, share in the language)", "share", True
)


@dataclass
class _Bound:
    """The model and tokenizer a benchmark evaluates, and its labels."""

    model: nn.Module
    tokenizer: Any

    # the Benchmark protocol's labels, read from ``labels``
    name = property(lambda self: self.labels.name)
    title = property(lambda self: self.labels.title)
    unit = property(lambda self: self.labels.unit)
    higher_is_better = property(lambda self: self.labels.higher_is_better)

    units_field = ""
    """The name of the field holding the units (texts, items, prompts) per language."""

    def units(self) -> ByLanguage:
        """The texts, items or prompts per language that the benchmark evaluates."""
        return getattr(self, self.units_field)  # type: ignore[no-any-return]

    @property
    def items(self) -> dict[str, int]:
        """Units per language."""
        units = self.units()
        return {lang: len(units[lang]) for lang in units.languages}


@dataclass(kw_only=True)
class _Batched(_Bound):
    """How a bound benchmark batches its forward passes, and where it reports progress."""

    batch_size: int = 64
    batch_tokens: int | None = 1024
    progress: Progress = field(default_factory=NullProgress)


@dataclass
class BitsPerByteBenchmark(_Batched):
    """Bits per UTF-8 byte of each language's texts (units: texts; ``num`` bits, ``den``
    bytes). ``prefix_ids`` (a chat template's opening) are read before every window and never
    scored. ``Cell.detail`` is a :class:`~crane.evaluation.bpb.BitsPerByte`."""

    units_field = "corpus"
    corpus: Corpus
    max_length: int = 128
    prefix_ids: list[int] | None = None
    labels: Labels = BPB
    _tokenized: dict[str, TokenizedTexts] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> dict[str, Any]:
        key: dict[str, Any] = {"corpus": self.corpus.provenance, "max_length": self.max_length}
        if self.prefix_ids:
            key["prefix_ids"] = list(self.prefix_ids)
        return key

    def tokenized(self, language: str) -> TokenizedTexts:
        if language not in self._tokenized:
            self._tokenized[language] = tokenize_texts(
                self.tokenizer,
                self.corpus[language],
                max_length=self.max_length,
                prefix_ids=self.prefix_ids,
            )
        return self._tokenized[language]

    def batches(self, language: str) -> int:
        """Forward passes (batches) one evaluation of ``language`` takes."""
        return count_batches(
            self.tokenized(language), batch_size=self.batch_size, max_tokens=self.batch_tokens
        )

    def evaluate(self, language: str) -> Cell:
        tok = self.tokenized(language)
        nats = text_nats(
            self.model,
            tok,
            batch_size=self.batch_size,
            max_tokens=self.batch_tokens,
            pad_id=pad_token_id(self.tokenizer),
            progress=self.progress,
        )
        units = bpb_units(nats, np.asarray(tok.n_bytes))
        detail = BitsPerByte(nats, np.asarray(tok.n_bytes), np.asarray(tok.n_tokens))
        return Cell(units.num.tolist(), units.den.tolist(), detail=detail)


@dataclass
class ChoiceBenchmark(_Batched):
    """Multiple-choice accuracy (units: items; ``num`` 1 when the length-normalised choice is
    right, ``den`` 1; ``extra["correct_raw"]`` without normalisation). ``Cell.detail`` is a
    :class:`~crane.evaluation.choice.ChoiceScores`. ``prefix_cache`` (default) runs each item's
    context once and reuses its key/value cache for every choice (same scores to float
    rounding; see :mod:`crane.evaluation.choice`)."""

    units_field = "choice_set"
    choice_set: ChoiceSet
    max_length: int | None = None
    prefix_cache: bool = True
    labels: Labels = CHOICE
    _prepared: dict[str, _Prepared] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> dict[str, Any]:
        return {"provenance": self.choice_set.provenance, "max_length": self.max_length}

    def prepared(self, language: str) -> _Prepared:
        if language not in self._prepared:
            self._prepared[language] = _prepare(
                self.tokenizer,
                self.choice_set[language],
                self.choice_set.style,
                language,
                _resolve_max_length(self.model, self.max_length),
            )
        return self._prepared[language]

    def batches(self, language: str) -> int:
        return _count_batches(
            self.model,
            self.prepared(language),
            batch_size=self.batch_size,
            max_tokens=self.batch_tokens,
            prefix_cache=self.prefix_cache,
        )

    def evaluate(self, language: str) -> Cell:
        scores = _score(
            self.model,
            self.prepared(language),
            batch_size=self.batch_size,
            max_tokens=self.batch_tokens,
            pad_id=pad_token_id(self.tokenizer),
            progress=self.progress,
            prefix_cache=self.prefix_cache,
        )
        norm = scores.correct(norm=True).astype(float).tolist()
        raw = scores.correct(norm=False).astype(float).tolist()
        return Cell(norm, [1.0] * len(norm), {"correct_raw": raw}, detail=scores)


@dataclass
class GenerationBenchmark(_Batched):
    """Generation fidelity: greedy continuations of parallel prompts, identified offline
    (units: prompts; ``num`` 1 when the continuation is in the language). ``extra`` keeps
    the generated texts and the identified languages."""

    units_field = "prompts"
    prompts: ChoiceSet
    identify: Any
    max_new_tokens: int = 16
    labels: Labels = GENERATION

    @property
    def key(self) -> dict[str, Any]:
        return {"provenance": self.prompts.provenance, "tokens": self.max_new_tokens}

    def evaluate(self, language: str) -> Cell:
        from crane.evaluation.generation import generation_fidelity

        result = generation_fidelity(
            self.model,
            self.tokenizer,
            [item.prompt for item in self.prompts[language]],
            language,
            self.identify,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
            progress=self.progress,
        )
        correct = result.correct.astype(float).tolist()
        extra = {"generated": result.texts, "identified": result.identified}
        return Cell(correct, [1.0] * len(correct), extra, detail=result)
