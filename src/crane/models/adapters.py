"""Declarative architecture adapters: where a model keeps its decoder layers and MLP parts.

An adapter names, for one family of Hugging Face causal LMs (keyed by ``config.model_type``),

- the decoder-layer list (dotted paths tried from the model root, e.g. ``model.layers``),
- the MLP inside a layer (``mlp``),
- the MLP's down projection (its *input* is the ``down_in`` neuron site), and
- the MLP's activation module (its *output* is the ``act`` neuron site).

Register your own with :func:`register_adapter`; the load-time check in
:func:`crane.models.sites.validate_sites` confirms the mapping on a real forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from crane.errors import UnsupportedModelError


@dataclass(frozen=True)
class Adapter:
    """Where the neuron sites of one architecture family live.

    Attributes:
        family: short family name shown to users (``"llama"``).
        model_types: the ``config.model_type`` values this adapter serves.
        layers: dotted paths to the ``nn.ModuleList`` of decoder layers, tried in order from
            the model root (so the same adapter serves ``XForCausalLM`` and bare ``XModel``).
        mlp: attribute path of the MLP inside one decoder layer.
        down_proj: attribute path of the down projection inside the MLP.
        act: attribute path of the activation module inside the MLP.
        gated: whether the MLP is gated (``down_in = act(gate(x)) * up(x)``); for a plain MLP
            the ``act`` and ``down_in`` sites carry the same values.
        d_ff_keys: config attributes holding the MLP width, tried in order; when none is set
            the width is read from the down projection's input size.
        attn: attribute path of the self-attention module inside one decoder layer (used by
            the AttnLRP rules in :mod:`crane.lrp`).
        q_proj, k_proj, v_proj: attribute paths of the separate query/key/value projections
            inside the attention module (ignored when ``qkv_proj`` is set).
        qkv_proj: attribute path of a fused query/key/value projection inside the attention
            module, or ``None`` when the projections are separate.
        qkv_layout: how the fused projection's output columns are ordered: ``"blocks"`` is
            ``[q (heads*head_dim) | k (kv_heads*head_dim) | v (kv_heads*head_dim)]`` (GPT-2,
            Phi-3); ``"heads"`` is per head ``[q | k | v]`` of ``head_dim`` each (BLOOM,
            GPT-NeoX).
    """

    family: str
    model_types: tuple[str, ...]
    layers: tuple[str, ...] = ("model.layers", "layers")
    mlp: str = "mlp"
    down_proj: str = "down_proj"
    act: str = "act_fn"
    gated: bool = True
    d_ff_keys: tuple[str, ...] = ("intermediate_size",)
    notes: str = field(default="", compare=False)
    attn: str = "self_attn"
    q_proj: str = "q_proj"
    k_proj: str = "k_proj"
    v_proj: str = "v_proj"
    qkv_proj: str | None = None
    qkv_layout: str = "blocks"


_REGISTRY: dict[str, Adapter] = {}


def register_adapter(adapter: Adapter, *, overwrite: bool = False) -> Adapter:
    """Register ``adapter`` for each of its ``model_types``; returns it (usable as a one-liner).

    A built-in or earlier registration is only replaced with ``overwrite=True``.
    """
    for model_type in adapter.model_types:
        if model_type in _REGISTRY and not overwrite and _REGISTRY[model_type] != adapter:
            raise UnsupportedModelError(
                f"An adapter for model type '{model_type}' is already registered "
                f"(family '{_REGISTRY[model_type].family}'); pass overwrite=True to replace it."
            )
    for model_type in adapter.model_types:
        _REGISTRY[model_type] = adapter
    return adapter


def supported_families() -> list[str]:
    """Family names of every registered adapter, sorted."""
    return sorted({a.family for a in _REGISTRY.values()})


def supported_model_types() -> list[str]:
    """Every ``config.model_type`` with a registered adapter, sorted."""
    return sorted(_REGISTRY)


def _model_type(model_or_config: Any) -> str:
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", None)
    if not model_type:
        raise UnsupportedModelError(
            "The model has no config.model_type, so no adapter can be chosen; "
            "load it through transformers or register an adapter for it."
        )
    return str(model_type)


def get_adapter(model_or_config: Any) -> Adapter:
    """The adapter for a model (or its config), by ``config.model_type``."""
    model_type = _model_type(model_or_config)
    if model_type in _REGISTRY:
        return _REGISTRY[model_type]
    raise UnsupportedModelError(
        f"Model type '{model_type}' is not supported; supported families: "
        f"{', '.join(supported_families())}. Register one with "
        "crane.models.register_adapter(Adapter(family=..., model_types=('"
        f"{model_type}',), layers=..., mlp=..., down_proj=..., act=...))."
    )


def resolve(root: nn.Module, path: str) -> nn.Module | None:
    """The submodule at dotted ``path`` below ``root``, or ``None`` when a part is missing."""
    module: Any = root
    for part in path.split("."):
        if not part:
            continue
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and part.isdigit():
            index = int(part)
            if index >= len(module):
                return None
            module = module[index]
            continue
        module = getattr(module, part, None)
        if module is None:
            return None
    return module if isinstance(module, nn.Module) else None


_LLAMA_LIKE = dict(layers=("model.layers", "layers"), mlp="mlp", down_proj="down_proj", act="act_fn")

BUILTIN_ADAPTERS: tuple[Adapter, ...] = (
    Adapter("llama", ("llama",), **_LLAMA_LIKE),
    Adapter("mistral", ("mistral",), **_LLAMA_LIKE),
    Adapter("qwen2", ("qwen2",), **_LLAMA_LIKE),
    Adapter("qwen3", ("qwen3",), **_LLAMA_LIKE),
    Adapter("gemma", ("gemma",), **_LLAMA_LIKE),
    Adapter("gemma2", ("gemma2",), **_LLAMA_LIKE),
    Adapter(
        "gemma3",
        ("gemma3_text", "gemma3"),
        layers=("model.layers", "layers", "model.language_model.layers", "language_model.layers"),
        mlp="mlp",
        down_proj="down_proj",
        act="act_fn",
    ),
    Adapter("olmo2", ("olmo", "olmo2"), **_LLAMA_LIKE),
    Adapter("granite", ("granite",), **_LLAMA_LIKE),
    Adapter(
        "phi3",
        ("phi3",),
        layers=("model.layers", "layers"),
        act="activation_fn",
        qkv_proj="qkv_proj",
    ),
    Adapter(
        "gpt2",
        ("gpt2",),
        layers=("transformer.h", "h"),
        down_proj="c_proj",
        act="act",
        gated=False,
        d_ff_keys=("n_inner",),
        attn="attn",
        qkv_proj="c_attn",
    ),
    Adapter(
        "bloom",
        ("bloom",),
        layers=("transformer.h", "h"),
        down_proj="dense_4h_to_h",
        act="gelu_impl",
        gated=False,
        d_ff_keys=(),
        attn="self_attention",
        qkv_proj="query_key_value",
        qkv_layout="heads",
    ),
    Adapter(
        "gpt_neox",
        ("gpt_neox",),
        layers=("gpt_neox.layers", "layers"),
        down_proj="dense_4h_to_h",
        act="act",
        gated=False,
        attn="attention",
        qkv_proj="query_key_value",
        qkv_layout="heads",
    ),
)

for _adapter in BUILTIN_ADAPTERS:
    register_adapter(_adapter)
