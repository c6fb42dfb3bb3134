"""The budget sweep: damage on the target language and off it as the budget grows."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from crane.report.style import (
    FONT,
    SMALL,
    as_float,
    finish_panel,
    language_panels,
    method_colors,
    present,
)
from crane.results import StudyResults


def budget_sweep(results: StudyResults) -> Figure | None:
    """Damage as the budget grows: one panel per language, solid = target language, dashed =
    mean over the other languages, one colour per method."""
    sweep = results.sweep
    if sweep is None:
        return None
    budgets = [as_float(b) for b in sweep.budgets]
    per_method = sweep.methods
    if not budgets or not all(math.isfinite(b) for b in budgets) or not per_method:
        return None
    n = len(budgets)
    methods = [m for m in results.methods if per_method.get(m)]
    langs = present(results.languages, *(per_method[m] for m in methods))

    def series(method: str, lang: str, key: str) -> np.ndarray | None:
        entry = per_method[method].get(lang)
        raw = getattr(entry, key) if entry is not None else ()
        return np.array([as_float(v) for v in raw]) if len(raw) == n else None

    if not any(series(m, x, "target") is not None for m in methods for x in langs):
        return None
    colors = method_colors(results.methods)
    bench_name = sweep.benchmark or "bpb"
    bench = results.benchmarks.get(bench_name)
    unit = (bench.unit if bench else None) or ("bits/byte" if bench_name == "bpb" else "")
    title = f"Damage as the budget grows ({(bench.title if bench else None) or bench_name})"
    fig, panels = language_panels(langs, title, margin=2.4, height=3.0)
    x = np.array(budgets) * 100.0
    log_x = min(budgets) > 0 and max(budgets) / min(budgets) >= 4
    for ax, lang in panels:
        for method in methods:
            target = series(method, lang, "target")
            off = series(method, lang, "off_target")
            if target is not None:
                ax.plot(x, target, color=colors[method], ls="-", marker="o", ms=4.5, lw=1.8)
            if off is not None:
                ax.plot(
                    x, off, color=colors[method], ls="--", marker="o", ms=4.5, lw=1.5, mfc="white"
                )
        ax.axhline(0.0, color="0.6", lw=0.8, zorder=0)
        if log_x:
            ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(list(x)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{v:g}%" for v in x], rotation=30, ha="right", rotation_mode="anchor")
        finish_panel(ax, lang)
    handles = [Line2D([], [], color=colors[m], lw=2.2, label=m) for m in methods]
    handles += [
        Line2D([], [], color="black", ls="-", marker="o", ms=4.5, label="target language"),
        Line2D(
            [], [], color="black", ls="--", marker="o", ms=4.5, mfc="white", label="off-target mean"
        ),
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=SMALL, frameon=False)
    fig.supxlabel("budget (% of all neurons)", fontsize=FONT)
    fig.supylabel(f"damage (Δ {unit})" if unit else "damage", fontsize=FONT)
    return fig


__all__ = ["budget_sweep"]
