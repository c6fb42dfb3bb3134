"""Bits per UTF-8 byte per language, unmasked and under neuron masks.

Bits per byte is tokenizer-neutral: the total negative log-likelihood of a text's tokens
(in bits) divided by the text's UTF-8 byte count, so languages and models with different
tokenizers can be compared (per-token perplexity cannot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from crane.data.batching import (
    TokenizedTexts,
    count_batches,
    iter_batches,
    pad_token_id,
    tokenize_texts,
)
from crane.data.corpus import Corpus
from crane.errors import ConfigError, LanguageError
from crane.evaluation.conditions import (
    NONE,
    UNMASKED,
    Condition,
    control_conditions,
    control_seeds,
    run_conditions,
    set_conditions,
)
from crane.evaluation.metrics import bpb_units
from crane.models.adapters import Adapter, get_adapter
from crane.models.head import final_hidden, output_logits
from crane.models.placement import input_device
from crane.models.sites import model_shape
from crane.neurons import NeuronSet
from crane.progress import NullProgress, Progress


@dataclass
class BitsPerByte:
    """Per-text negative log-likelihood of one language's texts.

    Attributes:
        nats: ``[n_texts]`` summed NLL of each text's predicted tokens, in nats (float64).
        n_bytes: ``[n_texts]`` UTF-8 bytes of each text.
        n_tokens: ``[n_texts]`` predicted tokens of each text.
    """

    nats: np.ndarray
    n_bytes: np.ndarray
    n_tokens: np.ndarray

    @property
    def value(self) -> float:
        """Bits per byte over all texts (total bits / total bytes)."""
        return bpb_units(self.nats, self.n_bytes).value


HEAD_CHUNK = 512
"""Scored positions per output-head call: bounds the ``[chunk, vocab]`` logits in memory."""


def log_normaliser_(logits: torch.Tensor) -> torch.Tensor:
    """``logsumexp(logits, -1)``, computed in place (``logits`` is overwritten): no second
    ``[N, vocab]`` tensor, which on a 262k vocabulary makes the output head 1.2-1.4× faster
    on the CPU (the temporary's allocation and page faults; bench/head_normaliser.py)."""
    top = logits.amax(dim=-1, keepdim=True)
    return logits.sub_(top).exp_().sum(dim=-1).log_() + top[:, 0]


def finite_nll(nll: torch.Tensor) -> torch.Tensor:
    """``nll`` as float64 on the CPU; a clear error when any value is NaN or infinite."""
    if not torch.isfinite(nll).all():
        raise ConfigError(
            "The model produced NaN or infinite log-probabilities; "
            "load it in float32 (--dtype float32) or check its weights."
        )
    return nll.double().cpu()


def _scored_nll(model: nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """NLL in nats (float64, CPU) of ``targets [N]`` given final hidden states ``[N, d]``."""
    out = []
    for lo in range(0, hidden.shape[0], HEAD_CHUNK):
        logits = output_logits(model, hidden[lo : lo + HEAD_CHUNK]).float()
        target = targets[lo : lo + HEAD_CHUNK].to(logits.device)
        gold = logits.gather(-1, target[:, None])[:, 0]
        out.append(finite_nll(log_normaliser_(logits) - gold))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def _device(model: nn.Module) -> torch.device:
    return input_device(model)  # not model.device: meta when the embeddings are offloaded


@torch.no_grad()
def text_nats(
    model: nn.Module,
    tokenized: TokenizedTexts,
    *,
    batch_size: int = 64,
    max_tokens: int | None = 1024,
    pad_id: int = 0,
    progress: Progress | None = None,
) -> np.ndarray:
    """Summed next-token NLL (nats) per text: ``[n_texts]`` float64."""
    progress = progress or NullProgress()
    totals = torch.zeros(len(tokenized.n_bytes), dtype=torch.float64)
    device = _device(model)
    batches = iter_batches(tokenized, batch_size=batch_size, pad_id=pad_id, max_tokens=max_tokens)
    for batch in batches:
        hidden = final_hidden(
            model, batch.input_ids.to(device), batch.attention_mask.to(device)
        )
        scored = batch.labels != -100  # [B, T]: positions that predict a text token
        rows = scored.nonzero()[:, 0]  # the batch row of each scored position
        nll = _scored_nll(model, hidden[scored.to(hidden.device)], batch.labels[scored])
        totals.index_add_(0, batch.text_index[rows], nll)
        progress.advance(1)
    return totals.numpy()


def bits_per_byte(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_tokens: int | None = 1024,
    max_length: int = 128,
    progress: Progress | None = None,
) -> BitsPerByte:
    """Bits per byte of ``texts`` under ``model`` (with whatever masks are active)."""
    if not texts:
        raise LanguageError("There are no texts to evaluate; give at least one non-empty text.")
    tokenized = tokenize_texts(tokenizer, list(texts), max_length=max_length)
    if progress is not None:
        progress.start(
            "bits per byte", count_batches(tokenized, batch_size=batch_size, max_tokens=max_tokens)
        )
    nats = text_nats(
        model,
        tokenized,
        batch_size=batch_size,
        max_tokens=max_tokens,
        pad_id=pad_token_id(tokenizer),
        progress=progress,
    )
    return BitsPerByte(nats, np.asarray(tokenized.n_bytes), np.asarray(tokenized.n_tokens))


@dataclass
class MaskingMatrix:
    """Bits per byte for every (masking condition, evaluated language) pair.

    Rows: ``none`` (unmasked), one row per masked (set, language), and layer-matched random
    controls named ``random~<row>``. Columns: evaluated languages.
    """

    languages: list[str]
    conditions: list[str]
    results: dict[tuple[str, str], BitsPerByte]
    sizes: dict[str, int]
    meta: dict[str, Any] = field(default_factory=dict)

    def bpb(self) -> pd.DataFrame:
        """Bits per byte: rows = conditions, columns = evaluated languages."""
        data = [[self.results[(c, lang)].value for lang in self.languages] for c in self.conditions]
        frame = pd.DataFrame(data, index=self.conditions, columns=self.languages)
        frame.index.name, frame.columns.name = "masked", "evaluated"
        return frame

    def delta(self) -> pd.DataFrame:
        """Change in bits per byte against the unmasked row."""
        table = self.bpb()
        return table - table.loc[NONE]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers with sizes and provenance."""
        return {
            "languages": self.languages,
            "conditions": self.conditions,
            "sizes": self.sizes,
            "bits_per_byte": self.bpb().to_dict(orient="index"),
            "delta": self.delta().to_dict(orient="index"),
            "meta": self.meta,
        }


def masking_matrix(
    model: nn.Module,
    tokenizer: Any,
    corpus: Corpus,
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
    max_length: int = 128,
    adapter: Adapter | None = None,
    prefix_ids: list[int] | None = None,
    progress: Progress | None = None,
) -> MaskingMatrix:
    """Evaluate bits per byte of every language of ``corpus`` unmasked and under each mask.

    Each NeuronSet in ``masks`` gives one row per language it holds (that language's neurons
    masked); with ``random_controls`` each set gets layer-matched random controls of the same
    per-layer sizes (``random_seeds`` seeds), evaluated through
    :func:`crane.evaluation.conditions.run_conditions`.
    ``prefix_ids`` (a chat template's opening, :mod:`crane.evaluation.chat`) are read before
    every window instead of BOS and never scored.
    """
    from crane.evaluation.benchmarks import BitsPerByteBenchmark

    progress = progress or NullProgress()
    benchmark = BitsPerByteBenchmark(
        model, tokenizer, corpus, batch_size=batch_size, batch_tokens=max_tokens,
        max_length=max_length, prefix_ids=prefix_ids, progress=progress,
    )
    run = evaluate_masks(
        model, benchmark, masks, corpus.languages, "masked evaluation",
        random_controls=random_controls, seed=seed, random_seeds=random_seeds, mode=mode,
        alpha=alpha, means=means, adapter=adapter, progress=progress,
    )
    meta = {
        **run.meta,
        "batch_size": batch_size,
        "max_tokens": max_tokens,
        "max_length": max_length,
        "prefix_tokens": len(prefix_ids) if prefix_ids else 0,
        "corpus": corpus.provenance,
    }
    return MaskingMatrix(corpus.languages, run.conditions, run.results, run.sizes, meta)


@dataclass
class MaskedRun:
    """A benchmark under every row of a masking matrix: row names, each cell's full result
    (``Cell.detail``), masked neurons per row, and provenance."""

    conditions: list[str]
    results: dict[tuple[str, str], Any]
    sizes: dict[str, int]
    meta: dict[str, Any]


def evaluate_masks(
    model: nn.Module,
    benchmark: Any,
    masks: Mapping[str, NeuronSet],
    languages: list[str],
    label: str,
    *,
    random_controls: bool,
    seed: int,
    random_seeds: int,
    mode: str,
    alpha: float,
    means: torch.Tensor | None,
    adapter: Adapter | None,
    progress: Progress,
) -> MaskedRun:
    """The rows of :func:`matrix_conditions` evaluated by ``benchmark`` through
    :func:`run_conditions` (shared by :func:`masking_matrix` and ``choice_matrix``)."""
    adapter = adapter or get_adapter(model)
    shape = model_shape(model, adapter)
    for neuron_set in masks.values():
        neuron_set.check_fits(shape)
    rows = matrix_conditions(masks, random_controls, seed, shape.d_ff, random_seeds)
    progress.start(label, len(rows) * sum(benchmark.batches(lang) for lang in languages))
    cells = run_conditions(
        model, rows, [benchmark], languages=languages, adapter=adapter,
        mode=mode, alpha=alpha, means=means, progress=progress,
    )[benchmark.name]
    meta = {
        "mode": mode,
        "alpha": alpha if mode == "scale" else None,
        "seed": seed,
        "random_seeds": random_seeds if random_controls else 0,
        "site": {c.name: c.neurons.site for c in rows if c.neurons is not None},
        "n_layers": shape.n_layers,
        "d_ff": shape.d_ff,
    }
    sizes = {
        c.name: c.neurons.size(c.masked) if c.neurons is not None and c.masked else 0
        for c in rows
    }
    results = {key: cell.detail for key, cell in cells.items()}
    return MaskedRun([c.name for c in rows], results, sizes, meta)


def matrix_conditions(
    masks: Mapping[str, NeuronSet],
    random_controls: bool,
    seed: int,
    d_ff: int,
    random_seeds: int = 1,
) -> list[Condition]:
    """The rows of a masking matrix: ``none``, one row per (set, language) — named ``<set>``
    for a one-language set, else ``<set>:<lang>`` — and, with ``random_controls``, the
    layer-matched random controls ``random~<row>`` of every set (``random_seeds`` seeds from
    ``seed``; further seeds are named ``random~<set>#<seed>...``)."""
    rows = [UNMASKED, *set_conditions(masks)]
    if random_controls:
        rows += control_conditions(masks, seeds=control_seeds(seed, random_seeds), d_ff=d_ff)
    return rows
