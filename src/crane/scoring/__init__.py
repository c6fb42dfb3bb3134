"""Scoring functions (one module per method; :mod:`crane.methods` registers them by name) and
selection of neuron sets under a budget."""

from __future__ import annotations

from crane.scoring.base import Scores, select_top, to_layer_indices
from crane.scoring.budget import DEFAULT_FRACTION, Budget, parse_budget

__all__ = ["DEFAULT_FRACTION", "Budget", "Scores", "parse_budget", "select_top", "to_layer_indices"]
