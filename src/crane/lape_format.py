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
    order; ``d_ff``, if given, bounds the indices). LAPE masks the ``act`` site.

    Each layer is a 1-D integer tensor of neuron indices (LAPE's layout) or a 1-D boolean
    mask over the layer's neurons (its True positions are the neurons); a language may also
    be one boolean ``[n_layers, d_ff]`` tensor, and the whole file one boolean
    ``[languages, n_layers, d_ff]`` tensor. Masks fix the MLP width (``d_ff`` must agree).
    ``uint8`` tensors are refused: they may be old-style masks or indices.
    """
    path = Path(path)
    names = _language_names(languages, path)
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NeuronSetError(f"LAPE neuron file {path} does not exist.") from None
    except IsADirectoryError:
        raise NeuronSetError(f"LAPE neuron file {path} is a directory; give the .pth file.") from None
    except Exception as exc:  # UnpicklingError, RuntimeError, ... : all refused
        raise NeuronSetError(
            f"LAPE neuron file {path} is not a plain list of index tensors and was refused "
            f"(it would need unsafe unpickling or is corrupt): {type(exc).__name__}."
        ) from None
    if isinstance(data, torch.Tensor) and data.dtype == torch.bool and data.dim() == 3:
        data = list(data)  # one [languages, n_layers, d_ff] mask
    if not isinstance(data, (list, tuple)) or not data:
        raise NeuronSetError(f"LAPE neuron file {path} must hold a non-empty list over languages.")
    if len(data) != len(names):
        raise NeuronSetError(
            f"LAPE neuron file {path} has {len(data)} languages but {len(names)} names were "
            f"given ({', '.join(names)}); pass the file's language order."
        )
    n_layers = None
    width: dict[str, Any] = {"d_ff": d_ff, "source": "the given d_ff"}
    neurons: dict[str, dict[int, list[int]]] = {}
    for lang, layers in zip(names, data, strict=True):
        if isinstance(layers, torch.Tensor) and layers.dtype == torch.bool and layers.dim() == 2:
            layers = list(layers)  # one [n_layers, d_ff] mask
        if not isinstance(layers, (list, tuple)):
            raise NeuronSetError(
                f"LAPE neuron file {path}: language '{lang}' is not a list over layers."
            )
        if not layers:
            raise NeuronSetError(f"LAPE neuron file {path}: language '{lang}' has no layers.")
        if n_layers is None:
            n_layers = len(layers)
        elif len(layers) != n_layers:
            raise NeuronSetError(
                f"LAPE neuron file {path}: language '{lang}' has {len(layers)} layers, "
                f"others {n_layers}."
            )
        out: dict[int, list[int]] = {}
        for layer, ix in enumerate(layers):
            values = _layer_indices(ix, path, lang, layer, width)
            if values:
                out[layer] = sorted(set(values))
        neurons[lang] = out
    meta = {"method": "lape-import", "source": str(path)}
    return NeuronSet(neurons, site, n_layers, width["d_ff"], meta)


def _language_names(languages: Sequence[str], path: Path) -> list[str]:
    """``languages`` as normalised codes (``EN`` → ``en``); an unknown code or one given twice
    (also under two spellings) is refused: the file's entries are matched by position."""
    from crane.data.languages import normalize_language
    from crane.errors import LanguageError

    if isinstance(languages, str):
        languages = [part.strip() for part in languages.split(",") if part.strip()]
    names: list[str] = []
    for given in languages:
        try:
            code = normalize_language(given)
        except LanguageError:
            raise NeuronSetError(
                f"LAPE neuron file {path}: {given!r} is not a language code; name the file's "
                "languages in order with ISO 639 codes, e.g. en,zh,fr,es,vi,id,ja."
            ) from None
        if code in names:
            raise NeuronSetError(
                f"LAPE neuron file {path}: language {code!r} is named twice; name each of the "
                "file's languages once, in order."
            )
        names.append(code)
    return names


def _layer_indices(
    ix: Any, path: Path, lang: str, layer: int, width: dict[str, Any]
) -> list[int]:
    """One layer's neuron indices: an integer index tensor as it is, a boolean mask as the
    positions of its True entries (and its length as the MLP width, ``width``)."""
    where = f"LAPE neuron file {path}: language '{lang}', layer {layer}"
    if not isinstance(ix, torch.Tensor) or ix.dim() != 1:
        raise NeuronSetError(f"{where} is not a 1-D integer tensor or boolean mask.")
    if ix.dtype == torch.bool:
        size = int(ix.shape[0])
        if width["d_ff"] is None:
            width.update(d_ff=size, source=f"layer {layer} of '{lang}'")
        elif size != width["d_ff"]:
            raise NeuronSetError(
                f"{where} is a mask over {size} neurons, but the MLP width is {width['d_ff']} "
                f"(from {width['source']}); give masks of one width."
            )
        return torch.nonzero(ix, as_tuple=True)[0].tolist()
    if ix.dtype == torch.uint8:
        raise NeuronSetError(
            f"{where} is a uint8 tensor, which may be an old-style mask or indices; save masks "
            "as bool and indices as int64 (torch.long)."
        )
    if ix.is_floating_point() or ix.is_complex():
        raise NeuronSetError(f"{where} is not a 1-D integer tensor or boolean mask.")
    values = ix.tolist()
    bound = width["d_ff"]
    bad = [v for v in values if v < 0 or (bound is not None and v >= bound)]
    if bad:
        raise NeuronSetError(
            f"{where} has out-of-range indices {bad[:5]} (MLP width {bound})."
        )
    return values


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
