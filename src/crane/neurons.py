"""NeuronSet: language → layer → neuron indices, with the provenance that produced it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crane.errors import NeuronSetError
from crane.io import atomic_write_bytes, atomic_write_text, parse_json
from crane.models.sites import SITES, ModelShape

FORMAT = "crane-neuron-set"
FORMAT_VERSION = 1

LayerIndices = dict[int, list[int]]
"""layer → sorted, unique neuron indices in ``[0, d_ff)``."""


MAX_LAYER = 100_000
"""Layer numbers at or above this are no model's (a set without a recorded shape would
otherwise make ``layer_counts`` allocate for any number a file claims)."""
MAX_INDEX = 10_000_000
"""Neuron indices at or above this are no MLP's."""


def _whole(value: Any) -> int:
    """``value`` as an int; TypeError/ValueError/OverflowError unless it is a whole number
    written one way: no booleans, no strings with leading zeros or signs (``"01"`` is not 1)."""
    if isinstance(value, bool):
        raise TypeError(f"{value!r} is a boolean, not a number")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    if isinstance(value, str) and (value != value.strip() or not _CANONICAL.fullmatch(value)):
        raise ValueError(f"{value!r} is not a whole number written plainly (e.g. 1, not 01)")
    return int(value)


_CANONICAL = re.compile(r"0|[1-9][0-9]*")


def _short(number: int) -> str:
    """A number for a message: as written, or its head and digit count when very long."""
    try:
        text = str(number)
    except ValueError:  # more digits than Python converts
        return "a number of thousands of digits"
    return text if len(text) <= 20 else f"{text[:8]}… ({len(text)} digits)"


def _clean_layers(layers: Mapping[Any, Iterable[Any]], where: str) -> LayerIndices:
    """``layers`` checked and cleaned; errors begin with ``where`` (e.g. ``Neuron set language
    'en'``)."""
    clean: LayerIndices = {}
    for layer, indices in layers.items():
        try:
            if isinstance(indices, (str, bytes, Mapping)):
                raise TypeError(f"layer {layer} holds a {type(indices).__name__}, not a list")
            layer_i = _whole(layer)
            values = sorted({_whole(i) for i in indices})
        except (TypeError, ValueError, OverflowError) as exc:
            raise NeuronSetError(
                f"{where} has a non-integer layer or index ({exc}); "
                "layers and indices must be whole numbers."
            ) from None
        if layer_i < 0 or any(v < 0 for v in values):
            raise NeuronSetError(
                f"{where} has a negative layer or neuron index; indices start at 0."
            )
        if layer_i >= MAX_LAYER:
            raise NeuronSetError(
                f"{where} has layer {_short(layer_i)}, larger than any model's "
                f"(below {MAX_LAYER}); check the file."
            )
        if values and values[-1] >= MAX_INDEX:
            raise NeuronSetError(
                f"{where} has neuron index {_short(values[-1])} in layer {layer_i}, "
                f"larger than any model's MLP (below {MAX_INDEX}); check the file."
            )
        if layer_i in clean:
            raise NeuronSetError(
                f"{where} gives layer {layer_i} twice; give each layer once."
            )
        if values:
            clean[layer_i] = values
    return dict(sorted(clean.items()))


_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_.:~+-]{0,63}")
"""A set's key that is not a language code: a plain label such as a control's (``random``)."""
_CODE_SHAPED = re.compile(r"[A-Za-z]{2,3}(?:[-_].*)?", re.DOTALL)
"""A key that reads as a language code attempt (2-3 letters first): it must be a known code."""


def _language_key(lang: Any, owner: str = "Neuron set") -> str:
    """A set's language key: a language code normalised (``EN`` → ``en``, ``zh_hans`` →
    ``zh-Hans``), or a plain label (such as a control's, ``random``) kept as written; a key
    shaped like a code that is no known code (``xq``), or one with spaces, markup or control
    characters inside, is refused."""
    from crane.data.languages import normalize_language
    from crane.errors import LanguageError

    text = str(lang).strip()
    if not text:
        raise NeuronSetError(f"{owner} language key {lang!r} is empty; name every language.")
    try:
        return normalize_language(text)
    except LanguageError:
        pass
    if _CODE_SHAPED.fullmatch(text):
        raise NeuronSetError(
            f"{owner} language key {_shown(text)} is not a known language code; use an ISO "
            "639 code such as en, zh-Hans or vi."
        )
    if not _LABEL.fullmatch(text):
        raise NeuronSetError(
            f"{owner} language key {_shown(text)} is neither a language code (en, zh-Hans) "
            "nor a plain label (a letter, then letters, digits or _ . : ~ + -, at most 64 "
            "characters); rename it."
        )
    return text


def _clean_neurons(neurons: Mapping[Any, Any], owner: str) -> dict[str, LayerIndices]:
    """language → layer → indices checked and cleaned; errors begin with ``owner`` (``Neuron
    set``, or ``Neuron set file PATH:`` when a file is read)."""
    clean: dict[str, LayerIndices] = {}
    for lang, layers in neurons.items():
        key = _language_key(lang, owner)
        if key in clean:
            raise NeuronSetError(
                f"{owner} language {lang!r} is given twice (as {key!r}); give it once."
            )
        if not isinstance(layers, Mapping):
            raise NeuronSetError(f"{owner} language {lang!r} holds no layer → indices mapping.")
        clean[key] = _clean_layers(layers, f"{owner} language {lang!r}")
    return clean


def _shown(text: str) -> str:
    """``text`` quoted for a one-line message (escapes visible, long texts cut)."""
    return repr(text if len(text) <= 40 else text[:40] + "…")


@dataclass
class NeuronSet:
    """Per-language neuron indices at one site of one model.

    Attributes:
        neurons: language → layer → sorted indices.
        site: the neuron site the indices refer to (``down_in`` or ``act``).
        n_layers, d_ff: the shape of the model the set was found on (``None`` if unknown).
        meta: provenance: method, thresholds, model identity, corpus hashes, seed, ...
    """

    neurons: dict[str, LayerIndices]
    site: str = "down_in"
    n_layers: int | None = None
    d_ff: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.site not in SITES:
            raise NeuronSetError(
                f"Neuron set site '{self.site}' is unknown; use one of: {', '.join(SITES)}."
            )
        neurons = _clean_neurons(self.neurons, "Neuron set")
        self.neurons = neurons
        if self.n_layers is not None and self.d_ff is not None:
            self._check_ranges(self.n_layers, self.d_ff, "the shape it records")

    # ---- queries -------------------------------------------------------------------------
    @property
    def languages(self) -> list[str]:
        return list(self.neurons)

    def layers(self, language: str) -> LayerIndices:
        """layer → indices for one language."""
        if language not in self.neurons:
            raise NeuronSetError(
                f"Neuron set has no language {language!r}; it has: {', '.join(self.languages)}."
            )
        return self.neurons[language]

    def size(self, language: str | None = None) -> int:
        """Number of neurons of one language (or of all languages, counted per language)."""
        langs = self.languages if language is None else [language]
        return sum(len(ix) for lang in langs for ix in self.layers(lang).values())

    def layer_counts(self, language: str, n_layers: int | None = None) -> list[int]:
        """Neurons per layer for one language, as a list of length ``n_layers``."""
        layers = self.layers(language)
        n = n_layers or self.n_layers or (max(layers, default=-1) + 1)
        return [len(layers.get(i, [])) for i in range(n)]

    def union(self, languages: Iterable[str] | None = None) -> LayerIndices:
        """layer → indices in any of ``languages`` (default: all)."""
        merged: dict[int, set[int]] = {}
        for lang in self.languages if languages is None else languages:
            for layer, indices in self.layers(lang).items():
                merged.setdefault(layer, set()).update(indices)
        return {layer: sorted(ix) for layer, ix in sorted(merged.items())}

    def flat(self, language: str, d_ff: int | None = None) -> set[int]:
        """One language's neurons as flat indices ``layer * d_ff + j``."""
        width = d_ff or self.d_ff
        if width is None:
            raise NeuronSetError("Flat indices need the MLP width; pass d_ff.")
        return {layer * width + j for layer, ix in self.layers(language).items() for j in ix}

    def overlap(self, other: NeuronSet, language: str, other_language: str | None = None) -> dict[str, float]:
        """Intersection size and Jaccard index of one language here and in ``other``."""
        a = self.flat(language)
        b = other.flat(other_language or language, self.d_ff)
        union = len(a | b)
        return {
            "intersection": len(a & b),
            "size_a": len(a),
            "size_b": len(b),
            "jaccard": len(a & b) / union if union else 1.0,
        }

    def jaccard_matrix(self, other: NeuronSet | None = None) -> dict[str, dict[str, float]]:
        """Jaccard index between every language here and every language of ``other`` (or self)."""
        other = other or self
        return {
            a: {b: self.overlap(other, a, b)["jaccard"] for b in other.languages}
            for a in self.languages
        }

    # ---- validation ----------------------------------------------------------------------
    def _check_ranges(self, n_layers: int, d_ff: int, what: str) -> None:
        for lang, layers in self.neurons.items():
            for layer, indices in layers.items():
                if layer >= n_layers:
                    raise NeuronSetError(
                        f"Neuron set language {lang!r} uses layer {layer}, but {what} has "
                        f"{n_layers} layers; use a neuron set made for this model."
                    )
                if indices and indices[-1] >= d_ff:
                    raise NeuronSetError(
                        f"Neuron set language {lang!r} uses neuron {indices[-1]} in layer {layer}, "
                        f"but {what} has MLP width {d_ff}; use a neuron set made for this model."
                    )

    def check_fits(self, shape: ModelShape) -> None:
        """Raise :class:`NeuronSetError` unless the set fits a model of ``shape``."""
        if self.n_layers is not None and self.d_ff is not None:
            if (self.n_layers, self.d_ff) != (shape.n_layers, shape.d_ff):
                raise NeuronSetError(
                    f"Neuron set was made for a model with {self.n_layers} layers × {self.d_ff} "
                    f"neurons, but this model has {shape.n_layers} × {shape.d_ff}; "
                    "use a neuron set made for this model."
                )
        self._check_ranges(shape.n_layers, shape.d_ff, "the model")

    # ---- derived sets --------------------------------------------------------------------
    def random_like(self, seed: int = 0, d_ff: int | None = None) -> NeuronSet:
        """A layer-matched random control: same languages and per-layer counts, random indices."""
        width = d_ff or self.d_ff
        if width is None:
            raise NeuronSetError("A random control needs the MLP width; pass d_ff.")
        rng = np.random.default_rng(seed)
        neurons = {
            lang: {
                layer: sorted(rng.choice(width, size=len(ix), replace=False).tolist())
                for layer, ix in layers.items()
            }
            for lang, layers in self.neurons.items()
        }
        meta = {"method": "random", "matched_to": self.meta.get("method"), "seed": seed}
        return NeuronSet(neurons, self.site, self.n_layers, width, meta)

    @classmethod
    def random(
        cls,
        shape: ModelShape,
        count: int,
        *,
        language: str = "random",
        site: str = "down_in",
        seed: int = 0,
    ) -> NeuronSet:
        """``count`` neurons spread evenly over layers, uniformly at random inside each layer."""
        if not 0 < count <= shape.n_neurons:
            raise NeuronSetError(
                f"A random set needs between 1 and {shape.n_neurons} neurons, got {count}."
            )
        rng = np.random.default_rng(seed)
        per_layer = [count // shape.n_layers] * shape.n_layers
        for i in rng.choice(shape.n_layers, size=count % shape.n_layers, replace=False):
            per_layer[int(i)] += 1
        layers = {
            layer: sorted(rng.choice(shape.d_ff, size=k, replace=False).tolist())
            for layer, k in enumerate(per_layer)
        }
        meta = {"method": "random", "seed": seed, "count": count}
        return cls({language: layers}, site, shape.n_layers, shape.d_ff, meta)

    # ---- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "site": self.site,
            "n_layers": self.n_layers,
            "d_ff": self.d_ff,
            "meta": self.meta,
            "neurons": {
                lang: {str(layer): ix for layer, ix in layers.items()}
                for lang, layers in self.neurons.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "neuron set") -> NeuronSet:
        """A set from its saved form (:meth:`to_dict`), read strictly: every field of the
        right type and range, every index once, nothing silently merged or dropped."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise NeuronSetError(
                f"{where} is not a crane neuron set (no \"format\": \"{FORMAT}\"); "
                "save sets with NeuronSet.save or import LAPE files with crane neurons import-lape."
            )
        version = data.get("version")
        if type(version) is not int or version != FORMAT_VERSION:
            raise NeuronSetError(
                f"{where} has format version {version!r}, this crane reads version "
                f"{FORMAT_VERSION}; recreate it with this version."
            )
        neurons = data.get("neurons")
        if not isinstance(neurons, dict) or not all(isinstance(v, dict) for v in neurons.values()):
            raise NeuronSetError(
                f"{where} has no valid \"neurons\" mapping (language → layer → indices)."
            )
        for key, bound in (("n_layers", MAX_LAYER), ("d_ff", MAX_INDEX)):
            value = data.get(key)
            if value is not None and (type(value) is not int or not 1 <= value <= bound):
                raise NeuronSetError(
                    f"{where} has {key} = {_short(value) if type(value) is int else repr(value)}; "
                    f"it must be a positive whole number up to {bound} (or null)."
                )
        site = data.get("site", "down_in")
        if not isinstance(site, str):
            raise NeuronSetError(
                f"{where} has site {site!r}; it must be one of: {', '.join(SITES)}."
            )
        meta = data.get("meta") or {}
        if not isinstance(meta, dict):
            raise NeuronSetError(f"{where} has a 'meta' that is not a JSON object; fix or drop it.")
        model = meta.get("model")
        if model is not None and not isinstance(model, dict):
            raise NeuronSetError(
                f"{where} records its model as {type(model).__name__}, not an object of "
                "provenance; fix or drop meta.model."
            )
        if model is not None and model.get("spec") is not None and not isinstance(
            model["spec"], str
        ):
            raise NeuronSetError(
                f"{where} records meta.model.spec = {model['spec']!r}, not a model name or path; "
                "fix or drop it."
            )
        if not neurons:
            raise NeuronSetError(
                f"{where} holds no language; a neuron set gives each language's neurons."
            )
        _refuse_repeats(neurons, where)
        return cls(
            neurons=_clean_neurons(neurons, f"{where}:"),
            site=site,
            n_layers=data.get("n_layers"),
            d_ff=data.get("d_ff"),
            meta=dict(meta),
        )

    def save(self, path: str | Path) -> Path:
        """Write the set atomically: JSON, or with a ``.safetensors`` suffix one boolean mask
        ``[n_layers, d_ff]`` per language with the rest of the set as metadata."""
        path = Path(path)
        if path.suffix == ".safetensors":
            from safetensors.torch import save as save_tensors

            if self.n_layers is None or self.d_ff is None:
                raise NeuronSetError("A safetensors neuron set needs n_layers and d_ff.")
            masks = {}
            for lang in self.languages:
                mask = torch.zeros(self.n_layers, self.d_ff, dtype=torch.bool)
                for layer, ix in self.layers(lang).items():
                    mask[layer, ix] = True
                masks[lang] = mask
            header = {k: v for k, v in self.to_dict().items() if k != "neurons"}
            atomic_write_bytes(path, save_tensors(masks, {"crane": json.dumps(header, default=str)}))
            return path
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> NeuronSet:
        """Read a set saved by :meth:`save` (JSON or safetensors; nothing is executed)."""
        path = Path(path)
        if path.is_dir():
            raise NeuronSetError(
                f"Neuron set path {path} is a directory, not a file; give a neurons-*.json file."
            )
        if not path.is_file():
            raise NeuronSetError(f"Neuron set file {path} does not exist; check the path.")
        if path.suffix == ".safetensors":
            return cls._load_safetensors(path)
        try:
            data = parse_json(path.read_text(encoding="utf-8"), unique_keys=True)
        except UnicodeDecodeError:
            raise NeuronSetError(
                f"Neuron set file {path} is not valid JSON (not UTF-8 text); "
                "save sets with NeuronSet.save."
            ) from None
        except json.JSONDecodeError as exc:
            raise NeuronSetError(
                f"Neuron set file {path} is not valid JSON ({exc.msg}); "
                "save sets with NeuronSet.save."
            ) from None
        return cls.from_dict(data, where=f"Neuron set file {path}")

    @classmethod
    def _load_safetensors(cls, path: Path) -> NeuronSet:
        from safetensors import SafetensorError, safe_open

        where = f"Neuron set file {path}"
        try:
            with safe_open(str(path), framework="pt") as handle:
                header = parse_json(
                    (handle.metadata() or {}).get("crane", "null"), unique_keys=True
                )
                masks = {key: handle.get_tensor(key) for key in handle.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise NeuronSetError(
                f"{where} is not a readable safetensors file ({exc}); save sets with NeuronSet.save."
            ) from None
        if not isinstance(header, dict):
            raise NeuronSetError(f"{where} has no crane metadata; save sets with NeuronSet.save.")
        shapes = {tuple(mask.shape) for mask in masks.values()}
        for lang, mask in masks.items():
            if mask.dim() != 2 or mask.dtype != torch.bool:
                raise NeuronSetError(
                    f"{where}: mask {lang!r} is not a boolean [n_layers, d_ff] tensor "
                    f"({mask.dtype}, {list(mask.shape)}); save sets with NeuronSet.save."
                )
        recorded = (header.get("n_layers"), header.get("d_ff"))
        if len(shapes) > 1 or (shapes and None not in recorded and shapes != {recorded}):
            raise NeuronSetError(
                f"{where}: its masks have shapes {sorted(shapes)} but the set records "
                f"[{recorded[0]}, {recorded[1]}]; save sets with NeuronSet.save."
            )
        neurons = {}
        for lang, mask in masks.items():
            layers, idx = torch.nonzero(mask, as_tuple=True)
            per_layer: dict[int, list[int]] = {}
            for layer, j in zip(layers.tolist(), idx.tolist(), strict=True):
                per_layer.setdefault(layer, []).append(j)
            neurons[lang] = per_layer
        return cls.from_dict({**header, "neurons": neurons}, where=where)


def _refuse_repeats(neurons: Mapping[Any, Any], where: str) -> None:
    """Raise NeuronSetError when a language of a saved set lists one neuron twice in a layer
    (crane writes each once; a repeat means the file was edited or made by other code, and
    keeping one copy would silently change its size)."""
    for lang, layers in neurons.items():
        if not isinstance(layers, Mapping):
            continue
        for layer, indices in layers.items():
            if not isinstance(indices, list):
                continue
            seen: set[int] = set()
            for value in indices:
                try:
                    index = _whole(value)
                except (TypeError, ValueError, OverflowError):
                    continue  # reported by the constructor's checks
                if index in seen:
                    raise NeuronSetError(
                        f"{where}: language {_shown(str(lang))}, layer {_shown(str(layer))} lists "
                        f"neuron {_short(index)} twice; give each neuron once."
                    )
                seen.add(index)
