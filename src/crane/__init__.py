"""crane-neurons: find the neurons a multilingual language model needs for each language.

The top-level names load lazily (``import crane`` stays light for the command line):

- :func:`load_model` — a Hugging Face causal LM (hub id, directory, .gguf, ``gemma-3-270m``);
- :func:`identify` — each language's neurons by CRANE or a baseline (:mod:`crane.api`);
- :func:`evaluate` — bits per byte per language under masks (a :class:`MaskingMatrix`);
- :func:`mask` — a context manager that zeroes (or scales) neurons during forward passes;
- :func:`transfer` — apply sets found on one model to another of the same shape;
- :func:`run_study`, :class:`StudyConfig`, :func:`load_config` — the whole comparison;
- :class:`NeuronSet` — language → layer → neuron indices, with save/load and overlap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": ("crane.models.loading", "load_model"),
    "identify": ("crane.api", "identify"),
    "evaluate": ("crane.api", "evaluate"),
    "transfer": ("crane.api", "transfer"),
    "mask": ("crane.intervene", "mask_neurons"),
    "NeuronSet": ("crane.neurons", "NeuronSet"),
    "MaskingMatrix": ("crane.evaluation.bpb", "MaskingMatrix"),
    "run_study": ("crane.study", "run_study"),
    "StudyConfig": ("crane.study", "StudyConfig"),
    "load_config": ("crane.study", "load_config"),
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'crane' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
