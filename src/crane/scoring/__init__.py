"""Scoring methods, registered by name, and selection of neuron sets under a budget."""

from __future__ import annotations

from crane.scoring import actmean as _actmean  # noqa: F401  (registers "actmean")
from crane.scoring import crane_score as _crane_score  # noqa: F401  (registers "crane")
from crane.scoring import kojima as _kojima  # noqa: F401  (registers "kojima")
from crane.scoring import lape as _lape  # noqa: F401  (registers "lape")
from crane.scoring import plnd as _plnd  # noqa: F401  (registers "plnd")
from crane.scoring import random_set as _random_set  # noqa: F401  (registers "random")
from crane.scoring.base import SCORERS, Scores, register_scorer, select_top, to_layer_indices
from crane.scoring.budget import DEFAULT_FRACTION, Budget, parse_budget

__all__ = [
    "DEFAULT_FRACTION",
    "SCORERS",
    "Budget",
    "Scores",
    "parse_budget",
    "register_scorer",
    "select_top",
    "to_layer_indices",
]
