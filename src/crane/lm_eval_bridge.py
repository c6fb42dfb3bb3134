"""lm-evaluation-harness bridge: run any lm-eval task with a crane neuron set masked.

The model type ``crane-masked`` is lm-eval's own Hugging Face model (``HFLM``) with four extra
model arguments: ``neurons=PATH`` (a crane neuron set, JSON or safetensors),
``languages=en+zh|all``, ``mode=zero|scale`` and ``alpha=FACTOR``. Tokenisation, batching,
``loglikelihood``, ``loglikelihood_rolling`` and ``generate_until`` are all lm-eval's code; the
only change is that every forward pass runs inside :func:`crane.intervene.mask_neurons`.

Where the masks are applied. ``HFLM`` runs the network in exactly two methods, ``_model_call``
(log-likelihood batches, rolling log-likelihoods, the automatic batch-size probe) and
``_model_generate`` (``generate_until``), and lm-eval's evaluator reaches them through the three
request methods ``loglikelihood``, ``loglikelihood_rolling`` and ``generate_until`` (one call per
request type per evaluation). The subclass wraps all five in ``mask_neurons``; a flag turns the
nested entries into no-ops. So the hooks go on once per request type, stay on for all of its
batches, and come off in ``finally`` when the call returns or raises (out of memory in the
batch-size probe, an interrupt); a direct ``_model_call`` is masked too. Nothing is left on the
model between calls: a model object passed as ``pretrained`` computes unmasked outputs again as
soon as the evaluation returns, and two wrappers around one model cannot stack their masks. This
is lm-eval's own ``steered`` pattern, scoped per request type instead of per batch because
preparing the masks costs a few milliseconds (about 6 ms on a CPU for 17,600 neurons in 32
layers). Hooks installed for the wrapper's lifetime would need a teardown lm-eval never calls.

Without ``neurons`` the class is ``HFLM`` unchanged (the one addition: ``pretrained=gemma-3-270m``,
crane's packaged demo model name, resolves to its converted local directory).

lm-eval has no plugin discovery for model types (no entry points; ``--include_path`` adds task
YAMLs only), so the name must be registered in the process that runs the evaluation:

- Python: :func:`evaluate` (registers, builds the model, calls ``lm_eval.simple_evaluate``), or
  :func:`register` and then any lm-eval API with ``model="crane-masked"``;
- command line: ``python -m crane.lm_eval_bridge run --model crane-masked --model_args
  pretrained=DIR,neurons=set.json,languages=zh --tasks ...`` is lm-eval's own CLI with the model
  registered (all of its options work).

This module is the model type; running an evaluation (:func:`evaluate`, the command line's
:func:`main`) lives in :mod:`crane.lm_eval_run` and is re-exported here. Importing either module
does not import lm-eval; :func:`register` and :func:`evaluate` raise
:class:`~crane.errors.ConfigError` naming the ``eval`` extra when it is missing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crane.errors import ConfigError, NeuronSetError
from crane.intervene import mask_neurons
from crane.lm_eval_run import evaluate, main  # re-exported: the public path of running an eval
from crane.models.adapters import Adapter, get_adapter
from crane.models.sites import model_shape
from crane.neurons import LayerIndices, NeuronSet

MODEL_NAME = "crane-masked"
"""The lm-eval model type registered by :func:`register`."""

BRIDGE_MODES: tuple[str, ...] = ("zero", "scale")
"""Masking modes the bridge accepts (``mean`` needs reference means it has no way to take)."""

_MISSING_EXTRA = (
    "Running lm-eval tasks needs the 'eval' extra; install it with "
    "pip install 'crane-neurons[eval]'."
)

__all__ = [
    "BRIDGE_MODES",
    "MODEL_NAME",
    "NeuronMask",
    "evaluate",
    "main",
    "parse_languages",
    "register",
]


# --- the mask: options checked once, then bound to one model --------------------------------


def parse_languages(value: Any) -> list[str] | None:
    """``languages=`` as given to lm-eval → a list of language codes, or ``None`` for all.

    Accepts ``"all"``, one code, codes joined by ``+`` (``"en+zh"``; lm-eval splits model
    arguments on commas, so a comma cannot separate them) or a list of codes.
    """
    if value is None:
        return None
    if isinstance(value, str):
        parts = [part.strip() for part in value.split("+")]
    elif isinstance(value, Sequence):
        parts = [str(part).strip() for part in value]
    else:  # lm-eval turns a bare number into an int
        parts = [str(value).strip()]
    parts = [part for part in parts if part]
    if not parts:
        raise ConfigError(
            "`languages` is empty; pass language codes joined by '+' (e.g. en+zh) or 'all'."
        )
    if "all" in parts:
        if len(parts) > 1:
            raise ConfigError(
                f"`languages` mixes 'all' with codes ({'+'.join(parts)}); pass either 'all' or "
                "codes joined by '+'."
            )
        return None
    return list(dict.fromkeys(parts))


def _hook_target(model: Any) -> Any:
    """The module whose layers carry the hooks: a PEFT model's base model, else the model."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


@dataclass
class NeuronMask:
    """Which neurons the ``crane-masked`` model masks, and how.

    Attributes:
        neuron_set: the loaded set.
        source: the file it came from (or ``"<NeuronSet>"`` for an object).
        languages: the languages whose union is masked (``None``: all of the set's).
        mode: ``zero`` | ``scale``.
        alpha: the factor for ``scale`` (``None`` for ``zero``).
        layer_indices: layer → indices to mask (the union over ``languages``).
    """

    neuron_set: NeuronSet
    source: str
    languages: list[str] | None
    mode: str
    alpha: float | None
    layer_indices: LayerIndices = field(default_factory=dict)
    _adapter: Adapter | None = field(default=None, repr=False)

    @classmethod
    def prepare(
        cls,
        neurons: str | Path | NeuronSet,
        languages: Any = None,
        mode: str | None = None,
        alpha: Any = None,
    ) -> NeuronMask:
        """Check the options and load the set (before any model is loaded, so errors come fast).

        Raises:
            ConfigError: unknown mode, ``mean`` mode, a missing or stray ``alpha``, bad languages.
            NeuronSetError: the file is missing or not a neuron set, or lacks a language.
        """
        mode = "zero" if mode is None else str(mode).strip().lower()
        if mode == "mean":
            raise ConfigError(
                "Mode 'mean' needs per-neuron reference means, which lm-eval model arguments "
                "cannot carry; use mode=zero or mode=scale,alpha=FACTOR."
            )
        if mode not in BRIDGE_MODES:
            raise ConfigError(
                f"Unknown masking mode '{mode}'; use one of: {', '.join(BRIDGE_MODES)}."
            )
        factor: float | None = None
        if mode == "scale":
            if alpha is None:
                raise ConfigError("mode=scale needs alpha=FACTOR (the value is multiplied by it).")
            try:
                factor = float(alpha)
            except (TypeError, ValueError):
                raise ConfigError(f"alpha must be a number, got '{alpha}'.") from None
        elif alpha is not None:
            raise ConfigError("alpha only applies to mode=scale; drop it or add mode=scale.")

        if isinstance(neurons, NeuronSet):
            neuron_set, source = neurons, "<NeuronSet>"
        elif isinstance(neurons, (str, Path)):
            neuron_set, source = NeuronSet.load(neurons), str(neurons)
        else:
            raise ConfigError(
                f"`neurons` must be a neuron set file or a NeuronSet, got {type(neurons).__name__}."
            )
        chosen = parse_languages(languages)
        if chosen is not None:
            missing = [lang for lang in chosen if lang not in neuron_set.languages]
            if missing:
                raise NeuronSetError(
                    f"Neuron set {source} has no language {', '.join(repr(m) for m in missing)}; "
                    f"it has: {', '.join(neuron_set.languages) or 'none'} (or pass languages=all)."
                )
        return cls(
            neuron_set=neuron_set,
            source=source,
            languages=chosen,
            mode=mode,
            alpha=factor,
            layer_indices=neuron_set.union(chosen),
        )

    def bind(self, model: Any) -> None:
        """Check that the set fits ``model`` (adapter, layer count, MLP width).

        Raises:
            UnsupportedModelError: no crane adapter for the model's architecture.
            NeuronSetError: the set was made for another shape, or its indices do not fit.
        """
        target = _hook_target(model)
        adapter = get_adapter(target)
        self.neuron_set.check_fits(model_shape(target, adapter))
        self._adapter = adapter

    @property
    def n_masked(self) -> int:
        """Distinct neurons masked (the union over the chosen languages)."""
        return sum(len(ix) for ix in self.layer_indices.values())

    def applied(self, model: Any) -> AbstractContextManager[None]:
        """A context in which ``model``'s forward passes run masked (a no-op for an empty mask)."""
        if not self.layer_indices:
            return nullcontext()
        return mask_neurons(
            _hook_target(model),
            self.layer_indices,
            site=self.neuron_set.site,
            mode=self.mode,
            alpha=0.0 if self.alpha is None else self.alpha,
            adapter=self._adapter,
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-ready record of the mask (lands in lm-eval's ``results["config"]``)."""
        import crane

        return {
            "neurons": self.source,
            "languages": "all" if self.languages is None else list(self.languages),
            "mode": self.mode,
            "alpha": self.alpha,
            "site": self.neuron_set.site,
            "n_masked": self.n_masked,
            "n_layers_masked": len(self.layer_indices),
            "neuron_set_meta": dict(self.neuron_set.meta),
            "crane_version": crane.__version__,
        }


def _resolve_pretrained(pretrained: Any) -> Any:
    """crane's demo model name → its converted local directory; anything else unchanged."""
    from crane.models.demo import DEMO_MODEL, demo_model_dir

    if isinstance(pretrained, str) and pretrained == DEMO_MODEL and not Path(pretrained).exists():
        return str(demo_model_dir())
    return pretrained


# --- the lm-eval model class (built on first use so that lm-eval stays optional) ----------------


@functools.cache
def _masked_lm_class() -> type:
    try:
        from lm_eval.api.registry import register_model
        from lm_eval.models.huggingface import HFLM
    except ImportError as err:
        raise ConfigError(_MISSING_EXTRA) from err

    class CraneMaskedLM(HFLM):
        """lm-eval's ``HFLM`` with a crane neuron set masked in every forward and generation.

        Model arguments beyond ``HFLM``'s: ``neurons`` (path or NeuronSet), ``languages``
        (``all`` or codes joined by ``+``), ``mode`` (``zero`` | ``scale``), ``alpha``.
        """

        def __init__(
            self,
            pretrained: Any,
            neurons: str | Path | NeuronSet | None = None,
            languages: Any = None,
            mode: str | None = None,
            alpha: float | None = None,
            **kwargs: Any,
        ) -> None:
            mask: NeuronMask | None = None
            self._crane_active = False
            if neurons is None:
                given = [
                    name
                    for name, value in (("languages", languages), ("mode", mode), ("alpha", alpha))
                    if value is not None
                ]
                if given:
                    raise ConfigError(
                        f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} with "
                        "neurons=PATH; add the neuron set or drop the option."
                    )
            else:
                mask = NeuronMask.prepare(neurons, languages, mode, alpha)
            super().__init__(pretrained=_resolve_pretrained(pretrained), **kwargs)
            if mask is not None:
                mask.bind(self.model)
            self.crane_mask: NeuronMask | None = mask

        @contextmanager
        def _crane_masked(self) -> Iterator[None]:
            """Hooks on for the body; a no-op without a mask or when already on (re-entry)."""
            if self.crane_mask is None or self._crane_active:
                yield
                return
            with self.crane_mask.applied(self.model):
                self._crane_active = True
                try:
                    yield
                finally:
                    self._crane_active = False

        # lm-eval's three request types: the hooks stay on for all batches of one call.
        def loglikelihood(self, requests: Any, *args: Any, **kwargs: Any) -> Any:
            with self._crane_masked():
                return super().loglikelihood(requests, *args, **kwargs)

        def loglikelihood_rolling(self, requests: Any, *args: Any, **kwargs: Any) -> Any:
            with self._crane_masked():
                return super().loglikelihood_rolling(requests, *args, **kwargs)

        def generate_until(self, requests: Any, *args: Any, **kwargs: Any) -> Any:
            with self._crane_masked():
                return super().generate_until(requests, *args, **kwargs)

        # The only two places HFLM runs the network: masked also when called directly.
        def _model_call(self, inps: Any, attn_mask: Any = None, labels: Any = None) -> Any:
            with self._crane_masked():
                return super()._model_call(inps, attn_mask=attn_mask, labels=labels)

        def _model_generate(
            self, context: Any, max_length: int, stop: list[str], **generation_kwargs: Any
        ) -> Any:
            with self._crane_masked():
                return super()._model_generate(context, max_length, stop, **generation_kwargs)

        def get_model_info(self) -> dict[str, Any]:
            info = super().get_model_info()
            if self.crane_mask is not None:
                info["crane_mask"] = self.crane_mask.describe()
            return info

    CraneMaskedLM.__module__ = __name__
    return register_model(MODEL_NAME)(CraneMaskedLM)


def __getattr__(name: str) -> Any:
    """``crane.lm_eval_bridge.CraneMaskedLM`` (imports lm-eval on first access)."""
    if name == "CraneMaskedLM":
        return _masked_lm_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register() -> type:
    """Register the ``crane-masked`` model type with lm-eval (idempotent); returns the class.

    Raises:
        ConfigError: lm-eval is not installed.
    """
    cls = _masked_lm_class()
    from lm_eval.api.registry import MODEL_REGISTRY, register_model

    if MODEL_REGISTRY.get(MODEL_NAME, None) is not cls:  # e.g. after a registry reset in tests
        register_model(MODEL_NAME)(cls)
    return cls


if __name__ == "__main__":
    # main (crane.lm_eval_run) registers the class of the imported crane.lm_eval_bridge, not of
    # this __main__ copy, so the registered class lives in crane.lm_eval_bridge.
    main()
