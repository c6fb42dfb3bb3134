"""Shared by the relevance benchmarks: the demo model, the batches ``crane identify`` builds, the
bare frozen-weight forward+backward, and per-batch alternating timing."""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from crane.collect import IGNORE, RelevanceOptions
from crane.data.batching import Batch, iter_batches, pad_token_id, tokenize_texts
from crane.data.builtin import gettext_corpus
from crane.data.corpus import Corpus
from crane.models.head import gold_logits

LANGUAGES = ["en", "zh", "vi"]


def demo_corpus(texts: int) -> Corpus:
    """The first ``texts`` gettext identification texts of en, zh and vi."""
    return gettext_corpus("identify").select(LANGUAGES).take(texts)


def relevance_batches(tokenizer: object, corpus: Corpus, options: RelevanceOptions) -> list[Batch]:
    """Exactly the batches :func:`crane.collect.collect_relevance` runs over ``corpus``: shards
    of ``shard_texts`` texts per language, windows of ``max_length``, the same batch limits."""
    pad = pad_token_id(tokenizer)
    return [
        batch
        for lang in corpus.languages
        for lo in range(0, len(corpus[lang]), options.shard_texts)
        for batch in iter_batches(
            tokenize_texts(
                tokenizer,
                corpus[lang][lo : lo + options.shard_texts],
                max_length=options.max_length,
            ),
            batch_size=options.batch_size,
            pad_id=pad,
            max_tokens=options.batch_tokens,
        )
    ]


def n_scored(batches: Sequence[Batch]) -> int:
    return int(sum(int((b.labels != IGNORE).sum()) for b in batches))


def bare_backward(
    model: torch.nn.Module, batch: Batch, stop: torch.nn.Module | None = None
) -> None:
    """The practical limit: plain model (no rules, no hooks), frozen weights, forward of the
    body, the gold logits of the scored positions (unembedding rows gathered, as crane does),
    one backward of their sum to the input embeddings (a leaf).

    ``stop``: a module whose first input is the tensor the backward stops at instead (one
    forward pre-hook that only records the tensor), to match a backward that ends early."""
    seen: list[torch.Tensor] = []
    handle = (
        stop.register_forward_pre_hook(lambda _m, args: seen.append(args[0]) if not seen else None)
        if stop is not None
        else None
    )
    try:
        with torch.enable_grad():
            emb = model.get_input_embeddings()(batch.input_ids).detach().requires_grad_(True)
            out = model.base_model(
                inputs_embeds=emb, attention_mask=batch.attention_mask, use_cache=False
            )
            scored = batch.labels != IGNORE
            f = gold_logits(model, out.last_hidden_state[scored], batch.labels[scored]).sum()
            torch.autograd.grad(f, [seen[0] if seen else emb])
    finally:
        if handle is not None:
            handle.remove()


@dataclass
class Timings:
    """Seconds per variant, per repeat and per batch: ``seconds[name][repeat][batch]``."""

    names: list[str]
    seconds: dict[str, list[list[float]]] = field(default_factory=dict)

    def totals(self, name: str) -> list[float]:
        return [sum(rep) for rep in self.seconds[name]]

    def median(self, name: str) -> float:
        return statistics.median(self.totals(name))

    def ratio(self, name: str, base: str) -> float:
        """Ratio of the medians (over repeats) of the summed per-batch times."""
        return self.median(name) / self.median(base)

    def paired(self, name: str, base: str) -> float:
        """Median over every (repeat, batch) of the ratio of the two variants on that batch,
        measured seconds apart: the estimate least affected by load changing over the run."""
        return statistics.median(
            a / b
            for rep_a, rep_b in zip(self.seconds[name], self.seconds[base], strict=True)
            for a, b in zip(rep_a, rep_b, strict=True)
        )


def alternate(
    variants: dict[str, Callable[[int], float | None]],
    n_batches: int,
    repeats: int,
    contexts: dict[str, Callable[[], contextlib.AbstractContextManager[object]]] | None = None,
) -> Timings:
    """Time every variant on every batch, the variants back to back on each batch in an order
    rotated per batch and per repeat (so no variant always runs first or last).

    ``contexts[name]``: a context entered around that variant's call, outside the timed span
    (e.g. the AttnLRP patch, which a real run enters once, not per batch)."""
    names = list(variants)
    contexts = contexts or {}
    t = Timings(names, {name: [[0.0] * n_batches for _ in range(repeats)] for name in names})
    for rep in range(repeats):
        for i in range(n_batches):
            shift = (i + rep) % len(names)
            for name in names[shift:] + names[:shift]:
                with contexts.get(name, contextlib.nullcontext)():
                    started = time.perf_counter()
                    own = variants[name](i)
                    measured = time.perf_counter() - started
                # a variant that times itself (another process) returns its own seconds
                t.seconds[name][rep][i] = own if isinstance(own, float) else measured
    return t


def load_line(before: tuple[float, float, float]) -> str:
    after = os.getloadavg()
    fmt = ", ".join
    return (
        f"load average (1, 5, 15 min) before {fmt(f'{x:.2f}' for x in before)}, "
        f"after {fmt(f'{x:.2f}' for x in after)} on {os.cpu_count()} CPUs"
    )
