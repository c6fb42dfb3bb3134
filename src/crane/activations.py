"""The activation pass: one forward-only pass (no gradients, no output head) that fills every
statistic the activation-based baselines need (LAPE, Kojima, PLND, mean |a|).

Tokens: every *real* (unpadded) token of a window counts, BOS and re-read context included, as
LAPE counts every token of its chunks. (With windows shorter than a text, re-read context
tokens are counted once per window that holds them; with the default ``max_length`` and
sentence-level corpora there is one window per text.)

Per language (float64 ``[n_layers, d_ff]`` sums in :class:`crane.stats.LanguageStats`):

- ``act_pos_count``: number of tokens with ``act > 0`` at the ``act`` site (LAPE's over_zero);
- ``site_sum``, ``site_sq_sum``, ``site_abs_sum``: Σ a, Σ a², Σ |a| at the chosen site;
- counts ``n_tokens`` (real tokens), ``n_texts``, ``n_sequences`` (windows).

Per text (the ``texts`` part of each shard, ``shard-NNNNN.texts.safetensors``, tensors
``[n_texts_in_shard, n_layers, d_ff]`` in ``text_dtype``):

- ``text_mean``: mean over the text's tokens of the site value (Kojima's response);
- ``text_plnd``: mean over the text's tokens of |a_j| · ‖W_down[:, j]‖ (PLND importance).

Memory: each hook reduces its layer's ``[B, T, d_ff]`` tensor over tokens at once, so a batch
keeps only ``[B, n_layers, d_ff]`` float64 reductions. A shard keeps float64 per-text sums
(2 · shard_texts · n_layers · d_ff values: 64 texts × 32 × 11008 ≈ 360 MB for a 7B Llama,
bounded by ``shard_texts``). On disk the per-text tensors grow linearly with the number of
texts (≈1.4 MB per text for that model in float32, half in float16), and
:func:`collect_activations` returns them all in memory (as float32) for the Kojima and PLND
scorers. Both sites are hooked in the same forward pass; the output head is never run.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from crane.data.batching import Batch, TokenizedTexts
from crane.data.corpus import Corpus
from crane.errors import ConfigError
from crane.models.adapters import Adapter, get_adapter
from crane.models.head import final_hidden
from crane.models.placement import input_device, materialized
from crane.models.sites import (
    check_site,
    decoder_layers,
    down_proj,
    down_proj_weight,
    model_shape,
    site_hooks,
)
from crane.progress import Progress
from crane.shards import ShardRun, collection_meta, merged_main, run_collection
from crane.stats import LanguageStats, Stats

TEXT_DTYPES = {"float32": torch.float32, "float16": torch.float16}
TEXT_KEYS = ("text_mean", "text_plnd")


@dataclass(frozen=True)
class ActivationOptions:
    """Everything that determines the activation statistics (recorded in every shard).

    Attributes:
        site: site of the sums and per-text tensors (``down_in`` | ``act``); LAPE's counts are
            always taken at ``act``.
        max_length, batch_size, batch_tokens, shard_texts: as in :class:`RelevanceOptions`.
        text_dtype: storage of the per-text tensors (``float32`` | ``float16``).
    """

    site: str = "down_in"
    max_length: int = 128
    batch_size: int = 16
    batch_tokens: int = 1024
    shard_texts: int = 64
    text_dtype: str = "float32"

    def validate(self) -> ActivationOptions:
        check_site(self.site)
        if self.text_dtype not in TEXT_DTYPES:
            raise ConfigError(
                f"Unknown per-text dtype '{self.text_dtype}'; use one of: {', '.join(TEXT_DTYPES)}."
            )
        for name in ("max_length", "batch_size", "batch_tokens", "shard_texts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive number, got {getattr(self, name)}.")
        return self


@dataclass
class ActivationStats(Stats):
    """:class:`Stats` of the activation pass plus the per-text tensors:
    ``texts[lang][name]`` is ``[n_texts, n_layers, d_ff]`` float32 (``name`` in ``TEXT_KEYS``)."""

    texts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


def down_norms(model: nn.Module, adapter: Adapter) -> torch.Tensor:
    """‖W_down[:, j]‖₂ per layer and neuron: ``[n_layers, d_ff]`` float32 (CPU)."""
    layers = decoder_layers(model, adapter)
    norms = []
    for layer in layers:
        with materialized(down_proj(layer, adapter)):  # offloaded weights (device_map) load here
            norms.append(down_proj_weight(layer, adapter).detach().float().norm(dim=0).cpu())
    return torch.stack(norms)


REDUCTIONS = ("pos", "sum", "sq", "abs")


def batch_activations(
    model: nn.Module, adapter: Adapter, batch: Batch, *, site: str, n_layers: int
) -> dict[str, torch.Tensor]:
    """One forward pass (no gradients, no output head); per-row reductions over real tokens,
    each ``[B, n_layers, d_ff]`` float64 on the CPU: ``pos`` = #(act > 0) at the ``act`` site;
    ``sum``, ``sq``, ``abs`` = Σ a, Σ a², Σ |a| at ``site``.

    Reductions happen inside the hooks (on the model's device), so no per-token tensor of all
    layers is kept.
    """
    device = input_device(model)
    mask = batch.attention_mask.to(device)
    out: dict[str, list[torch.Tensor | None]] = {k: [None] * n_layers for k in REDUCTIONS}

    def reduce_site(layer: int, a: torch.Tensor) -> None:
        v = a.double() * mask.to(a.device)[..., None]
        out["sum"][layer] = v.sum(1).cpu()
        out["sq"][layer] = (v * v).sum(1).cpu()
        out["abs"][layer] = v.abs().sum(1).cpu()

    def read_act(layer: int, a: torch.Tensor) -> None:
        real = mask.to(a.device)[..., None].bool()
        out["pos"][layer] = ((a > 0) & real).sum(1).double().cpu()
        if site == "act":
            reduce_site(layer, a)

    def read_site(layer: int, a: torch.Tensor) -> None:
        reduce_site(layer, a)

    with torch.no_grad(), site_hooks(model, adapter, "act", read_act):
        hooks = (
            site_hooks(model, adapter, "down_in", read_site)
            if site == "down_in"
            else contextlib.nullcontext()
        )
        with hooks:
            final_hidden(model, batch.input_ids.to(device), mask)
    missing = sorted({i for k in REDUCTIONS for i in range(n_layers) if out[k][i] is None})
    if missing:
        raise ConfigError(f"Layers {missing} did not fire their neuron site; check the adapter.")
    return {k: torch.stack(v, dim=1) for k, v in out.items()}  # type: ignore[misc]


def collect_activations(
    model: nn.Module,
    tokenizer: Any,
    corpus: Corpus,
    *,
    options: ActivationOptions | None = None,
    out_dir: str | Path | None = None,
    adapter: Adapter | None = None,
    model_id: dict[str, Any] | None = None,
    max_texts: int | None = None,
    max_tokens: int | None = None,
    progress: Progress | None = None,
    on_shard: Callable[[str, int], None] | None = None,
    part: tuple[int, int] | None = None,
) -> ActivationStats:
    """Activation statistics of every language of ``corpus`` (resumable through ``out_dir``,
    with the same shard rules as :func:`crane.collect.collect_relevance`, ``part`` included)."""
    options = (options or ActivationOptions()).validate()
    adapter = adapter or get_adapter(model)
    shape = model_shape(model, adapter)
    run = ShardRun(out_dir, model_id or {}, max_texts, max_tokens, progress, on_shard, part)
    norms = down_norms(model, adapter)
    store = TEXT_DTYPES[options.text_dtype]

    def compute(lang: str, tok: TokenizedTexts, batches: Iterator[Batch]) -> dict[str, Stats]:
        stats = LanguageStats()
        n = tok.n_texts
        sums = torch.zeros(n, shape.n_layers, shape.d_ff, dtype=torch.float64)
        abs_sums = torch.zeros_like(sums)
        tokens = torch.zeros(n, dtype=torch.float64)
        for batch in batches:
            r = batch_activations(model, adapter, batch, site=options.site, n_layers=shape.n_layers)
            real = batch.attention_mask.sum(1).double()
            stats.add("act_pos_count", r["pos"].sum(0))
            stats.add("site_sum", r["sum"].sum(0))
            stats.add("site_sq_sum", r["sq"].sum(0))
            stats.add("site_abs_sum", r["abs"].sum(0))
            stats.count("n_tokens", int(real.sum()))
            stats.count("n_sequences", batch.input_ids.shape[0])
            idx = batch.text_index
            sums.index_add_(0, idx, r["sum"])
            abs_sums.index_add_(0, idx, r["abs"])
            tokens.index_add_(0, idx, real)
        has = tokens > 0
        stats.count("n_texts", int(has.sum()))
        denom = tokens[has].clamp_min(1)[:, None, None]
        per_text = LanguageStats(
            {
                "text_mean": (sums[has] / denom).to(store),
                "text_plnd": (abs_sums[has] / denom * norms.double()).to(store),
            }
        )
        return {"": Stats({lang: stats}), "texts": Stats({lang: per_text})}

    results = run_collection(
        "activations",
        tokenizer,
        corpus,
        compute,
        options,
        run,
        label=f"activations ({options.site})",
        suffixes=("", "texts"),
    )
    texts = {
        lang: {
            key: torch.cat([s["texts"][lang].tensors[key].float() for s in shards])
            for key in TEXT_KEYS
        }
        for lang, shards in results.items()
    }
    meta = collection_meta(
        "activations",
        options,
        shape,
        corpus,
        run,
        results,
        down_norms_sha256=hashlib.sha256(norms.numpy().tobytes()).hexdigest(),
    )
    return ActivationStats(merged_main(results), meta, texts)
