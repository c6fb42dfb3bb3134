"""The collection pass: run a model over each language's texts with hooks at a neuron site and
accumulate per-neuron statistics (:class:`crane.stats.Stats`).

Relevance (docs/method.md): for a sequence x, R_{l,j}(x) = Σ_t a_{l,j,t} · g_{l,j,t}, the site value
times the gradient of the explained quantity f (gold next-token logits, or log-probabilities)
on a model whose backward pass follows the AttnLRP rules (``attnlrp``) or is unchanged
(``gradxact``). One backward pass per batch: the rows of a batch are independent, so the
gradient of the batch's summed f gives every row's own relevance. The product a·g is reduced
over positions inside a tensor hook during the backward pass, so no per-token tensor of all
neurons outlives its layer's backward step.

The corpus of each language is cut into fixed shards of consecutive texts by the shard engine
(:mod:`crane.shards`); each shard's statistics are saved (safetensors + JSON sidecar) as soon as
they are complete, so a killed run resumes with the shards it has and ends with the same numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from crane.data.batching import Batch, TokenizedTexts
from crane.data.corpus import Corpus
from crane.errors import ConfigError
from crane.models.adapters import Adapter, get_adapter
from crane.models.head import final_hidden, gold_logits, output_logits
from crane.models.placement import input_device
from crane.models.sites import check_site, decoder_layers, model_shape, site_hooks
from crane.progress import Progress
from crane.shards import (
    ShardCompute,
    ShardRun,
    collection_meta,
    merged_main,
    run_collection,
    run_shards,
    shard_meta,
    shard_path,
    texts_within_budget,
)
from crane.stats import LanguageStats, Stats

__all__ = [
    "IGNORE",
    "RELEVANCE_METHODS",
    "TARGETS",
    "RelevanceOptions",
    "ShardCompute",
    "Contributions",
    "accumulate_relevance",
    "batch_contributions",
    "batch_relevance",
    "checkpointed_layers",
    "collect_relevance",
    "explained",
    "run_shards",
    "shard_meta",
    "shard_path",
    "texts_within_budget",
]

RELEVANCE_METHODS: tuple[str, ...] = ("attnlrp", "gradxact")
TARGETS: tuple[str, ...] = ("logit", "logprob")
IGNORE = -100
RELEVANCE_KIND = "relevance/2"
"""The relevance shards' format (in their meta): 2 adds exposure, squared sums and bytes
(selection v2), so shards of format 1 are recomputed rather than read without them."""


@dataclass(frozen=True)
class RelevanceOptions:
    """Everything that determines the relevance statistics (recorded in every shard).

    Attributes:
        site: neuron site (``down_in`` | ``act``).
        method: ``attnlrp`` (AttnLRP rules) or ``gradxact`` (plain gradient × activation).
        target: ``logit`` (sum of gold next-token logits) or ``logprob`` (sum of gold
            log-probabilities; needs the full vocabulary, slower).
        max_length: tokens per window (long texts are cut into windows).
        batch_size, batch_tokens: most windows and most padded tokens per batch.
        shard_texts: texts per saved shard (the unit of resumption).
        checkpoint: gradient checkpointing: recompute each decoder layer's forward during the
            backward pass instead of keeping its intermediate tensors
            (:func:`checkpointed_layers`); the statistics are the same (bit for bit on the CPU),
            so it is not recorded in the shards' meta and a run resumes across it.
    """

    site: str = "down_in"
    method: str = "attnlrp"
    target: str = "logit"
    max_length: int = 128
    batch_size: int = 16
    batch_tokens: int = 1024
    shard_texts: int = 64
    checkpoint: bool = False

    def validate(self) -> RelevanceOptions:
        check_site(self.site)
        if self.method not in RELEVANCE_METHODS:
            raise ConfigError(
                f"Unknown relevance method '{self.method}'; use one of: {', '.join(RELEVANCE_METHODS)}."
            )
        if self.target not in TARGETS:
            raise ConfigError(f"Unknown target '{self.target}'; use one of: {', '.join(TARGETS)}.")
        for name in ("max_length", "batch_size", "batch_tokens", "shard_texts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive number, got {getattr(self, name)}.")
        return self


# ---- the explained quantity ---------------------------------------------------------------
LOGPROB_CHUNK = 512
"""Scored positions per chunk of the ``logprob`` target: bounds the ``[chunk, vocab]`` logits
(the only full-vocabulary tensor, alive for one chunk in the forward and one in the backward)."""


class _GoldLogProb(torch.autograd.Function):
    """Σ log p(gold | h) over positions, chunk by chunk, so no ``[positions, vocab]`` tensor
    outlives one chunk. When ``h`` needs a gradient, each chunk's gradient is computed in the
    forward pass while its logits exist (one vocabulary matmul forward, one backward) and kept
    (``[positions, hidden]``); the backward pass only scales it. Recomputing the logits in the
    backward pass instead would cost a third vocabulary matmul per position."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, gold: torch.Tensor, model: nn.Module) -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float64, device=h.device)
        grad = torch.empty_like(h) if ctx.needs_input_grad[0] else None
        for lo in range(0, h.shape[0], LOGPROB_CHUNK):
            hi = lo + LOGPROB_CHUNK
            if grad is None:
                total += _chunk_logprob(model, h[lo:hi], gold[lo:hi])
                continue
            with torch.enable_grad():
                chunk = h[lo:hi].detach().requires_grad_(True)
                logp = _chunk_logprob(model, chunk, gold[lo:hi])
                (grad[lo:hi],) = torch.autograd.grad(logp, [chunk])
            total += logp.detach()
        ctx.save_for_backward(grad if grad is not None else h.new_empty(0))
        return total.to(h.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (grad,) = ctx.saved_tensors
        return grad * grad_output.to(grad.dtype), None, None


def _chunk_logprob(model: nn.Module, h: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Σ log p(gold) of one chunk of positions (float64 sum of float32 log-softmax)."""
    logits = output_logits(model, h).float()
    logp = logits.gather(-1, gold[:, None].to(logits.device))[:, 0]
    return (logp - torch.logsumexp(logits, dim=-1)).double().sum()


def explained(model: nn.Module, batch: Batch, target: str) -> torch.Tensor:
    """f for one batch (a scalar with a graph): summed gold logits or gold log-probabilities."""
    device = input_device(model)  # not next(parameters()): meta when offloaded (device_map)
    hidden = final_hidden(model, batch.input_ids.to(device), batch.attention_mask.to(device))
    scored = (batch.labels != IGNORE).to(hidden.device)
    h = hidden[scored]
    gold = batch.labels.to(hidden.device)[scored]
    if target == "logit":
        return gold_logits(model, h, gold).sum()
    return _GoldLogProb.apply(h, gold, model)


@contextlib.contextmanager
def _input_leaf(model: nn.Module) -> Iterator[None]:
    """Make the input embeddings a leaf that requires grad, so a frozen model builds a graph."""
    embeddings = model.get_input_embeddings()
    handle = embeddings.register_forward_hook(
        lambda _m, _a, out: out.detach().requires_grad_(True)
    )
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def checkpointed_layers(model: nn.Module, adapter: Adapter) -> Iterator[None]:
    """Gradient checkpointing of every decoder layer (``torch.utils.checkpoint``, non-reentrant)
    while the block runs; the layers' ``forward`` is restored on exit.

    Under gradients a layer keeps only its inputs; its forward runs again during the backward
    pass to rebuild what the backward step needs. Hooks inside the layer (neuron sites, AttnLRP
    rules) fire again then, on new tensors that receive no gradient: the relevance is read from
    the tensors of the first forward, so nothing is counted twice, and the rules recompute the
    same values. Offloaded weights (accelerate) are loaded again for the recomputation. Model
    in eval mode, unlike transformers' ``gradient_checkpointing_enable`` (training mode only).
    """
    from torch.utils.checkpoint import checkpoint

    layers = decoder_layers(model, adapter)
    wrapped: list[tuple[nn.Module, Any]] = []
    try:
        for layer in layers:
            inner = layer.forward  # the instance's own (accelerate's wrapper) or the class's

            def forward(*args: Any, _inner: Callable[..., Any] = inner, **kwargs: Any) -> Any:
                if not torch.is_grad_enabled():
                    return _inner(*args, **kwargs)
                return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

            previous = vars(layer).get("forward")
            object.__setattr__(layer, "forward", forward)
            wrapped.append((layer, previous))
        yield
    finally:
        for layer, previous in reversed(wrapped):
            if previous is None:
                vars(layer).pop("forward", None)
            else:
                object.__setattr__(layer, "forward", previous)


def _relevance_context(model: nn.Module, adapter: Adapter, method: str) -> contextlib.AbstractContextManager[Any]:
    if method == "attnlrp":
        from crane.lrp import attnlrp  # deferred: only relevance needs the rules

        return attnlrp(model, adapter)
    return contextlib.nullcontext()


@dataclass
class Contributions:
    """One batch's neuron contributions e = a·g, reduced over positions per row (window).

    Attributes:
        signed: ``[B, n_layers, d_ff]`` Σ_t e (the relevance R of each row).
        exposure: ``[B, n_layers, d_ff]`` Σ_t |e| (taken per position, so it cannot cancel).
    """

    signed: torch.Tensor
    exposure: torch.Tensor


def batch_contributions(
    model: nn.Module, adapter: Adapter, batch: Batch, *, site: str, target: str, n_layers: int
) -> Contributions:
    """Per-row signed relevance and exposure (float32) for one batch, from ONE backward pass.

    Call inside the method's rule context (see :func:`collect_relevance`).
    """
    rows: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layers
    firsts: list[torch.Tensor] = []

    def read(layer: int, a: torch.Tensor) -> None:
        if not a.requires_grad:
            raise ConfigError(
                "The neuron site carries no gradient; relevance needs a model whose site "
                "values depend on the input (check the adapter)."
            )
        if not firsts:
            firsts.append(a)

        def reduce(g: torch.Tensor, a: torch.Tensor = a.detach(), layer: int = layer) -> None:  # noqa: B008 (binds this layer's tensor)
            e = a.float() * g.float()  # [B, T, F], freed when the hook returns
            rows[layer] = (e.sum(1), e.abs().sum(1))

        a.register_hook(reduce)

    with torch.enable_grad(), _input_leaf(model), site_hooks(model, adapter, site, read):
        f = explained(model, batch, target)
        if not firsts:
            raise ConfigError("No neuron site fired during the forward pass; check the adapter.")
        torch.autograd.grad(f, [firsts[0]])
    missing = [i for i, r in enumerate(rows) if r is None]
    if missing:
        raise ConfigError(
            f"Layers {missing} received no gradient; the explained quantity does not depend on "
            "their neurons (check the model and the adapter)."
        )
    done = [r for r in rows if r is not None]
    return Contributions(
        torch.stack([r[0].cpu() for r in done], dim=1),
        torch.stack([r[1].cpu() for r in done], dim=1),
    )


def batch_relevance(
    model: nn.Module, adapter: Adapter, batch: Batch, *, site: str, target: str, n_layers: int
) -> torch.Tensor:
    """Per-row neuron relevance ``[B, n_layers, d_ff]`` (float32) for one batch."""
    return batch_contributions(
        model, adapter, batch, site=site, target=target, n_layers=n_layers
    ).signed


def accumulate_relevance(
    stats: LanguageStats, relevance: torch.Tensor | Contributions, batch: Batch
) -> None:
    """Add one batch's contributions into the language's accumulators.

    v1 (docs/method.md): ``rel_sum``, ``rel_abs_sum``, ``rel_pos_sum`` and the per-row normalised
    profiles ``prof_*``. v2 (with :class:`Contributions`): ``exp_sum`` = Σ_{x,t} |e| (exposure
    U before units), ``rel_sq_sum`` = Σ_x (Σ_t e)² over rows (for the standard error W), and
    ``prof_exp_sum``, the exposure profile normalised per row like ``prof_abs_sum``. Bits per
    byte need the language's byte count, counted by :func:`collect_relevance` (``n_bytes``).
    """
    parts = relevance if isinstance(relevance, Contributions) else None
    r = (parts.signed if parts is not None else relevance).double()
    total = r.abs().sum(dim=(1, 2)).clamp_min(torch.finfo(torch.float64).tiny)[:, None, None]
    pos = r.clamp_min(0)
    stats.add("rel_sum", r.sum(0))
    stats.add("rel_abs_sum", r.abs().sum(0))
    stats.add("rel_pos_sum", pos.sum(0))
    stats.add("prof_sum", (r / total).sum(0))
    stats.add("prof_abs_sum", (r.abs() / total).sum(0))
    stats.add("prof_pos_sum", (pos / total).sum(0))
    if parts is not None:
        u = parts.exposure.double()
        u_total = u.sum(dim=(1, 2)).clamp_min(torch.finfo(torch.float64).tiny)[:, None, None]
        stats.add("exp_sum", u.sum(0))
        stats.add("rel_sq_sum", (r * r).sum(0))
        stats.add("prof_exp_sum", (u / u_total).sum(0))
    stats.count("n_sequences", r.shape[0])
    stats.count("n_tokens", int((batch.labels != IGNORE).sum()))


def collect_relevance(
    model: nn.Module,
    tokenizer: Any,
    corpus: Corpus,
    *,
    options: RelevanceOptions | None = None,
    out_dir: str | Path | None = None,
    adapter: Adapter | None = None,
    model_id: dict[str, Any] | None = None,
    max_texts: int | None = None,
    max_tokens: int | None = None,
    progress: Progress | None = None,
    on_shard: Callable[[str, int], None] | None = None,
    part: tuple[int, int] | None = None,
) -> Stats:
    """Relevance statistics of every language of ``corpus`` (resumable through ``out_dir``).

    Args:
        out_dir: directory for shard files ``<lang>/shard-NNNNN.safetensors``; complete shards
            whose recorded options, model and texts match are reused instead of recomputed.
        model_id: provenance of the model (``LoadedModel.source``), recorded and matched.
        max_texts, max_tokens: per-language token budget (leading texts that fit).
        on_shard: called with (language, shard index) after each newly computed shard.
        part: ``(rank, world_size)``: only this data-parallel rank's shards (see
            :func:`crane.shards.run_shards`); the result sums those alone, and lacks languages
            with none.
    """
    options = (options or RelevanceOptions()).validate()
    adapter = adapter or get_adapter(model)
    shape = model_shape(model, adapter)
    run = ShardRun(out_dir, model_id or {}, max_texts, max_tokens, progress, on_shard, part)

    def compute(lang: str, tok: TokenizedTexts, batches: Iterator[Batch]) -> dict[str, Stats]:
        stats = LanguageStats()
        stats.count("n_texts", sum(1 for n in tok.n_predicted() if n > 0))
        predicted = zip(tok.n_bytes, tok.n_predicted(), strict=True)
        stats.count("n_bytes", sum(b for b, n in predicted if n > 0))
        for batch in batches:
            parts = batch_contributions(
                model,
                adapter,
                batch,
                site=options.site,
                target=options.target,
                n_layers=shape.n_layers,
            )
            accumulate_relevance(stats, parts, batch)
        return {"": Stats({lang: stats})}

    recompute: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if options.checkpoint:
        recompute = checkpointed_layers(model, adapter)
    with _relevance_context(model, adapter, options.method), recompute:
        results = run_collection(
            RELEVANCE_KIND,
            tokenizer,
            corpus,
            compute,
            options,
            run,
            label=f"relevance ({options.method}, {options.site})",
        )
    meta = collection_meta(RELEVANCE_KIND, options, shape, corpus, run, results)
    return Stats(merged_main(results), meta)
