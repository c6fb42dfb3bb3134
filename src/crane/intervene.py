"""Masking neurons: context managers that change a site's values and always restore the model.

Modes (docs/method.md "Interventions"), applied at every position of every listed layer:

- ``zero``: the neuron's value becomes 0 (removes its write into the residual stream at
  ``down_in``);
- ``mean``: the neuron's value becomes its mean over a reference corpus (``means[layer, j]``);
- ``scale``: the neuron's value is multiplied by ``alpha``.

The hook computes ``x * keep + fill`` with per-layer vectors prepared once, so it is
out-of-place (safe under autograd) and costs one fused multiply-add per layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from crane.errors import ConfigError, NeuronSetError
from crane.models.adapters import Adapter, get_adapter
from crane.models.placement import input_device, module_device
from crane.models.sites import check_site, decoder_layers, model_shape, site_hooks, site_module
from crane.neurons import LayerIndices, NeuronSet

MODES: tuple[str, ...] = ("zero", "mean", "scale")


def _layer_indices(
    neurons: NeuronSet | Mapping[int, Iterable[int]], languages: Iterable[str] | None
) -> LayerIndices:
    if isinstance(neurons, NeuronSet):
        return neurons.union(languages)
    if languages is not None:
        raise ConfigError("`languages` only applies when masking a NeuronSet.")
    return {int(layer): sorted({int(i) for i in ix}) for layer, ix in neurons.items() if ix}


@contextmanager
def mask_neurons(
    model: nn.Module,
    neurons: NeuronSet | Mapping[int, Iterable[int]],
    *,
    languages: Iterable[str] | None = None,
    site: str | None = None,
    mode: str = "zero",
    alpha: float = 0.0,
    means: torch.Tensor | None = None,
    adapter: Adapter | None = None,
) -> Iterator[None]:
    """Mask ``neurons`` while the ``with`` block runs; the hooks are removed on exit or error.

    Args:
        model: a Hugging Face causal LM with a registered adapter.
        neurons: a :class:`NeuronSet` (the union of ``languages`` is masked, default all) or a
            mapping layer → indices.
        site: ``down_in`` or ``act``; defaults to the NeuronSet's site, else ``down_in``.
        mode: ``zero`` | ``mean`` | ``scale``.
        alpha: the factor for ``scale``.
        means: ``[n_layers, d_ff]`` replacement values for ``mean``.
    """
    if mode not in MODES:
        raise ConfigError(f"Unknown masking mode '{mode}'; use one of: {', '.join(MODES)}.")
    adapter = adapter or get_adapter(model)
    shape = model_shape(model, adapter)
    if isinstance(neurons, NeuronSet):
        neurons.check_fits(shape)
        site = site or neurons.site
    site = check_site(site or "down_in")
    layer_indices = _layer_indices(neurons, languages)
    for layer, indices in layer_indices.items():
        if layer >= shape.n_layers or (indices and indices[-1] >= shape.d_ff):
            raise NeuronSetError(
                f"Neurons to mask (layer {layer}, max index {indices[-1]}) do not fit a model with "
                f"{shape.n_layers} layers × {shape.d_ff} neurons; use indices made for this model."
            )
    if mode == "mean":
        if means is None or tuple(means.shape) != (shape.n_layers, shape.d_ff):
            raise ConfigError(
                f"Mean masking needs `means` of shape [{shape.n_layers}, {shape.d_ff}]; "
                "compute them with crane.intervene.site_means."
            )

    layers = decoder_layers(model, adapter)
    keep: dict[int, torch.Tensor] = {}
    fill: dict[int, torch.Tensor] = {}
    for layer, indices in layer_indices.items():
        module = site_module(layers[layer], adapter, "down_in")
        param = next(module.parameters())  # its dtype; its device may be meta (offloaded)
        device = module_device(module)  # where the layer runs (accelerate's execution device)
        index = torch.tensor(indices, dtype=torch.long, device=device)
        k = torch.ones(shape.d_ff, dtype=param.dtype, device=device)
        k[index] = alpha if mode == "scale" else 0.0
        keep[layer] = k
        if mode == "mean":
            assert means is not None
            f = torch.zeros(shape.d_ff, dtype=param.dtype, device=device)
            f[index] = means[layer].to(device=device, dtype=param.dtype)[index]
            fill[layer] = f

    def apply(layer: int, x: torch.Tensor) -> torch.Tensor:
        k = keep[layer]
        if k.dtype != x.dtype or k.device != x.device:
            k = k.to(device=x.device, dtype=x.dtype)
        if layer in fill:
            return torch.addcmul(fill[layer].to(device=x.device, dtype=x.dtype), x, k)
        return x * k

    with site_hooks(model, adapter, site, apply, layers=keep.keys()):
        yield


@torch.no_grad()
def site_means(
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    *,
    site: str = "down_in",
    adapter: Adapter | None = None,
) -> torch.Tensor:
    """Mean of every neuron's value over the real (unpadded) tokens of ``batches``.

    Each batch needs ``input_ids`` and ``attention_mask``. Returns ``[n_layers, d_ff]`` float32.
    """
    adapter = adapter or get_adapter(model)
    shape = model_shape(model, adapter)
    sums = torch.zeros(shape.n_layers, shape.d_ff, dtype=torch.float64)
    count = 0
    weights: dict[str, torch.Tensor] = {}

    def accumulate(layer: int, x: torch.Tensor) -> None:
        w = weights["mask"].to(device=x.device, dtype=x.dtype)
        sums[layer] += torch.einsum("bt,btf->f", w, x).double().cpu()

    with site_hooks(model, adapter, site, accumulate):
        for batch in batches:
            weights["mask"] = batch["attention_mask"]
            count += int(batch["attention_mask"].sum())
            device = input_device(model)
            model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                use_cache=False,
            )
    if count == 0:
        raise ConfigError("Mean masking needs at least one token of reference text.")
    return (sums / count).float()
