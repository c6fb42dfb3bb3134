"""Selectivity: Sel per method and language with its interval, one panel per benchmark."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from crane.report.style import (
    FONT,
    SMALL,
    TITLE,
    as_float,
    as_interval,
    language_label,
    method_colors,
    new_figure,
    present,
)
from crane.results import NO_METRIC, NOT_SELECTIVE, StudyResults


def selectivity_summary(results: StudyResults) -> Figure | None:
    """Selectivity Sel per method (bars) and language (groups) with 95% intervals, one panel
    per benchmark; a hatched bar is a set whose Sel does not clear the random control."""
    panels = []
    for bench_name, per_method in results.metrics.items():
        ms = [m for m in results.methods if per_method.get(m)]
        ls = present(results.languages, *(per_method[m] for m in ms))
        values = {m: {x: as_float(per_method[m].get(x, NO_METRIC).sel) for x in ls} for m in ms}
        if any(math.isfinite(v) for per in values.values() for v in per.values()):
            cis = {
                m: {x: as_interval(per_method[m].get(x, NO_METRIC).sel_ci) for x in ls}
                for m in ms
            }
            compared = results.comparisons.get(bench_name)
            verdict = compared.verdict if compared is not None else {}
            panels.append((bench_name, ms, ls, values, cis, verdict))
    if not panels:
        return None
    colors = method_colors(results.methods)
    n_bars = max(len(p[1]) * len(p[2]) for p in panels)
    fig = new_figure(
        max(9.0, 4.0 + 0.32 * n_bars),
        1.1 + 3.4 * len(panels),
        "Selectivity Sel = own-language damage − mean off-target damage",
    )
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    shown: dict[str, Any] = {}
    hatched = False
    for ax, (bench_name, ms, ls, values, cis, verdict) in zip(axes, panels, strict=True):
        bench = results.benchmarks.get(bench_name)
        hatched |= _sel_panel(ax, ms, ls, values, cis, verdict, colors, shown)
        unit = (bench.unit if bench else None) or ""
        ax.set_ylabel(f"Sel ({unit})" if unit else "Sel", fontsize=FONT)
        ax.set_title((bench.title if bench else None) or bench_name, fontsize=TITLE)
    handles = [Patch(facecolor=colors[m], label=m) for m in shown]
    handles.append(Line2D([], [], color="black", lw=0.8, label="Sel = 0 (no selectivity)"))
    if hatched:
        handles.append(
            Patch(facecolor="white", edgecolor="0.3", hatch="///", label="no selective set at k")
        )
    fig.legend(handles=handles, loc="outside right center", fontsize=SMALL, frameon=False)
    return fig


def _sel_panel(
    ax: Any,
    methods: list[str],
    langs: list[str],
    values: dict[str, dict[str, float]],
    cis: dict[str, dict[str, tuple[float, float] | None]],
    verdict: Any,
    colors: dict[str, Any],
    shown: dict[str, Any],
) -> bool:
    """Bars with whiskers on a linear axis; returns whether any bar is hatched."""
    hatched = False
    width = 0.8 / max(len(methods), 1)
    for k, method in enumerate(methods):
        for g, lang in enumerate(langs):
            value = values[method][lang]
            if not math.isfinite(value):
                continue
            x = g - 0.4 + width * (k + 0.5)
            shown[method] = colors[method]
            weak = verdict.get(method, {}).get(lang) == NOT_SELECTIVE
            hatched |= weak
            ax.bar(
                x, value, width=width * 0.92, color=colors[method],
                hatch="///" if weak else None, edgecolor="white" if weak else None, lw=0,
            )
            ci = cis[method][lang]
            if ci is not None and all(math.isfinite(c) for c in ci):
                err = [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]]
                ax.errorbar(
                    [x], [value], yerr=err, fmt="none", ecolor="black", elinewidth=1.0,
                    capsize=2.5,
                )
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(langs)))
    ax.set_xticklabels([language_label(x) for x in langs], fontsize=FONT)
    ax.set_xlim(-0.5, len(langs) - 0.5)
    ax.tick_params(labelsize=FONT)
    ax.grid(axis="y", color="0.9", lw=0.8)
    ax.set_axisbelow(True)
    return hatched


__all__ = ["selectivity_summary"]
