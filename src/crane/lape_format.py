"""LAPE's published neuron-file layout (``*.neuron.pth``): a list over languages of a list over
layers of 1-D LongTensors of neuron indices (``torch.save`` of plain lists and tensors).

Import reads only with ``torch.load(..., weights_only=True)``: files that need any other
unpickling (custom classes, code) are refused with :class:`NeuronSetError`, never executed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from crane.errors import NeuronSetError
from crane.io import atomic_write_bytes
from crane.neurons import NeuronSet

LAPE_LANGUAGES: tuple[str, ...] = ("en", "zh", "fr", "es", "vi", "id", "ja")
"""The language order of LAPE's released files."""


def import_lape(
    path: str | Path,
    languages: Sequence[str] = LAPE_LANGUAGES,
    *,
    d_ff: int | None = None,
    site: str = "act",
) -> NeuronSet:
    """Read a LAPE ``.neuron.pth`` file into a NeuronSet (``languages`` names its entries in
    order; ``d_ff``, if given, bounds the indices). LAPE masks the ``act`` site."""
    path = Path(path)
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NeuronSetError(f"LAPE neuron file {path} does not exist.") from None
    except Exception as exc:  # UnpicklingError, RuntimeError, ... : all refused
        raise NeuronSetError(
            f"LAPE neuron file {path} is not a plain list of index tensors and was refused "
            f"(it would need unsafe unpickling or is corrupt): {type(exc).__name__}."
        ) from None
    if not isinstance(data, (list, tuple)) or not data:
        raise NeuronSetError(f"LAPE neuron file {path} must hold a non-empty list over languages.")
    if len(data) != len(languages):
        raise NeuronSetError(
            f"LAPE neuron file {path} has {len(data)} languages but {len(languages)} names were "
            f"given ({', '.join(languages)}); pass the file's language order."
        )
    n_layers = None
    neurons: dict[str, dict[int, list[int]]] = {}
    for lang, layers in zip(languages, data, strict=True):
        if not isinstance(layers, (list, tuple)):
            raise NeuronSetError(
                f"LAPE neuron file {path}: language '{lang}' is not a list over layers."
            )
        if n_layers is None:
            n_layers = len(layers)
        elif len(layers) != n_layers:
            raise NeuronSetError(
                f"LAPE neuron file {path}: language '{lang}' has {len(layers)} layers, "
                f"others {n_layers}."
            )
        out: dict[int, list[int]] = {}
        for layer, ix in enumerate(layers):
            if isinstance(ix, torch.Tensor) and ix.dtype == torch.bool:
                raise NeuronSetError(
                    f"LAPE neuron file {path}: language '{lang}', layer {layer} is a boolean "
                    "mask, not a list of indices; convert it with mask.nonzero()[:, 0] or load "
                    "masks as a crane set (NeuronSet.load of a .safetensors file)."
                )
            if (
                not isinstance(ix, torch.Tensor)
                or ix.dim() != 1
                or ix.is_floating_point()
                or ix.is_complex()
            ):
                raise NeuronSetError(
                    f"LAPE neuron file {path}: language '{lang}', layer {layer} is not a 1-D "
                    "integer tensor."
                )
            values = ix.tolist()
            bad = [v for v in values if v < 0 or (d_ff is not None and v >= d_ff)]
            if bad:
                raise NeuronSetError(
                    f"LAPE neuron file {path}: language '{lang}', layer {layer} has out-of-range "
                    f"indices {bad[:5]} (MLP width {d_ff})."
                )
            if values:
                out[layer] = sorted(set(values))
        neurons[lang] = out
    meta = {"method": "lape-import", "source": str(path)}
    return NeuronSet(neurons, site, n_layers, d_ff, meta)


def export_lape(
    neurons: NeuronSet,
    path: str | Path,
    languages: Sequence[str] | None = None,
    n_layers: int | None = None,
) -> Path:
    """Write ``neurons`` in LAPE's layout (languages in ``languages`` order, default the set's)."""
    path = Path(path)
    order = list(languages) if languages is not None else neurons.languages
    depth = n_layers if n_layers is not None else neurons.n_layers
    if depth is None:
        raise NeuronSetError("Exporting to LAPE's layout needs the layer count; pass n_layers.")
    data = []
    for lang in order:
        layers = neurons.layers(lang)
        if any(layer >= depth for layer in layers):
            raise NeuronSetError(f"Language '{lang}' has layers beyond {depth}.")
        data.append([torch.tensor(layers.get(i, []), dtype=torch.long) for i in range(depth)])

    buffer = io.BytesIO()
    torch.save(data, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path
