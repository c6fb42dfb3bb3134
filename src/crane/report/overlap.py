"""Overlap of neuron sets (Jaccard index): between methods per language, and between
languages per method. Both are one figure kind, drawn by :func:`overlap_figure`."""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from crane.report.heatmaps import Panel, heatmap_grid
from crane.report.style import as_float, finite_max, language_label
from crane.results import StudyResults


def _jaccard_text(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if value >= 0.095 or value == 0 else f"{value:.3f}"


def overlap_figure(results: StudyResults, between: str) -> Figure | None:
    """Jaccard indices ``between`` "methods" (one panel per language) or "languages" (one
    panel per method); the diagonal (1 by definition) is grey so that the scale shows the rest."""
    by_method = between == "methods"
    overlap = results.overlap
    nested = overlap.between_methods if by_method else overlap.between_languages
    groups, items = (
        (results.languages, results.methods) if by_method else (results.methods, results.languages)
    )
    group_label, item_label = (language_label, str) if by_method else (str, language_label)
    used_items = [i for i in items if any(i in nested.get(g, {}) for g in groups)]
    if len(used_items) < 2:
        return None
    n = len(used_items)
    panels = []
    for group in groups:
        table = nested.get(group)
        if not table:
            continue
        matrix = np.full((n, n), np.nan)
        main = [[""] * n for _ in range(n)]
        for i, a in enumerate(used_items):
            for j, b in enumerate(used_items):
                value = as_float(table.get(a, {}).get(b))
                main[i][j] = _jaccard_text(value)
                if i != j or not math.isfinite(value):
                    matrix[i, j] = value
        panels.append(Panel(group_label(group), matrix, main))
    if not panels:
        return None
    labels = [item_label(i) for i in used_items]
    axis = "method" if by_method else "language"
    return heatmap_grid(
        panels,
        labels,
        labels,
        cmap=colormaps["Blues"],
        norm=Normalize(0.0, finite_max([p.matrix for p in panels])),
        colorbar_label="Jaccard index (diagonal = 1, grey)",
        title=f"Overlap between {between}' neuron sets (Jaccard index)",
        xlabel=axis,
        ylabel=axis,
        cell_w=0.62 if n <= 8 else 0.45,
        cell_h=0.42 if n <= 8 else 0.34,
        label_w=1.3 if by_method else 1.8,
    )


def overlap_between_methods(results: StudyResults) -> Figure | None:
    """Jaccard index between the methods' sets, one panel per language."""
    return overlap_figure(results, "methods")


def overlap_between_languages(results: StudyResults) -> Figure | None:
    """Jaccard index between languages' sets, one panel per method."""
    return overlap_figure(results, "languages")


__all__ = ["overlap_between_languages", "overlap_between_methods", "overlap_figure"]
