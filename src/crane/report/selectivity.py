"""Selectivity: diagonal dominance DD per method and language, one panel per benchmark."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, NullLocator

from crane.report.style import (
    FONT,
    SMALL,
    TITLE,
    as_float,
    as_interval,
    format_number,
    language_label,
    method_colors,
    minus,
    new_figure,
    present,
)
from crane.results import NO_METRIC, StudyResults


def selectivity_summary(results: StudyResults) -> Figure | None:
    """Diagonal dominance DD per method (bars) and language (groups), one panel per benchmark."""
    panels = []
    for bench_name, per_method in results.metrics.items():
        ms = [m for m in results.methods if per_method.get(m)]
        ls = present(results.languages, *(per_method[m] for m in ms))
        values = {m: {x: as_float(per_method[m].get(x, NO_METRIC).dd) for x in ls} for m in ms}
        if any(math.isfinite(v) for per in values.values() for v in per.values()):
            cis = {
                m: {x: as_interval(per_method[m].get(x, NO_METRIC).dd_ci) for x in ls} for m in ms
            }
            panels.append((bench_name, ms, ls, values, cis))
    if not panels:
        return None
    colors = method_colors(results.methods)
    n_bars = max(len(p[1]) * len(p[2]) for p in panels)
    fig = new_figure(
        max(9.0, 4.0 + 0.32 * n_bars),
        1.1 + 3.4 * len(panels),
        "Diagonal dominance DD = own-language damage ÷ mean off-target damage",
    )
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    shown: dict[str, Any] = {}
    for ax, (bench_name, ms, ls, values, cis) in zip(axes, panels, strict=True):
        bench = results.benchmarks.get(bench_name)
        _dd_panel(ax, ms, ls, values, cis, colors, shown)
        ax.set_title((bench.title if bench else None) or bench_name, fontsize=TITLE)
    handles = [Patch(facecolor=colors[m], label=m) for m in shown]
    handles += [
        Line2D([], [], color="0.25", ls=":", lw=1.4, label="DD = 1 (no selectivity)"),
        Line2D([], [], color="#2a7d2a", ls="--", lw=1.4, label="5× target"),
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=SMALL, frameon=False)
    return fig


def _dd_panel(
    ax: Any,
    methods: list[str],
    langs: list[str],
    values: dict[str, dict[str, float]],
    cis: dict[str, dict[str, tuple[float, float] | None]],
    colors: dict[str, Any],
    shown: dict[str, Any],
) -> None:
    finite = [v for per in values.values() for v in per.values() if math.isfinite(v)]
    positive = [v for v in finite if v > 0]
    # the span includes the reference line at 1, which is always drawn
    use_log = bool(positive) and max([*positive, 1.0]) / min([*positive, 1.0]) > 20
    high = max([*finite, *(ci[1] for per in cis.values() for ci in per.values() if ci), 5.0])
    floor = 0.0
    if use_log:
        lows = [ci[0] for per in cis.values() for ci in per.values() if ci and ci[0] > 0]
        floor = min([*positive, *lows, 1.0]) / 2.5
    width = 0.8 / max(len(methods), 1)
    for k, method in enumerate(methods):
        for g, lang in enumerate(langs):
            value = values[method][lang]
            if not math.isfinite(value):
                continue
            x = g - 0.4 + width * (k + 0.5)
            shown[method] = colors[method]
            if use_log:
                top = max(value, floor)
                ax.bar(x, top - floor, bottom=floor, width=width * 0.92, color=colors[method])
                if value <= 0:
                    ax.plot(
                        [x],
                        [floor],
                        marker="v",
                        color=colors[method],
                        ms=7,
                        clip_on=False,
                        zorder=4,
                    )
                    ax.text(
                        x,
                        floor * 1.25,
                        minus(format_number(value, 2)),
                        rotation=90,
                        ha="center",
                        va="bottom",
                        fontsize=SMALL,
                        zorder=5,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"},
                    )
            else:
                ax.bar(x, value, width=width * 0.92, color=colors[method])
            ci = cis[method][lang]
            if ci is not None:
                low, up = (max(ci[0], floor), ci[1]) if use_log else ci
                shown_value = max(value, floor) if use_log else value
                err = [[max(0.0, shown_value - low)], [max(0.0, up - shown_value)]]
                ax.errorbar(
                    [x],
                    [shown_value],
                    yerr=err,
                    fmt="none",
                    ecolor="black",
                    elinewidth=1.0,
                    capsize=2.5,
                )
    ax.axhline(1.0, color="0.25", ls=":", lw=1.4, zorder=0)
    ax.axhline(5.0, color="#2a7d2a", ls="--", lw=1.4, zorder=0)
    ax.text(
        1.005,
        5.0,
        "5× target",
        transform=ax.get_yaxis_transform(),
        ha="left",
        va="center",
        fontsize=SMALL,
        color="#2a7d2a",
    )
    if use_log:
        ax.set_yscale("log")
        ax.set_ylim(floor, high * 2.0)
        # plain numbers on a 1-2-5 grid rather than powers of ten
        grid = [m * 10.0**e for e in range(-4, 7) for m in (1, 2, 5)]
        ticks = [t for t in grid if floor <= t <= high * 2.0]
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_yticklabels([f"{t:g}" for t in ticks])
    else:
        low = min([0.0, *finite, *(ci[0] for per in cis.values() for ci in per.values() if ci)])
        span = high - low
        ax.set_ylim(low - 0.05 * span if low < 0 else 0.0, high + 0.08 * span)
        ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(langs)))
    ax.set_xticklabels([language_label(x) for x in langs], fontsize=FONT)
    ax.set_xlim(-0.5, len(langs) - 0.5)
    ax.set_ylabel("DD (×, log scale)" if use_log else "DD (×)", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.grid(axis="y", color="0.9", lw=0.8)
    ax.set_axisbelow(True)


__all__ = ["selectivity_summary"]
