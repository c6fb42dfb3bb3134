"""Neuron sites: hooks that read or replace the MLP intermediate vector of every layer.

Two sites (docs/method.md):

- ``down_in``: the input of the MLP down projection, ``act(gate(x)) * up(x)`` for gated MLPs.
  Zeroing coordinate j removes exactly neuron j's write into the residual stream.
- ``act``: the activation module's output, ``act(gate(x))`` (or ``act(fc1(x))``).

Site tensors have shape ``[batch, seq, d_ff]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from crane.errors import ConfigError, UnsupportedModelError
from crane.models.adapters import Adapter, resolve, supported_families

SITES: tuple[str, ...] = ("down_in", "act")

SiteFn = Callable[[int, torch.Tensor], "torch.Tensor | None"]
"""``fn(layer_index, site_tensor) -> replacement or None``; ``site_tensor`` is ``[B, T, d_ff]``."""


@dataclass(frozen=True)
class ModelShape:
    """What a neuron set must fit: the family, layer count and MLP width."""

    family: str
    model_type: str
    n_layers: int
    d_ff: int

    @property
    def n_neurons(self) -> int:
        return self.n_layers * self.d_ff


def check_site(site: str) -> str:
    """Return ``site`` if it is a known neuron site, else raise :class:`ConfigError`."""
    if site not in SITES:
        raise ConfigError(f"Unknown neuron site '{site}'; use one of: {', '.join(SITES)}.")
    return site


def _mismatch(adapter: Adapter, what: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"The '{adapter.family}' adapter does not match this model ({what}); supported families: "
        f"{', '.join(supported_families())}; register a corrected adapter with "
        "crane.models.register_adapter(..., overwrite=True)."
    )


def decoder_layers(model: nn.Module, adapter: Adapter) -> nn.ModuleList:
    """The model's list of decoder layers, found through the adapter's candidate paths."""
    for path in adapter.layers:
        layers = resolve(model, path)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return layers
    raise _mismatch(adapter, f"no decoder-layer list at {' or '.join(adapter.layers)}")


def _mlp_part(layer: nn.Module, adapter: Adapter, part: str) -> nn.Module:
    path = f"{adapter.mlp}.{part}" if adapter.mlp else part
    module = resolve(layer, path)
    if module is None:
        raise _mismatch(adapter, f"a decoder layer has no module '{path}'")
    return module


def down_proj(layer: nn.Module, adapter: Adapter) -> nn.Module:
    """The MLP down projection of one decoder layer."""
    return _mlp_part(layer, adapter, adapter.down_proj)


def site_module(layer: nn.Module, adapter: Adapter, site: str) -> nn.Module:
    """The module whose input (``down_in``) or output (``act``) is the site."""
    check_site(site)
    part = adapter.down_proj if site == "down_in" else adapter.act
    return _mlp_part(layer, adapter, part)


def down_proj_weight(layer: nn.Module, adapter: Adapter) -> torch.Tensor:
    """The down projection's weight as ``[d_model, d_ff]`` (a view; Conv1D is transposed)."""
    module = down_proj(layer, adapter)
    weight = module.weight
    if isinstance(module, nn.Linear):
        return weight
    return weight.t()  # transformers' Conv1D stores [in_features, out_features]


def _in_features(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.in_features
    nx = getattr(module, "nx", None)  # transformers' Conv1D
    if isinstance(nx, int):
        return nx
    weight = getattr(module, "weight", None)
    return int(weight.shape[-1]) if isinstance(weight, torch.Tensor) and weight.dim() == 2 else None


def model_shape(model: nn.Module, adapter: Adapter) -> ModelShape:
    """Family, layer count and MLP width (config first, else the down projection's input)."""
    layers = decoder_layers(model, adapter)
    config = getattr(model, "config", None)
    text_config = getattr(config, "text_config", None) or config
    d_ff = None
    for key in adapter.d_ff_keys:
        value = getattr(text_config, key, None)
        if isinstance(value, int) and value > 0:
            d_ff = value
            break
    if d_ff is None:
        d_ff = _in_features(down_proj(layers[0], adapter))
    if d_ff is None:
        raise _mismatch(adapter, "the MLP width cannot be read from the config or the down projection")
    model_type = str(getattr(config, "model_type", adapter.family))
    return ModelShape(adapter.family, model_type, len(layers), int(d_ff))


@contextmanager
def site_hooks(
    model: nn.Module,
    adapter: Adapter,
    site: str,
    fn: SiteFn,
    layers: Iterable[int] | None = None,
) -> Iterator[None]:
    """Call ``fn(layer, x)`` on the site tensor of each layer during forward passes.

    If ``fn`` returns a tensor it replaces the site value downstream (masking); ``None`` leaves
    it untouched (reading). Hooks are removed on exit, also when the body raises.
    """
    check_site(site)
    all_layers = decoder_layers(model, adapter)
    chosen = range(len(all_layers)) if layers is None else sorted(set(layers))
    handles: list[Any] = []
    try:
        for index in chosen:
            module = site_module(all_layers[index], adapter, site)
            if site == "down_in":
                handles.append(module.register_forward_pre_hook(_pre_hook(index, fn)))
            else:
                handles.append(module.register_forward_hook(_post_hook(index, fn)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _pre_hook(index: int, fn: SiteFn) -> Callable[..., Any]:
    def hook(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        replaced = fn(index, args[0])
        return None if replaced is None else (replaced, *args[1:])

    return hook


def _post_hook(index: int, fn: SiteFn) -> Callable[..., Any]:
    def hook(_module: nn.Module, _args: tuple[Any, ...], output: torch.Tensor) -> Any:
        return fn(index, output)

    return hook


def _probe_inputs(model: nn.Module) -> dict[str, torch.Tensor]:
    config = getattr(model, "config", None)
    text_config = getattr(config, "text_config", None) or config
    vocab = int(getattr(text_config, "vocab_size", 8) or 8)
    from crane.models.placement import input_device  # late: keeps this module's imports small

    device = input_device(model)
    ids = torch.arange(1, 6, device=device).remainder(max(vocab - 1, 1)).add(1).unsqueeze(0)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def validate_sites(model: nn.Module, adapter: Adapter, sites: Iterable[str] = SITES) -> ModelShape:
    """Run one short forward and check every site fires once per layer with width ``d_ff``,
    and that the model's body + output head reproduce its logits (see :mod:`crane.models.head`).

    Raises :class:`UnsupportedModelError` naming what did not match.
    """
    shape = model_shape(model, adapter)
    inputs = _probe_inputs(model)
    for site in sites:
        seen: dict[int, list[tuple[int, ...]]] = {i: [] for i in range(shape.n_layers)}

        def record(index: int, x: torch.Tensor, seen: dict[int, list[tuple[int, ...]]] = seen) -> None:
            seen[index].append(tuple(x.shape))

        with site_hooks(model, adapter, site, record), torch.no_grad():
            model(**inputs, use_cache=False)
        for index, shapes in seen.items():
            if len(shapes) != 1:
                raise _mismatch(
                    adapter, f"site '{site}' fired {len(shapes)} times in layer {index}, expected once"
                )
            if shapes[0][-1] != shape.d_ff or len(shapes[0]) != 3:
                raise _mismatch(
                    adapter,
                    f"site '{site}' in layer {index} has shape {list(shapes[0])}, "
                    f"expected [batch, seq, {shape.d_ff}]",
                )
    from crane.models.head import check_head  # late import: head imports nothing from here

    check_head(model, inputs)
    return shape
