"""Random controls: uniform random scores (any budget), or a layer-matched random copy of a set."""

from __future__ import annotations

import torch

from crane.neurons import NeuronSet
from crane.scoring.base import Scores, register_scorer
from crane.stats import Stats


@register_scorer("random")
def random_scores(stats: Stats, *, seed: int = 0) -> Scores:
    """Seeded uniform scores per language (``select_top`` then draws a random set of the
    budget's size; not layer-matched — use :func:`layer_matched_random` for that)."""
    first = next(iter(stats.languages.values()))
    n_layers, d_ff = next(iter(first.tensors.values())).shape
    gen = torch.Generator().manual_seed(seed)
    values = {
        lang: torch.rand(n_layers, d_ff, generator=gen, dtype=torch.float64)
        for lang in stats.language_codes
    }
    return Scores(values, "random", {"seed": seed})


def layer_matched_random(reference: NeuronSet, seed: int = 0, d_ff: int | None = None) -> NeuronSet:
    """Same languages and per-layer counts as ``reference``, random indices (seeded)."""
    return reference.random_like(seed=seed, d_ff=d_ff)
