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


FRONTIER_LINES = (0.05, 0.2)
"""Off-target damages (bits per byte) marked on the frontier (``crane.study.assemble``)."""


def selectivity_frontier(results: StudyResults) -> Figure | None:
    """Own damage against mean off-target damage, one panel per language: each method's
    sweep from the empty set (0, 0) through its budgets with 95% intervals on both axes; the
    study's own sets at the main budget as large markers; dotted lines at the off-target
    levels of the frontier table; the grey diagonal is Sel = 0."""
    sweep = results.sweep
    if sweep is None or not sweep.methods:
        return None
    methods = [m for m in results.methods if sweep.methods.get(m)]
    langs = present(results.languages, *(sweep.methods[m] for m in methods))
    if not methods or not langs:
        return None
    colors = method_colors(results.methods)
    bench_name = sweep.benchmark or "bpb"
    main = results.metrics.get(bench_name, {})
    fig, panels = language_panels(
        langs, "Selectivity frontier: own damage against off-target damage", margin=2.6,
        height=3.4,
    )
    for ax, lang in panels:
        top = 0.0
        for method in methods:
            entry = sweep.methods[method].get(lang)
            if entry is None or not entry.target:
                continue
            xs = [0.0, *(as_float(v) for v in entry.off_target)]
            ys = [0.0, *(as_float(v) for v in entry.target)]
            ax.plot(xs, ys, color=colors[method], marker="o", ms=4, lw=1.6)
            if len(entry.target_ci) == len(entry.target) == len(entry.off_target_ci):
                _whiskers(ax, xs[1:], ys[1:], entry.off_target_ci, entry.target_ci, colors[method])
            top = max([top, *(y for y in ys if math.isfinite(y))])
        for method in results.methods:
            metric = main.get(method, {}).get(lang)
            if metric is None or metric.damage is None or metric.off_target is None:
                continue
            ax.plot(
                [metric.off_target], [metric.damage], marker="*", ms=11, ls="none",
                color=colors[method], markeredgecolor="black", markeredgewidth=0.6, zorder=5,
            )
            top = max(top, metric.damage)
        for level in FRONTIER_LINES:
            ax.axvline(level, color="0.5", ls=":", lw=1.0, zorder=0)
        ax.axline((0.0, 0.0), slope=1.0, color="0.7", lw=0.9, zorder=0)
        ax.axhline(0.0, color="0.6", lw=0.8, zorder=0)
        ax.axvline(0.0, color="0.6", lw=0.8, zorder=0)
        ax.set_ylim(min(-0.05, ax.get_ylim()[0]), top * 1.1 + 0.05)
        finish_panel(ax, lang)
    handles = [Line2D([], [], color=colors[m], lw=2.0, marker="o", ms=4, label=m) for m in methods]
    handles += [
        Line2D([], [], color="0.4", marker="*", ms=10, ls="none", label="study set (main budget)"),
        Line2D([], [], color="0.7", lw=0.9, label="Sel = 0"),
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=SMALL, frameon=False)
    fig.supxlabel("mean off-target damage (Δ bits/byte)", fontsize=FONT)
    fig.supylabel("own-language damage (Δ bits/byte)", fontsize=FONT)
    return fig


def _whiskers(ax, xs, ys, x_cis, y_cis, color) -> None:  # type: ignore[no-untyped-def]
    for x, y, xc, yc in zip(xs, ys, x_cis, y_cis, strict=True):
        if xc is None or yc is None or None in (*xc, *yc):
            continue
        ax.errorbar(
            [x], [y], xerr=[[max(0.0, x - xc[0])], [max(0.0, xc[1] - x)]],
            yerr=[[max(0.0, y - yc[0])], [max(0.0, yc[1] - y)]], fmt="none", ecolor=color,
            elinewidth=0.8, alpha=0.6, capsize=1.5,
        )


__all__ = ["budget_sweep", "selectivity_frontier"]
