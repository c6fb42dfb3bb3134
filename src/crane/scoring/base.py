"""Scores and top-k selection shared by every scoring method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from crane.faults import kill_point
from crane.neurons import NeuronSet
from crane.scoring.budget import Budget


@dataclass
class Scores:
    """Per-language neuron scores: higher means more specific to the language.

    ``values[lang]`` is ``[n_layers, d_ff]`` float64; ``-inf`` marks neurons that are not
    eligible for ``lang`` (e.g. below the method's relevance quantile).
    """

    values: dict[str, torch.Tensor]
    method: str
    options: dict[str, Any] = field(default_factory=dict)

    def ranking(self, language: str) -> torch.Tensor:
        """Flat indices (``layer * d_ff + j``) of eligible neurons, best first.

        Deterministic: equal scores keep ascending index order (stable sort).
        """
        flat = self.values[language].flatten()
        order = torch.sort(-flat, stable=True).indices
        return order[torch.isfinite(flat[order])]


def to_layer_indices(flat: torch.Tensor, d_ff: int) -> dict[int, list[int]]:
    """Flat neuron indices → layer → sorted indices."""
    out: dict[int, list[int]] = {}
    for index in sorted(int(i) for i in flat):
        out.setdefault(index // d_ff, []).append(index % d_ff)
    return out


def select_top(
    scores: Scores,
    budget: Budget,
    *,
    site: str,
    meta: dict[str, Any] | None = None,
) -> NeuronSet:
    """The best ``budget`` neurons per language; fewer when fewer are eligible (recorded)."""
    kill_point("select")
    any_values = next(iter(scores.values.values()))
    n_layers, d_ff = any_values.shape
    neurons: dict[str, dict[int, list[int]]] = {}
    shortfall: dict[str, int] = {}
    for lang in scores.values:
        k = budget.for_language(lang, n_layers * d_ff)
        ranked = scores.ranking(lang)
        if len(ranked) < k:
            shortfall[lang] = k - len(ranked)
        neurons[lang] = to_layer_indices(ranked[:k], d_ff)
    info = {
        "method": scores.method,
        "options": scores.options,
        "budget": budget.describe(),
        **({"shortfall": shortfall} if shortfall else {}),
        **(meta or {}),
    }
    return NeuronSet(neurons, site, n_layers, d_ff, info)
