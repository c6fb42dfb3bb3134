"""Errors a user can cause. Each carries one clear sentence: what is wrong and how to fix it.

The CLI prints ``str(error)`` without a traceback and exits with code 2.
"""

from __future__ import annotations


class CraneError(Exception):
    """Base class for every error caused by user input (bad path, unknown language, ...)."""

    exit_code = 2


class ModelLoadError(CraneError):
    """A model could not be found or loaded (missing path, no weights, bad GGUF, ...)."""


class UnsupportedModelError(CraneError):
    """The model's architecture has no adapter, or its adapter does not match the model."""


class CorpusError(CraneError):
    """A corpus file or directory is missing, unreadable, not UTF-8, or empty."""


class LanguageError(CraneError):
    """A language code is unknown, or a requested language has no texts."""


class NeuronSetError(CraneError):
    """A neuron set is malformed or does not fit the model (layers, width, indices)."""


class ConfigError(CraneError):
    """An option or config value is invalid (unknown key, negative budget, ...)."""
