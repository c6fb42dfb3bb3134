"""The collection pass: run a model over each language's texts with hooks at a neuron site and
accumulate per-neuron statistics (:class:`crane.stats.Stats`).

Relevance (METHOD.md): for a sequence x, R_{l,j}(x) = Σ_t a_{l,j,t} · g_{l,j,t}, the site value
times the gradient of the explained quantity f (gold next-token logits, or log-probabilities)
on a model whose backward pass follows the AttnLRP rules (``attnlrp``) or is unchanged
(``gradxact``). One backward pass per batch: the rows of a batch are independent, so the
gradient of the batch's summed f gives every row's own relevance. The product a·g is reduced
over positions inside a tensor hook during the backward pass, so no per-token tensor of all
neurons outlives its layer's backward step.

The corpus of each language is cut into fixed shards of consecutive texts; each shard's
statistics are saved (safetensors + JSON sidecar) as soon as they are complete, so a killed run
resumes with the shards it has and ends with the same numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from crane.data.batching import (
    Batch,
    TokenizedTexts,
    count_batches,
    iter_batches,
    pad_token_id,
    tokenize_texts,
)
from crane.data.corpus import Corpus
from crane.errors import ConfigError, LanguageError
from crane.models.adapters import Adapter, get_adapter
from crane.models.head import final_hidden, gold_logits, output_logits
from crane.models.placement import input_device
from crane.models.sites import check_site, decoder_layers, model_shape, site_hooks
from crane.progress import NullProgress, Progress
from crane.stats import LanguageStats, Stats, merge_all, read_sidecar

RELEVANCE_METHODS: tuple[str, ...] = ("attnlrp", "gradxact")
TARGETS: tuple[str, ...] = ("logit", "logprob")
IGNORE = -100


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
        checkpoint: recompute each decoder layer's forward during the backward pass instead of
            keeping its intermediate tensors (:func:`checkpointed_layers`); the statistics are
            the same (bit for bit on the CPU), so it is not recorded in the shards' meta and a
            run resumes across it.
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
def explained(model: nn.Module, batch: Batch, target: str) -> torch.Tensor:
    """f for one batch (a scalar with a graph): summed gold logits or gold log-probabilities."""
    device = input_device(model)  # not next(parameters()): meta when offloaded (device_map)
    hidden = final_hidden(model, batch.input_ids.to(device), batch.attention_mask.to(device))
    scored = (batch.labels != IGNORE).to(hidden.device)
    h = hidden[scored]
    gold = batch.labels.to(hidden.device)[scored]
    if target == "logit":
        return gold_logits(model, h, gold).sum()
    total = h.new_zeros(())
    for lo in range(0, h.shape[0], 512):  # bound the [chunk, vocab] logits
        logits = output_logits(model, h[lo : lo + 512]).float()
        logp = logits.gather(-1, gold[lo : lo + 512, None].to(logits.device))[:, 0]
        total = total + (logp - torch.logsumexp(logits, dim=-1)).sum().to(total.dtype)
    return total


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


def batch_relevance(
    model: nn.Module, adapter: Adapter, batch: Batch, *, site: str, target: str, n_layers: int
) -> torch.Tensor:
    """Per-row neuron relevance ``[B, n_layers, d_ff]`` (float32) for one batch.

    Call inside the method's rule context (see :func:`collect_relevance`).
    """
    rows: list[torch.Tensor | None] = [None] * n_layers
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
            rows[layer] = torch.einsum("btf,btf->bf", a.float(), g.float())

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
    return torch.stack([r.cpu() for r in rows if r is not None], dim=1)


def accumulate_relevance(stats: LanguageStats, relevance: torch.Tensor, batch: Batch) -> None:
    """Add one batch's per-row relevance ``[B, L, F]`` into the language's accumulators."""
    r = relevance.double()
    total = r.abs().sum(dim=(1, 2)).clamp_min(torch.finfo(torch.float64).tiny)[:, None, None]
    pos = r.clamp_min(0)
    stats.add("rel_sum", r.sum(0))
    stats.add("rel_abs_sum", r.abs().sum(0))
    stats.add("rel_pos_sum", pos.sum(0))
    stats.add("prof_sum", (r / total).sum(0))
    stats.add("prof_abs_sum", (r.abs() / total).sum(0))
    stats.add("prof_pos_sum", (pos / total).sum(0))
    stats.count("n_sequences", r.shape[0])
    stats.count("n_tokens", int((batch.labels != IGNORE).sum()))


# ---- corpus-level pass with shards ---------------------------------------------------------
def texts_within_budget(
    tokenizer: Any, texts: Sequence[str], max_texts: int | None, max_tokens: int | None
) -> list[str]:
    """The leading texts that fit ``max_texts`` and ``max_tokens`` (deterministic); a first
    text longer than ``max_tokens`` alone is cut to a leading part that fits."""
    chosen = list(texts[:max_texts] if max_texts is not None else texts)
    if max_tokens is not None:
        counts = tokenize_texts(tokenizer, chosen, max_length=1 << 30).n_tokens
        kept, used = [], 0
        for text, n in zip(chosen, counts, strict=True):
            if kept and used + n > max_tokens:
                break
            if n > max_tokens:  # e.g. one huge line: keep its head, not the whole text
                head = _leading_part(tokenizer, text, n, max_tokens)
                kept.extend([head] if head else [])
                break
            kept.append(text)
            used += n
        chosen = kept
    return chosen


def _leading_part(tokenizer: Any, text: str, n_tokens: int, limit: int) -> str:
    """A leading part of ``text`` with at most ``limit`` tokens: cut in proportion to the
    token count, then again until it fits (each cut is strictly shorter)."""
    while n_tokens > limit and text:
        text = text[: len(text) * limit // n_tokens]
        n_tokens = tokenize_texts(tokenizer, [text], max_length=1 << 30).n_tokens[0]
    return text


def _digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def shard_meta(
    kind: str, options: Any, model_id: dict[str, Any], language: str, index: int, texts: Sequence[str]
) -> dict[str, Any]:
    """What a shard was computed from; a saved shard is reused only when this matches."""
    return {
        "kind": kind,
        "options": {k: v for k, v in asdict(options).items() if k != "checkpoint"},
        "model": {k: model_id.get(k) for k in ("spec", "kind", "sha256", "revision", "dtype")},
        "language": language,
        "shard": index,
        "n_texts": len(texts),
        "texts_sha256": _digest(texts),
    }


# ---- shared shard loop ---------------------------------------------------------------------
ShardCompute = Callable[[str, "TokenizedTexts", Iterator[Batch]], dict[str, Stats]]
"""``compute(language, tokenized shard, batches) -> {part: Stats}``; part ``""`` is the main
file ``shard-NNNNN.safetensors``, any other part ``p`` goes to ``shard-NNNNN.p.safetensors``."""


def shard_path(out: Path, language: str, index: int, part: str = "") -> Path:
    suffix = f".{part}" if part else ""
    return out / language / f"shard-{index:05d}{suffix}.safetensors"


def run_shards(
    tokenizer: Any,
    corpus: Corpus,
    compute: ShardCompute,
    *,
    shard_meta: Callable[[str, int, list[str]], dict[str, Any]],
    label: str,
    shard_texts: int,
    max_length: int,
    batch_size: int,
    batch_tokens: int,
    parts: Sequence[str] = ("",),
    out_dir: str | Path | None = None,
    max_texts: int | None = None,
    max_tokens: int | None = None,
    progress: Progress | None = None,
    on_shard: Callable[[str, int], None] | None = None,
    part: tuple[int, int] | None = None,
) -> dict[str, list[dict[str, Stats]]]:
    """Cut each language's texts into shards of ``shard_texts`` consecutive texts and compute
    (or reuse) every shard: language → shards in order → {part: Stats}.

    A saved shard is reused only when every one of its ``parts`` has an intact sidecar whose
    meta equals ``shard_meta(language, index, texts)``; otherwise it is recomputed and saved
    (the sidecar is written last, so a killed run leaves no half shard that looks complete).

    ``part=(rank, world_size)`` (data parallelism, :mod:`crane.distributed`): the shards of all
    languages are numbered in order (language by language) and this call handles only those
    whose number is ``rank`` modulo ``world_size``; the others are neither computed nor read,
    and the result holds only this rank's shards (possibly none for a language). The files are
    exactly those one process writes, so the ranks together leave the complete set.
    """
    progress = progress or NullProgress()
    pad_id = pad_token_id(tokenizer)
    out = Path(out_dir) if out_dir is not None else None

    plan: list[tuple[str, int, list[str]]] = []
    for lang in corpus.languages:
        texts = texts_within_budget(tokenizer, corpus[lang], max_texts, max_tokens)
        if not texts:
            raise LanguageError(
                f"Language '{lang}' has no texts within the budget; give more texts or raise "
                "--max-texts/--max-tokens."
            )
        for index, lo in enumerate(range(0, len(texts), shard_texts)):
            plan.append((lang, index, texts[lo : lo + shard_texts]))
    if part is not None:
        rank, world = part
        if not 0 <= rank < world:
            raise ConfigError(f"Shard part {rank} of {world} does not exist; use 0 ≤ rank < world.")
        plan = plan[rank::world]

    todo = []
    for lang, index, chunk in plan:
        meta = shard_meta(lang, index, chunk)
        expected = json.loads(json.dumps(meta, default=str))
        complete = out is not None and all(
            (side := read_sidecar(shard_path(out, lang, index, part))) is not None
            and side.get("meta") == expected
            for part in parts
        )
        if not complete:
            todo.append((lang, index, chunk, meta))
    tokenized = {
        (lang, index): tokenize_texts(tokenizer, chunk, max_length=max_length)
        for lang, index, chunk, _meta in todo
    }
    total_batches = sum(
        count_batches(t, batch_size=batch_size, max_tokens=batch_tokens) for t in tokenized.values()
    )
    progress.start(label, total_batches)

    def batches(tok: TokenizedTexts) -> Iterator[Batch]:
        for batch in iter_batches(
            tok, batch_size=batch_size, pad_id=pad_id, max_tokens=batch_tokens
        ):
            yield batch
            progress.advance(1)

    fresh: dict[tuple[str, int], dict[str, Stats]] = {}
    for lang, index, _chunk, meta in todo:
        result = compute(lang, tokenized[(lang, index)], batches(tokenized[(lang, index)]))
        for part in parts:
            result[part].meta = meta
        if out is not None:
            for part in sorted(parts, key=lambda p: p == ""):  # the main part last
                result[part].save(shard_path(out, lang, index, part))
        fresh[(lang, index)] = result
        if on_shard is not None:
            on_shard(lang, index)
    results: dict[str, list[dict[str, Stats]]] = {lang: [] for lang in corpus.languages}
    for lang, index, _chunk in plan:
        shard = fresh.get((lang, index))
        if shard is None:
            assert out is not None
            shard = {part: Stats.load(shard_path(out, lang, index, part)) for part in parts}
        results[lang].append(shard)
    return results


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
        max_texts, max_tokens: per-language budget (leading texts that fit).
        on_shard: called with (language, shard index) after each newly computed shard.
        part: ``(rank, world_size)``: only this data-parallel rank's shards (see
            :func:`run_shards`); the result sums those alone, and lacks languages with none.
    """
    options = (options or RelevanceOptions()).validate()
    adapter = adapter or get_adapter(model)
    shape = model_shape(model, adapter)
    model_id = model_id or {}

    def compute(lang: str, tok: TokenizedTexts, batches: Iterator[Batch]) -> dict[str, Stats]:
        stats = LanguageStats()
        stats.count("n_texts", sum(1 for n in tok.n_predicted() if n > 0))
        for batch in batches:
            rel = batch_relevance(
                model,
                adapter,
                batch,
                site=options.site,
                target=options.target,
                n_layers=shape.n_layers,
            )
            accumulate_relevance(stats, rel, batch)
        return {"": Stats({lang: stats})}

    recompute: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if options.checkpoint:
        recompute = checkpointed_layers(model, adapter)
    with _relevance_context(model, adapter, options.method), recompute:
        results = run_shards(
            tokenizer,
            corpus,
            compute,
            shard_meta=lambda lang, index, chunk: shard_meta(
                "relevance", options, model_id, lang, index, chunk
            ),
            label=f"relevance ({options.method}, {options.site})",
            shard_texts=options.shard_texts,
            max_length=options.max_length,
            batch_size=options.batch_size,
            batch_tokens=options.batch_tokens,
            out_dir=out_dir,
            max_texts=max_texts,
            max_tokens=max_tokens,
            progress=progress,
            on_shard=on_shard,
            part=part,
        )
    parts = {lang: [shard[""] for shard in shards] for lang, shards in results.items() if shards}
    languages = {lang: merge_all(shards)[lang] for lang, shards in parts.items()}
    meta = {
        "kind": "relevance",
        "options": asdict(options),
        "model": model_id,
        "n_layers": shape.n_layers,
        "d_ff": shape.d_ff,
        "corpus": corpus.provenance,
        "budget": {"max_texts": max_texts, "max_tokens": max_tokens},
        "shards": {lang: len(shards) for lang, shards in parts.items()},
    }
    if part is not None:
        meta["part"] = list(part)
    return Stats(languages, meta)
