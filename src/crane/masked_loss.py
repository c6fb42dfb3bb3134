"""Bits per byte as a differentiable function of a soft mask: what the reference optimum
(:mod:`crane.optimise`) descends and what the causal construction's integrated-gradient shares
(:mod:`crane.construction`) integrate.

``LanguageTexts`` tokenizes one language's texts once and hands out whole-text subsets with
their byte counts; ``scaled_site`` multiplies every layer's site by a ``[n_layers, d_ff]``
factor that may carry a graph; ``bits_per_byte`` sums the gold log-probabilities (chunked over
the vocabulary, :func:`crane.collect.explained`) into bits per byte, with a graph when a factor
needs one. The model's weights are frozen: only the factor receives a gradient.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import torch

from crane.collect import RelevanceOptions, explained
from crane.data.batching import Batch, TokenizedTexts, iter_batches, pad_token_id, tokenize_texts
from crane.models.loading import LoadedModel
from crane.models.sites import site_hooks

LN2 = math.log(2.0)


class LanguageTexts:
    """One language's texts, tokenized once; subsets of whole texts with their bytes."""

    def __init__(self, loaded: LoadedModel, texts: list[str], batching: RelevanceOptions):
        self.tok = tokenize_texts(loaded.tokenizer, texts, max_length=batching.max_length)
        self.by_text: dict[int, list[int]] = {}
        for i, window in enumerate(self.tok.windows):
            self.by_text.setdefault(window.text_index, []).append(i)
        self.texts = sorted(self.by_text)
        """Indices of the texts with something to predict."""
        self.batching = batching
        self.pad = pad_token_id(loaded.tokenizer)

    def subset(self, chosen: list[int] | None = None) -> tuple[TokenizedTexts, int]:
        """The windows of texts ``chosen`` (default all) and their UTF-8 bytes."""
        chosen = self.texts if chosen is None else chosen
        windows = [self.tok.windows[i] for t in chosen for i in self.by_text[t]]
        n_bytes = sum(self.tok.n_bytes[t] for t in chosen)
        return TokenizedTexts(windows, self.tok.n_bytes, self.tok.n_tokens), n_bytes

    def batches(self, tok: TokenizedTexts) -> Iterator[Batch]:
        return iter_batches(
            tok, batch_size=self.batching.batch_size, pad_id=self.pad,
            max_tokens=self.batching.batch_tokens,
        )


def scaled_site(loaded: LoadedModel, site: str, factor: torch.Tensor) -> AbstractContextManager[Any]:
    """Multiply the site by ``factor`` ([n_layers, d_ff], may carry a graph) in every layer."""

    def apply(layer: int, x: torch.Tensor) -> torch.Tensor:
        return x * factor[layer].to(device=x.device, dtype=x.dtype)

    return site_hooks(loaded.model, loaded.adapter, site, apply)


def bits_per_byte(
    loaded: LoadedModel, texts: LanguageTexts, chosen: list[int] | None = None
) -> torch.Tensor:
    """Bits per byte of texts ``chosen`` (default all) under whatever hooks are on: a float64
    scalar, with a graph when a hook's factor has one."""
    tok, n_bytes = texts.subset(chosen)
    total: torch.Tensor | None = None
    for batch in texts.batches(tok):
        nats = -explained(loaded.model, batch, "logprob").double()
        total = nats if total is None else total + nats
    assert total is not None
    return total / (LN2 * n_bytes)
