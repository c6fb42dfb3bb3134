"""Grids of annotated heatmaps (small multiples sharing one colour scale), and the masking
effect figure: Δ per masked × evaluated language, one panel per method."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from crane.report.style import (
    FONT,
    MAX_WIDTH,
    SMALL,
    TITLE,
    as_float,
    as_interval,
    finite_max,
    format_interval,
    format_number,
    language_label,
    minus,
    new_figure,
    present,
)
from crane.results import StudyResults


@dataclass
class Panel:
    """One heatmap of a grid: values, the text in each cell, and optional extras."""

    title: str
    matrix: np.ndarray  # [rows, cols], nan where absent
    main: list[list[str]]  # main annotation per cell
    sub: list[list[str]] | None = None  # second, smaller line per cell
    right: list[str] | None = None  # text to the right of each row
    diagonal: list[tuple[int, int]] | None = None  # cells to outline


def _text_color(cmap: Colormap, norm: Normalize, value: float) -> str:
    r, g, b, _ = cmap(norm(value))
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"


def heatmap_grid(
    panels: list[Panel],
    rows: list[str],
    cols: list[str],
    *,
    cmap: Colormap,
    norm: Normalize,
    colorbar_label: str,
    title: str,
    xlabel: str,
    ylabel: str,
    cell_w: float,
    cell_h: float,
    label_w: float,
    right_w: float = 0.0,
) -> Figure:
    """Small multiples of annotated heatmaps sharing rows, columns and one colour scale."""
    n_rows, n_cols = len(rows), len(cols)
    cbar_w, gap = 1.1, 0.3
    room = MAX_WIDTH - label_w - cbar_w
    cell_w = min(cell_w, (room - gap - right_w) / max(n_cols, 1))
    panel_w = n_cols * cell_w + right_w
    ncols = max(1, min(len(panels), int(room // (panel_w + gap))))
    nrows = math.ceil(len(panels) / ncols)
    width = label_w + ncols * (panel_w + gap) + cbar_w
    xlabels_h = 1.0  # rotated tick labels and the axis label under the bottom row
    height = 0.9 + title.count("\n") * 0.25 + nrows * (n_rows * cell_h + 0.45) + xlabels_h
    fig = new_figure(width, height, title)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    used = []
    cmap = cmap.with_extremes(bad="#d9d9d9")
    image = None
    for k, ax in enumerate(grid.flat):
        if k >= len(panels):
            ax.remove()
            continue
        panel = panels[k]
        used.append(ax)
        r, c = divmod(k, ncols)
        image = ax.imshow(panel.matrix, cmap=cmap, norm=norm, aspect="auto")
        ax.set_title(panel.title, fontsize=TITLE)
        has_below = k + ncols < len(panels)
        ax.set_xticks(range(n_cols))
        if has_below:
            ax.set_xticklabels([])
        else:
            ax.set_xticklabels(cols, rotation=30, ha="right", rotation_mode="anchor", fontsize=FONT)
        ax.set_yticks(range(n_rows))
        ax.set_yticklabels(rows if c == 0 else [], fontsize=FONT)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        for i in range(n_rows):
            for j in range(n_cols):
                value = panel.matrix[i, j]
                color = _text_color(cmap, norm, value) if math.isfinite(value) else "black"
                sub = panel.sub[i][j] if panel.sub else ""
                # two lines a fixed distance apart (points), whatever the cell's height; clipped
                # to the axes: inside anyway, and so left out of the layout computation
                lines = [(panel.main[i][j], 6 if sub else 0, FONT)]
                for text, offset, size in lines + ([(sub, -8, SMALL)] if sub else []):
                    ax.annotate(
                        text,
                        (j, i),
                        xytext=(0, offset),
                        textcoords="offset points",
                        ha="center",
                        va="center",
                        fontsize=size,
                        color=color,
                        annotation_clip=True,
                        clip_on=True,
                    )
        for i, j in panel.diagonal or []:
            ax.add_patch(
                Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2.0, ec="black", clip_on=False)
            )
        for i, text in enumerate(panel.right or []):
            ax.text(
                n_cols - 0.5 + 0.08, i, text, ha="left", va="center", fontsize=SMALL, clip_on=False
            )
        ax.set_xlim(-0.5, n_cols - 0.5)
        ax.set_ylim(n_rows - 0.5, -0.5)
    assert image is not None
    cbar = fig.colorbar(image, ax=used, aspect=12 + 8 * nrows)
    cbar.set_label(colorbar_label, fontsize=FONT)
    cbar.ax.tick_params(labelsize=SMALL)
    fig.supxlabel(xlabel, fontsize=FONT)
    fig.supylabel(ylabel, fontsize=FONT)
    return fig


def masking_heatmaps(results: StudyResults, benchmark: str) -> Figure | None:
    """Δ (masked − unmasked) of one benchmark: one panel per method, rows = masked language,
    columns = evaluated language, diverging colours centred at 0 with red = damage."""
    bench = results.benchmarks.get(benchmark)
    if bench is None:
        return None
    delta, delta_ci = bench.delta, bench.delta_ci
    methods = [m for m in results.methods if delta.get(m)]
    rows = present(results.languages, *(delta[m] for m in methods))
    cols = present(results.languages, *(row for m in methods for row in delta[m].values()))
    if not rows or not cols:
        return None
    n_cols = len(cols)
    annotate, show_ci = n_cols <= 12, n_cols <= 8
    panels: list[Panel] = []
    any_ci = False
    for method in methods:
        matrix = np.full((len(rows), n_cols), np.nan)
        main = [[""] * n_cols for _ in rows]
        sub = [[""] * n_cols for _ in rows]
        for i, masked in enumerate(rows):
            d_row = delta[method].get(masked, {})
            ci_row = delta_ci.get(method, {}).get(masked, {})
            for j, evaluated in enumerate(cols):
                value = as_float(d_row.get(evaluated))
                matrix[i, j] = value
                if annotate:
                    main[i][j] = minus(format_number(value))
                ci = as_interval(ci_row.get(evaluated))
                if show_ci and ci is not None and math.isfinite(value):
                    sub[i][j] = minus(format_interval(ci))
                    any_ci = True
        diagonal = [(i, cols.index(x)) for i, x in enumerate(rows) if x in cols]
        panels.append(Panel(method, matrix, main, sub, diagonal=diagonal))
    if not any_ci:
        for panel in panels:
            panel.sub = None
    vmax = finite_max([p.matrix for p in panels], absolute=True)
    higher_is_better = bool(bench.higher_is_better)
    # red is damage: a rise for bits per byte, a fall for accuracy
    cmap = colormaps["RdBu" if higher_is_better else "RdBu_r"]
    unit = bench.unit or ""
    name = bench.title or benchmark
    harm = (
        "negative Δ = damage (the score falls)"
        if higher_is_better
        else "positive Δ = damage (the value rises)"
    )
    cell_w = 1.25 if any_ci else (0.8 if annotate else 0.45)
    cell_h = 0.56 if any_ci else (0.45 if annotate else 0.35)
    return heatmap_grid(
        panels,
        [language_label(x) for x in rows],
        [language_label(x) for x in cols],
        cmap=cmap,
        norm=Normalize(-vmax, vmax),
        colorbar_label=f"Δ {unit}".strip(),
        title=f"{name}: change when one language's neurons are masked\n{harm}; red = damage",
        xlabel="evaluated on",
        ylabel="masked neurons of",
        cell_w=cell_w,
        cell_h=cell_h,
        label_w=1.6,
    )


def masking_caption(results: StudyResults, benchmark: str) -> str:
    """The report's caption of :func:`masking_heatmaps` for ``benchmark``."""
    bench = results.benchmarks[benchmark]
    unit = bench.unit or "units of the benchmark"
    direction = (
        "a fall is damage, so damage shows as negative Δ"
        if bench.higher_is_better
        else "a rise is damage"
    )
    return (
        f"Masking effect on {bench.title or benchmark}. Each panel is one method. Row: "
        "the language whose neurons were masked; column: the language evaluated. The number is "
        f"Δ = masked − unmasked in {unit} ({direction}); the bracket below it is its 95% "
        "bootstrap interval. Red cells are damage, blue cells improvement; all panels share "
        "one colour scale. The outlined diagonal is own-language damage: a language-specific "
        "set has strong red on the diagonal and pale cells elsewhere."
    )


__all__ = ["Panel", "heatmap_grid", "masking_caption", "masking_heatmaps"]
