"""Relevance capture RC of every set, with its specificity RS (docs/method.md)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from crane.report.heatmaps import Panel, heatmap_grid
from crane.report.style import as_float, finite_max, format_number, language_label, present
from crane.results import NO_RELEVANCE, StudyResults


def relevance_capture(results: StudyResults) -> Figure | None:
    """Relevance capture RC (% of each language's positive relevance inside a set) per method,
    rows = the set's language, columns = the language whose relevance is measured; RS at right."""
    relevance = results.relevance
    methods = [m for m in results.methods if relevance.get(m)]
    if not methods:
        return None
    rows = present(results.languages, *(relevance[m] for m in methods))
    cols = present(results.languages, *(r.rc for m in methods for r in relevance[m].values()))
    if not rows or not cols:
        return None
    panels = []
    for method in methods:
        matrix = np.full((len(rows), len(cols)), np.nan)
        main = [[""] * len(cols) for _ in rows]
        right = []
        for i, masked in enumerate(rows):
            entry = relevance[method].get(masked, NO_RELEVANCE)
            for j, evaluated in enumerate(cols):
                value = as_float(entry.rc.get(evaluated)) * 100.0
                matrix[i, j] = value
                main[i][j] = f"{format_number(value, 2)}%" if math.isfinite(value) else "n/a"
            rs = as_float(entry.rs)
            right.append(f"RS {format_number(rs, 2)}" if math.isfinite(rs) else "")
        diagonal = [(i, cols.index(x)) for i, x in enumerate(rows) if x in cols]
        panels.append(Panel(method, matrix, main, right=right, diagonal=diagonal))
    return heatmap_grid(
        panels,
        [language_label(x) for x in rows],
        [language_label(x) for x in cols],
        cmap=colormaps["Purples"],
        norm=Normalize(0.0, finite_max([p.matrix for p in panels])),
        colorbar_label="RC (% of positive relevance)",
        title="Relevance capture RC: share of each language's positive relevance in a set\n"
        "RS = own RC ÷ mean RC of the other languages",
        xlabel="relevance measured on",
        ylabel="neuron set of",
        cell_w=0.72,
        cell_h=0.42,
        label_w=1.6,
        right_w=0.55,
    )


__all__ = ["relevance_capture"]
