"""Multiple-choice accuracy per language, unmasked and under neuron masks.

Each item is scored as lm-eval scores ``multiple_choice`` tasks: the summed log-probability
(nats) of every choice's continuation tokens given the context; the prediction is the choice
with the highest log-likelihood (``acc``) or the highest log-likelihood per UTF-8 byte of the
continuation (``acc_norm``, lm-eval's length normalisation, here in bytes so that it is
comparable across scripts).

Formatting (:func:`item_texts`), one place for every set:

- ``question`` style (MMLU-style files): context ``"{question}\\nAnswer:"``, each choice
  scored as the continuation ``" " + choice`` (lm-eval's cloze formulation);
- ``continuation`` style (the built-in parallel test): context = the item's prompt, each choice
  its continuation.

The separator before a continuation is a space only in languages that separate words with
spaces (:func:`crane.data.choice_files.uses_spaces`): Chinese, Japanese, Thai, ... continuations
follow the context directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from crane.data.batching import TokenizedTexts, Window, count_batches, pad_token_id
from crane.data.choice_files import STYLES, ChoiceItem, ChoiceSet, uses_spaces
from crane.errors import ConfigError, LanguageError
from crane.evaluation.bpb import NONE, evaluate_masks, text_nats
from crane.evaluation.metrics import Units, accuracy_units
from crane.models.adapters import Adapter
from crane.neurons import NeuronSet
from crane.progress import NullProgress, Progress

__all__ = [
    "QUESTION_TEMPLATE",
    "ChoiceMatrix",
    "ChoiceScores",
    "choice_matrix",
    "choice_scores",
    "item_texts",
]

QUESTION_TEMPLATE = "{question}\nAnswer:"
"""Context of a ``question``-style item (lm-eval's MMLU cloze prompt)."""

DEFAULT_MAX_LENGTH = 2048
"""Window used when neither ``max_length`` nor the model's config gives one."""


@dataclass
class ChoiceScores:
    """Choice log-likelihoods of one language's items.

    Attributes:
        loglik: ``[n_items, n_choices]`` summed log-probability (nats, float64) of each
            choice's continuation tokens; ``-inf`` pads items with fewer choices.
        n_bytes: ``[n_items, n_choices]`` UTF-8 bytes of each scored continuation (its leading
            space included); 0 for padding.
        answer: ``[n_items]`` index of the correct choice.
        n_tokens: ``[n_items, n_choices]`` continuation tokens; 0 for padding.
        n_truncated: items whose context was cut from the left to fit the window.
    """

    loglik: np.ndarray
    n_bytes: np.ndarray
    answer: np.ndarray
    n_tokens: np.ndarray | None = None
    n_truncated: int = 0

    def scores(self, norm: bool = True) -> np.ndarray:
        """``[n_items, n_choices]``: log-likelihood, or per byte when ``norm``."""
        if not norm:
            return self.loglik
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.n_bytes > 0, self.loglik / self.n_bytes, -np.inf)

    def predicted(self, norm: bool = True) -> np.ndarray:
        """``[n_items]``: index of the best-scoring choice (the first one on ties)."""
        return np.asarray(self.scores(norm).argmax(axis=1))

    def correct(self, norm: bool = True) -> np.ndarray:
        """``[n_items]`` bool: whether the best choice is the answer (``acc`` / ``acc_norm``)."""
        return np.asarray(self.predicted(norm) == self.answer)

    def accuracy(self, norm: bool = True) -> float:
        """Share of items answered correctly."""
        return float(self.correct(norm).mean()) if len(self.answer) else float("nan")


# ---- formatting and tokenization ------------------------------------------------------------


def item_texts(item: ChoiceItem, style: str, language: str) -> tuple[str, list[str]]:
    """``(context, [continuation per choice])`` as the model sees an item (module docstring)."""
    if style not in STYLES:
        raise ConfigError(
            f"Unknown multiple-choice style {style!r}; use one of {', '.join(STYLES)}."
        )
    context = QUESTION_TEMPLATE.format(question=item.prompt) if style == "question" else item.prompt
    separator = " " if uses_spaces(language) else ""
    return context, [separator + choice for choice in item.choices]


def _encode(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    return [list(map(int, ids)) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _split_space(context: str, continuation: str) -> tuple[str, str]:
    """Move trailing whitespace of the context to the start of the continuation (lm-eval).

    The continuation's tokens are then ``encode(context + continuation)[len(encode(context)):]``
    so that a word is tokenized as it is in running text.
    """
    n = len(context) - len(context.rstrip())
    if n:
        return context[:-n], context[-n:] + continuation
    return context, continuation


def _model_window(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _resolve_max_length(model: nn.Module, max_length: int | None) -> int:
    window = _model_window(model)
    if max_length is None:
        return window or DEFAULT_MAX_LENGTH
    if max_length < 2:
        raise ConfigError(f"max_length must be at least 2, got {max_length}; use e.g. 1024.")
    return min(max_length, window) if window else max_length


@dataclass
class _Prepared:
    """One language's items as token windows: one window per (item, choice)."""

    tokenized: TokenizedTexts
    rows: tuple[np.ndarray, np.ndarray]  # item and choice index of each window
    shape: tuple[int, int]
    n_bytes: np.ndarray
    n_tokens: np.ndarray
    answer: np.ndarray
    n_truncated: int


def _prepare(
    tokenizer: Any, items: Sequence[ChoiceItem], style: str, language: str, max_length: int
) -> _Prepared:
    if not items:
        raise LanguageError("There are no items to evaluate; give at least one question.")
    bos = getattr(tokenizer, "bos_token_id", None)
    prefix = [int(bos)] if bos is not None else []
    pairs: list[tuple[int, int, str, str]] = []
    for i, item in enumerate(items):
        context, continuations = item_texts(item, style, language)
        for j, continuation in enumerate(continuations):
            pairs.append((i, j, *_split_space(context, continuation)))
    contexts = list(dict.fromkeys(p[2] for p in pairs))
    context_ids = dict(zip(contexts, _encode(tokenizer, contexts), strict=True))
    wholes = _encode(tokenizer, [c + x for _, _, c, x in pairs])
    n_choices = max(len(item.choices) for item in items)
    n_bytes = np.zeros((len(items), n_choices), dtype=np.int64)
    n_tokens = np.zeros((len(items), n_choices), dtype=np.int64)
    windows: list[Window] = []
    truncated: set[int] = set()
    for row, ((i, j, context, continuation), whole) in enumerate(zip(pairs, wholes, strict=True)):
        ctx = context_ids[context]
        cont = whole[len(ctx) :] or _encode(tokenizer, [continuation])[0]
        if not cont:
            raise ConfigError(
                f"Choice {j} of item {items[i].id!r} gives no tokens; check the tokenizer "
                "or the item's text."
            )
        room = max_length - len(prefix) - len(cont)  # context tokens that fit
        if room < (0 if prefix else 1):
            raise ConfigError(
                f"Choice {j} of item {items[i].id!r} has {len(cont)} tokens, more than the "
                f"window of {max_length} holds; raise max_length or shorten the choice."
            )
        if len(ctx) > room:
            ctx = ctx[len(ctx) - room :]
            truncated.add(i)
        if not prefix and not ctx:
            raise ConfigError(
                f"Item {items[i].id!r} has an empty context and the tokenizer has no BOS token, "
                "so its first token cannot be scored; give a non-empty prompt."
            )
        windows.append(Window(row, prefix + ctx + cont, len(cont)))
        n_bytes[i, j] = len(continuation.encode("utf-8"))
        n_tokens[i, j] = len(cont)
    tokenized = TokenizedTexts(
        windows,
        [len(p[3].encode("utf-8")) for p in pairs],
        [int(w.n_predicted) for w in windows],
        bos_added=bool(prefix),
    )
    rows = (np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))
    answer = np.array([item.answer for item in items], dtype=np.int64)
    return _Prepared(
        tokenized, rows, (len(items), n_choices), n_bytes, n_tokens, answer, len(truncated)
    )


def _score(
    model: nn.Module,
    prepared: _Prepared,
    *,
    batch_size: int,
    max_tokens: int | None,
    pad_id: int,
    progress: Progress,
) -> ChoiceScores:
    nats = text_nats(
        model,
        prepared.tokenized,
        batch_size=batch_size,
        max_tokens=max_tokens,
        pad_id=pad_id,
        progress=progress,
    )
    loglik = np.full(prepared.shape, -np.inf)
    loglik[prepared.rows] = -nats
    return ChoiceScores(
        loglik,
        prepared.n_bytes.copy(),
        prepared.answer.copy(),
        prepared.n_tokens.copy(),
        prepared.n_truncated,
    )


def choice_scores(
    model: nn.Module,
    tokenizer: Any,
    items: Sequence[ChoiceItem],
    *,
    style: str = "question",
    language: str = "en",
    batch_size: int = 64,
    max_tokens: int | None = 1024,
    max_length: int | None = None,
    progress: Progress | None = None,
) -> ChoiceScores:
    """Score every choice of ``items`` under ``model`` (with whatever masks are active).

    Each (item, choice) is one sequence: BOS (when the tokenizer has one) + context tokens +
    continuation tokens; only continuation positions are scored, with
    logits computed at those positions only (``final_hidden`` + ``output_logits``, never the
    ``[B, T, vocab]`` tensor), in batches of at most ``batch_size`` rows and ``max_tokens``
    padded tokens. ``style`` and ``language`` choose the formatting (:func:`item_texts`).

    ``max_length`` (default: the model's window, ``max_position_embeddings``; never more) caps
    a sequence: a longer context is truncated from the left (BOS kept), the continuation is
    always scored whole (ConfigError when it alone does not fit). ``n_truncated`` counts the
    items cut.
    """
    prepared = _prepare(tokenizer, items, style, language, _resolve_max_length(model, max_length))
    if progress is not None:
        progress.start(
            "multiple choice",
            count_batches(prepared.tokenized, batch_size=batch_size, max_tokens=max_tokens),
        )
    return _score(
        model,
        prepared,
        batch_size=batch_size,
        max_tokens=max_tokens,
        pad_id=pad_token_id(tokenizer),
        progress=progress or NullProgress(),
    )


# ---- masking matrix ----------------------------------------------------------------------------


def _metric(norm: bool) -> str:
    return "acc_norm" if norm else "acc"


@dataclass
class ChoiceMatrix:
    """Multiple-choice scores for every (masking condition, evaluated language) pair.

    Rows: ``none`` (unmasked), one row per masked (set, language) — named as in
    :func:`crane.evaluation.bpb.matrix_conditions` — and layer-matched random controls
    ``random~<row>``.
    Columns: evaluated languages. ``results`` keeps every cell's :class:`ChoiceScores`, so the
    per-item correctness (:meth:`correct`) is there for bootstrap intervals (:meth:`units`).
    """

    languages: list[str]
    conditions: list[str]
    results: dict[tuple[str, str], ChoiceScores]
    sizes: dict[str, int]
    meta: dict[str, Any] = field(default_factory=dict)

    def correct(self, condition: str, language: str, norm: bool = True) -> np.ndarray:
        """``[n_items]`` bool: per-item correctness of one cell."""
        return self.results[(condition, language)].correct(norm)

    def accuracy(self, norm: bool = True) -> pd.DataFrame:
        """Accuracy (``acc_norm`` when ``norm``, else ``acc``): rows = conditions, columns =
        evaluated languages."""
        data = [
            [self.results[(c, lang)].accuracy(norm) for lang in self.languages]
            for c in self.conditions
        ]
        frame = pd.DataFrame(data, index=self.conditions, columns=self.languages)
        frame.index.name, frame.columns.name = "masked", "evaluated"
        return frame

    def delta(self, norm: bool = True) -> pd.DataFrame:
        """Change in accuracy against the unmasked row (negative = masking hurt)."""
        table = self.accuracy(norm)
        return table - table.loc[NONE]

    def units(self, norm: bool = True) -> dict[tuple[str, str], Units]:
        """Per-item correctness as :class:`~crane.evaluation.metrics.Units` for
        :func:`~crane.evaluation.metrics.matrix_metrics` (``higher_is_better=True``)."""
        return {key: accuracy_units(scores.correct(norm)) for key, scores in self.results.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers: accuracies, changes, per-item correctness, sizes, provenance."""
        out: dict[str, Any] = {
            "languages": self.languages,
            "conditions": self.conditions,
            "sizes": self.sizes,
            "n_items": {
                lang: int(len(self.results[(NONE, lang)].answer)) for lang in self.languages
            },
        }
        for key in ("accuracy", "delta", "correct"):
            out[key] = {}
        for norm in (False, True):
            name = _metric(norm)
            out["accuracy"][name] = self.accuracy(norm).to_dict(orient="index")
            out["delta"][name] = self.delta(norm).to_dict(orient="index")
            out["correct"][name] = {
                c: {
                    lang: self.correct(c, lang, norm).astype(int).tolist()
                    for lang in self.languages
                }
                for c in self.conditions
            }
        out["meta"] = self.meta
        return out


def choice_matrix(
    model: nn.Module,
    tokenizer: Any,
    choice_set: ChoiceSet,
    masks: Mapping[str, NeuronSet],
    *,
    random_controls: bool = True,
    seed: int = 0,
    random_seeds: int = 1,
    mode: str = "zero",
    alpha: float = 0.0,
    means: torch.Tensor | None = None,
    batch_size: int = 64,
    max_tokens: int | None = 1024,
    max_length: int | None = None,
    adapter: Adapter | None = None,
    progress: Progress | None = None,
) -> ChoiceMatrix:
    """Score every language of ``choice_set`` unmasked and under each mask.

    The rows are :func:`crane.evaluation.bpb.matrix_conditions`'s: each NeuronSet in ``masks``
    gives one row per language it holds (that language's neurons masked with ``mode``,
    ``alpha`` and ``means``); with ``random_controls`` each set gets layer-matched random
    controls. Items are
    formatted by ``choice_set.style`` and tokenized once; scoring follows :func:`choice_scores`.
    """
    from crane.evaluation.benchmarks import ChoiceBenchmark

    languages = choice_set.languages
    length = _resolve_max_length(model, max_length)
    progress = progress or NullProgress()
    benchmark = ChoiceBenchmark(
        model, tokenizer, choice_set, batch_size=batch_size, batch_tokens=max_tokens,
        max_length=length, progress=progress,
    )
    run = evaluate_masks(
        model, benchmark, masks, languages, "masked multiple choice",
        random_controls=random_controls, seed=seed, random_seeds=random_seeds, mode=mode,
        alpha=alpha, means=means, adapter=adapter, progress=progress,
    )
    meta = {
        "benchmark": "multiple_choice",
        "style": choice_set.style,
        "template": QUESTION_TEMPLATE if choice_set.style == "question" else "{prompt}",
        "separator": {lang: " " if uses_spaces(lang) else "" for lang in languages},
        "scoring": "summed continuation log-probability (acc) and per UTF-8 byte (acc_norm)",
        **run.meta,
        "batch_size": batch_size,
        "max_tokens": max_tokens,
        "max_length": length,
        "truncated_items": {
            lang: benchmark.prepared(lang).n_truncated for lang in languages
        },
        "choice_set": choice_set.provenance,
    }
    return ChoiceMatrix(languages, run.conditions, run.results, run.sizes, meta)
