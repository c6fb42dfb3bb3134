"""Model loading, architecture adapters and neuron sites."""

from __future__ import annotations

from crane.models.adapters import (
    Adapter,
    get_adapter,
    register_adapter,
    supported_families,
    supported_model_types,
)
from crane.models.demo import DEMO_MODEL, cache_root, demo_model_dir
from crane.models.loading import LoadedModel, describe, load_model
from crane.models.sites import SITES, ModelShape, model_shape, site_hooks, validate_sites

__all__ = [
    "DEMO_MODEL",
    "SITES",
    "Adapter",
    "LoadedModel",
    "ModelShape",
    "cache_root",
    "demo_model_dir",
    "describe",
    "get_adapter",
    "load_model",
    "model_shape",
    "register_adapter",
    "site_hooks",
    "supported_families",
    "supported_model_types",
    "validate_sites",
]
