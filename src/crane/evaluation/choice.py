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

Shared-prefix cache (the default, ``prefix_cache=True``): the choices of an item share its
context, so the context is run once (a batch of items' contexts, right-padded) and its key/value
cache (a transformers ``DynamicCache``) is repeated along the batch for every choice; only the
continuation tokens are then run (the batch's choices longest first, in passes that pad
little), at their true positions (``position_ids``), attending to the cached context through
the attention mask. The scores equal one sequence per choice (the uncached path,
``prefix_cache=False``) to float rounding; masks (:func:`crane.intervene.mask_neurons`) apply
to both passes. Models whose forward takes no cache or no position ids (BLOOM excepted: its
ALiBi positions come from the attention mask), or that attend in chunks, are scored on the
uncached path (:func:`prefix_cache_support` says why).
"""

from __future__ import annotations

import copy
import inspect
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
from crane.evaluation.bpb import (
    NONE,
    _device,
    _scored_nll,
    evaluate_masks,
    finite_nll,
    log_normaliser_,
    text_nats,
)
from crane.evaluation.metrics import Units, accuracy_units
from crane.models.adapters import Adapter
from crane.models.head import output_logits
from crane.neurons import NeuronSet
from crane.progress import NullProgress, Progress

__all__ = [
    "QUESTION_TEMPLATE",
    "ChoiceMatrix",
    "ChoiceScores",
    "choice_matrix",
    "choice_scores",
    "item_texts",
    "prefix_cache_support",
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
class _Group:
    """The choices of one item that read the same context tokens (all of them, unless the
    window truncated the context differently for choices of different lengths)."""

    context: list[int]  # BOS (when the tokenizer has one) + context tokens
    windows: list[int]  # the window (row of ``_Prepared.tokenized``) of each choice
    options: list[list[int]]  # the continuation tokens of each choice, all scored


@dataclass
class _Prepared:
    """One language's items as token windows: one window per (item, choice), and the same
    windows grouped by shared context for the prefix-cached path."""

    tokenized: TokenizedTexts
    rows: tuple[np.ndarray, np.ndarray]  # item and choice index of each window
    shape: tuple[int, int]
    n_bytes: np.ndarray
    n_tokens: np.ndarray
    answer: np.ndarray
    n_truncated: int
    groups: list[_Group] = field(default_factory=list)


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
    groups: dict[tuple[int, tuple[int, ...]], _Group] = {}
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
        group = groups.setdefault((i, tuple(ctx)), _Group(prefix + ctx, [], []))
        group.windows.append(row)
        group.options.append(cont)
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
        tokenized,
        rows,
        (len(items), n_choices),
        n_bytes,
        n_tokens,
        answer,
        len(truncated),
        list(groups.values()),
    )


# ---- the shared-prefix cache -------------------------------------------------------------------

_NO_POSITION_IDS = frozenset({"bloom"})
"""Model types whose forward takes no ``position_ids`` but derives positions from the attention
mask (ALiBi over the mask's running count), so a padded cached context is still exact."""


def _text_config(model: nn.Module) -> Any:
    config = getattr(model, "config", None)
    return getattr(config, "text_config", None) or config


def _cache_argument(model: nn.Module) -> str | None:
    """The name under which the model body's forward takes a KV cache, else None."""
    try:
        params = inspect.signature(model.base_model.forward).parameters
    except (AttributeError, TypeError, ValueError):
        return None
    if "use_cache" not in params:
        return None
    for name in ("cache", "past_key_values"):  # renamed within transformers 5.x
        if name in params:
            return name
    return None


def prefix_cache_support(model: nn.Module) -> str | None:
    """``None`` when the model's choices can be scored from a shared-prefix cache, else one
    sentence saying why not (the choices are then scored one sequence each)."""
    name = _cache_argument(model)
    if name is None:
        return "its forward takes no key/value cache"
    config = _text_config(model)
    if getattr(config, "attention_chunk_size", None):
        return "it attends in chunks, which a padded cached context would shift"
    params = inspect.signature(model.base_model.forward).parameters
    if "position_ids" not in params and getattr(config, "model_type", None) not in _NO_POSITION_IDS:
        return "its forward takes no position ids, so a padded context would shift the choices"
    return None


def _sliding_window(model: nn.Module) -> int | None:
    window = getattr(_text_config(model), "sliding_window", None)
    return int(window) if isinstance(window, int) and window > 0 else None


@dataclass
class _Pass:
    """One batch of the cached path: the groups whose contexts run together (longest first),
    and the choices ``(position in groups, choice)`` of each options pass over their cache."""

    groups: list[int]
    chunks: list[list[tuple[int, int]]]


def _plan(
    groups: list[_Group], batch_size: int, max_tokens: int | None, window: int | None
) -> list[_Pass]:
    """How the cached path batches ``groups``.

    Contexts: longest first, at most ``batch_size`` per batch and, when ``max_tokens`` is set,
    at most that many padded tokens (contexts × longest context); with a sliding ``window``,
    several groups share a batch only when the longest context plus the longest continuation
    fits in it (a shorter context is padded on its right, which would push its tokens out of
    the window). Options: the batch's choices, longest first (across items, so that each pass
    pads little), at most ``batch_size`` per pass and ``max_tokens`` padded tokens counted as
    the uncached path counts them (choices × (longest context + longest continuation)). A batch
    or a pass always holds at least one group or choice, whatever its size.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}.")
    if max_tokens is not None and max_tokens < 1:
        raise ConfigError(f"max_tokens must be at least 1, got {max_tokens}.")
    order = sorted(range(len(groups)), key=lambda g: -len(groups[g].context))  # stable
    batches: list[list[int]] = []
    for g in order:
        members = [*batches[-1], g] if batches else [g]
        width = max(len(groups[m].context) for m in members)
        longest = max(len(o) for m in members for o in groups[m].options)
        fits = (
            len(members) <= batch_size
            and (max_tokens is None or len(members) * width <= max_tokens)
            and (window is None or width + longest <= window)
        )
        if batches and fits:
            batches[-1].append(g)
        else:
            batches.append([g])
    passes = []
    for batch in batches:
        width = max(len(groups[g].context) for g in batch)
        rows = [(b, k) for b, g in enumerate(batch) for k in range(len(groups[g].options))]
        rows.sort(key=lambda r: -len(groups[batch[r[0]]].options[r[1]]))  # stable
        chunks: list[list[tuple[int, int]]] = []
        longest = 0  # of the current chunk: its first row, as rows come longest first
        for b, k in rows:
            n = len(chunks[-1]) + 1 if chunks else 0
            tokens = n * (width + longest)
            if n and n <= batch_size and (max_tokens is None or tokens <= max_tokens):
                chunks[-1].append((b, k))
            else:
                chunks.append([(b, k)])
                longest = len(groups[batch[b]].options[k])
        passes.append(_Pass(batch, chunks))
    return passes


def _returned_cache(output: Any) -> Any:
    for name in ("cache", "past_key_values"):
        cache = getattr(output, name, None)
        if cache is not None:
            return cache
    return None


def _select_rows(cache: Any, index: torch.Tensor) -> Any:
    """A cache holding rows ``index`` of ``cache`` (repeats allowed); ``cache`` is unchanged
    (its layers are copied shallowly and the copies re-pointed at the selected rows)."""
    selected = copy.copy(cache)
    layers = getattr(cache, "layers", None)
    if layers is None:  # pragma: no cover - a cache class without per-layer objects
        selected = copy.deepcopy(cache)
    else:
        selected.layers = [copy.copy(layer) for layer in layers]
    selected.batch_select_indices(index)  # CPU indices index a cache on any device
    return selected


@torch.no_grad()
def _cached_nats(
    model: nn.Module,
    prepared: _Prepared,
    *,
    batch_size: int,
    max_tokens: int | None,
    pad_id: int,
    progress: Progress,
) -> np.ndarray | None:
    """Summed NLL (nats) of every window's continuation: ``[n_windows]`` float64, each
    context run once per batch and its cache repeated for the choices (module docstring).
    ``None`` when the model returned no cache on the first batch (nothing counted yet)."""
    cache_name = _cache_argument(model)
    body = model.base_model
    takes_positions = "position_ids" in inspect.signature(body.forward).parameters
    device = _device(model)
    groups = prepared.groups
    totals = torch.zeros(len(prepared.tokenized.n_bytes), dtype=torch.float64)
    done = False
    for plan in _plan(groups, batch_size, max_tokens, _sliding_window(model)):
        members = [groups[g] for g in plan.groups]
        width = max(len(m.context) for m in members)
        context_ids = torch.full((len(members), width), pad_id, dtype=torch.long)
        context_mask = torch.zeros((len(members), width), dtype=torch.long)
        for b, m in enumerate(members):
            context_ids[b, : len(m.context)] = torch.tensor(m.context)
            context_mask[b, : len(m.context)] = 1
        out = body(
            input_ids=context_ids.to(device), attention_mask=context_mask.to(device), use_cache=True
        )
        cache = _returned_cache(out)
        if cache is None:
            if done:  # pragma: no cover - a model that caches only sometimes
                raise ConfigError(
                    "The model stopped returning a key/value cache part-way; score with "
                    "prefix_cache=False."
                )
            return None
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        lengths = context_mask.sum(dim=1)  # [G]
        last = hidden[torch.arange(len(members)), (lengths - 1).to(hidden.device)]  # [G, d]
        del out, hidden
        # every option's first token is predicted at its context's last position: the output
        # head runs there once per context, not once per option
        first_logits = output_logits(model, last).float()  # [G, V]
        # every option's first-token logit, in chunk order, before the in-place normaliser
        # overwrites the logits (no second [G, V] tensor)
        pairs = [(b, members[b].options[k][0]) for chunk in plan.chunks for b, k in chunk]
        at = first_logits.device
        first_gold = first_logits[
            torch.tensor([b for b, _ in pairs], device=at),
            torch.tensor([t for _, t in pairs], device=at),
        ]
        first_norm = log_normaliser_(first_logits)  # [G]
        del first_logits
        progress.advance(1)
        offset = 0
        for chunk in plan.chunks:
            # one row per choice: its group in the batch, its window, its continuation tokens
            index = torch.tensor([b for b, _ in chunk], dtype=torch.long)
            windows = torch.tensor([members[b].windows[k] for b, k in chunk], dtype=torch.long)
            options = [members[b].options[k] for b, k in chunk]
            long = max(len(o) for o in options)
            option_ids = torch.full((len(options), long), pad_id, dtype=torch.long)
            option_mask = torch.zeros((len(options), long), dtype=torch.long)
            targets = torch.full((len(options), long), -100, dtype=torch.long)
            for r, o in enumerate(options):
                option_ids[r, : len(o)] = torch.tensor(o)
                option_mask[r, : len(o)] = 1
                targets[r, : len(o) - 1] = option_ids[r, 1 : len(o)]  # position t predicts t + 1
            kwargs: dict[str, Any] = {str(cache_name): _select_rows(cache, index)}
            if takes_positions:
                kwargs["position_ids"] = (lengths[index][:, None] + torch.arange(long)).to(device)
            attention = torch.cat([context_mask[index], option_mask], dim=1)
            out = body(
                input_ids=option_ids.to(device),
                attention_mask=attention.to(device),
                use_cache=True,
                **kwargs,
            )
            option_hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
            del out, kwargs
            # the first continuation token is predicted at the context's last position
            gold = first_gold[offset : offset + len(chunk)]
            offset += len(chunk)
            nll = finite_nll(first_norm[index.to(at)] - gold)
            scored = targets != -100
            rest = _scored_nll(
                model, option_hidden[scored.to(option_hidden.device)], targets[scored]
            )
            totals.index_add_(0, windows, nll)
            totals.index_add_(0, windows[scored.nonzero()[:, 0]], rest)
            progress.advance(1)
        del cache, first_gold, first_norm
        done = True
    return totals.numpy()


def _count_batches(
    model: nn.Module,
    prepared: _Prepared,
    *,
    batch_size: int,
    max_tokens: int | None,
    prefix_cache: bool,
) -> int:
    """Forward passes :func:`_score` takes with the same arguments (cached: a context batch
    and each of its options passes)."""
    if prefix_cache and prefix_cache_support(model) is None:
        plan = _plan(prepared.groups, batch_size, max_tokens, _sliding_window(model))
        return sum(1 + len(p.chunks) for p in plan)
    return count_batches(prepared.tokenized, batch_size=batch_size, max_tokens=max_tokens)


def _score(
    model: nn.Module,
    prepared: _Prepared,
    *,
    batch_size: int,
    max_tokens: int | None,
    pad_id: int,
    progress: Progress,
    prefix_cache: bool = True,
) -> ChoiceScores:
    nats = None
    if prefix_cache and prefix_cache_support(model) is None:
        nats = _cached_nats(
            model,
            prepared,
            batch_size=batch_size,
            max_tokens=max_tokens,
            pad_id=pad_id,
            progress=progress,
        )
    if nats is None:
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
    prefix_cache: bool = True,
    progress: Progress | None = None,
) -> ChoiceScores:
    """Score every choice of ``items`` under ``model`` (with whatever masks are active).

    Each (item, choice) is one sequence: BOS (when the tokenizer has one) + context tokens +
    continuation tokens; only continuation positions are scored, with
    logits computed at those positions only (``final_hidden`` + ``output_logits``, never the
    ``[B, T, vocab]`` tensor), in batches of at most ``batch_size`` choices and ``max_tokens``
    padded tokens. ``style`` and ``language`` choose the formatting (:func:`item_texts`).

    With ``prefix_cache`` (default) an item's context is run once and its key/value cache reused
    for every choice (module docstring); the scores are those of one sequence per choice, which
    ``prefix_cache=False`` (or a model without cache support, :func:`prefix_cache_support`)
    computes directly.

    ``max_length`` (default: the model's window, ``max_position_embeddings``; never more) caps
    a sequence: a longer context is truncated from the left (BOS kept), the continuation is
    always scored whole (ConfigError when it alone does not fit). ``n_truncated`` counts the
    items cut.
    """
    prepared = _prepare(tokenizer, items, style, language, _resolve_max_length(model, max_length))
    if progress is not None:
        progress.start(
            "multiple choice",
            _count_batches(
                model,
                prepared,
                batch_size=batch_size,
                max_tokens=max_tokens,
                prefix_cache=prefix_cache,
            ),
        )
    return _score(
        model,
        prepared,
        batch_size=batch_size,
        max_tokens=max_tokens,
        pad_id=pad_token_id(tokenizer),
        progress=progress or NullProgress(),
        prefix_cache=prefix_cache,
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
    prefix_cache: bool = True,
    adapter: Adapter | None = None,
    progress: Progress | None = None,
) -> ChoiceMatrix:
    """Score every language of ``choice_set`` unmasked and under each mask.

    The rows are :func:`crane.evaluation.bpb.matrix_conditions`'s: each NeuronSet in ``masks``
    gives one row per language it holds (that language's neurons masked with ``mode``,
    ``alpha`` and ``means``); with ``random_controls`` each set gets layer-matched random
    controls. Items are
    formatted by ``choice_set.style`` and tokenized once; scoring follows :func:`choice_scores`
    (``prefix_cache`` included).
    """
    from crane.evaluation.benchmarks import ChoiceBenchmark

    languages = choice_set.languages
    length = _resolve_max_length(model, max_length)
    progress = progress or NullProgress()
    benchmark = ChoiceBenchmark(
        model, tokenizer, choice_set, batch_size=batch_size, batch_tokens=max_tokens,
        max_length=length, prefix_cache=prefix_cache, progress=progress,
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
        "prefix_cache": prefix_cache and prefix_cache_support(model) is None,
        "max_length": length,
        "truncated_items": {
            lang: benchmark.prepared(lang).n_truncated for lang in languages
        },
        "choice_set": choice_set.provenance,
    }
    return ChoiceMatrix(languages, run.conditions, run.results, run.sizes, meta)
