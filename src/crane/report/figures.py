"""Figures of a study's results (docs/results.md), drawn with matplotlib's object API.

Every figure function takes the parsed ``study.json`` dict and returns a
:class:`matplotlib.figure.Figure`, or ``None`` when the study holds no data for it. Figures are
built from ``Figure`` objects and rendered with ``FigureCanvasAgg``: nothing touches pyplot's
global state, so building a report never opens a window or changes a user's backend.
:func:`figure_png` renders one to PNG bytes that depend only on the results (no software
version or date in the file), so the same results give byte-identical images.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

from crane.data.languages import language_name
from crane.errors import LanguageError

DPI = 110
MAX_WIDTH = 12.0  # inches
FONT = 10  # axis labels, tick labels, cell values
SMALL = 9  # secondary text (intervals, reference labels); nothing is drawn smaller
TITLE = 11  # panel titles
SUPTITLE = 12  # figure titles

_TAB10 = [colormaps["tab10"](i) for i in range(10)]
RANDOM_COLOR = "#7f7f7f"


# ---- values -----------------------------------------------------------------------------------
def as_float(value: Any) -> float:
    """A JSON number as float; ``nan`` for anything else (missing, ``null``, text, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def as_interval(value: Any) -> tuple[float, float] | None:
    """A ``[low, high]`` pair of finite numbers, or ``None``."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    low, high = as_float(value[0]), as_float(value[1])
    return (low, high) if math.isfinite(low) and math.isfinite(high) else None


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a dict, else an empty dict (a section the study did not write)."""
    return value if isinstance(value, dict) else {}


def format_number(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, without exponent for 0.001 ≤ |x| < 10⁴.

    ``0.494`` → ``"0.494"``, ``1.147`` → ``"1.15"``, ``0.0123`` → ``"0.0123"``, ``nan`` → ``"n/a"``.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    x = as_float(value)
    if not math.isfinite(x):
        return "n/a"
    x = float(f"{x:.{digits - 1}e}")  # round first, so 9.996 → 10.0, not 10.00
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude < -3 or magnitude >= 4:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - magnitude)
    text = f"{x:.{decimals}f}"
    return "0" if float(text) == 0 else text


def format_interval(interval: tuple[float, float] | None, digits: int = 2) -> str:
    """``[low, high]`` with the same decimals at both ends, enough to give the larger end
    ``digits`` significant digits: ``[0.0068, 0.040]`` → ``"[0.007, 0.040]"``; ``None`` → ``""``.
    """
    if interval is None:
        return ""
    low, high = interval
    largest = max(abs(low), abs(high))
    if not math.isfinite(largest):
        return "[n/a]"
    if largest == 0:
        return "[0, 0]"
    magnitude = math.floor(math.log10(largest))
    if magnitude < -3 or magnitude >= 4:
        return f"[{low:.{digits - 1}e}, {high:.{digits - 1}e}]"
    decimals = max(0, digits - 1 - magnitude)
    return f"[{low:.{decimals}f}, {high:.{decimals}f}]".replace("-0.000", "0.000")


def _minus(text: str) -> str:
    """Typographic minus signs for figure text."""
    return text.replace("-", "\u2212")


def language_label(code: str) -> str:
    """``"en"`` → ``"English (en)"``; an unknown code stays as it is."""
    try:
        return f"{language_name(code)} ({code})"
    except (LanguageError, KeyError, ValueError, TypeError):
        return str(code)


def safe_id(name: str) -> str:
    """A file-name-safe form of a benchmark or method name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "x"


def _ordered(preferred: Iterable[Any], found: Iterable[Any]) -> list[str]:
    out = [str(x) for x in preferred if isinstance(x, str)]
    out = list(dict.fromkeys(out))
    for key in found:
        if isinstance(key, str) and key not in out:
            out.append(key)
    return out


def languages_of(results: Mapping[str, Any]) -> list[str]:
    """The study's languages in its order, then any other language a section mentions."""
    found: list[str] = []
    for bench in as_dict(results.get("benchmarks")).values():
        found.extend(as_dict(as_dict(bench).get("none")))
    for per_method in as_dict(results.get("metrics")).values():
        for per_lang in as_dict(per_method).values():
            found.extend(as_dict(per_lang))
    for spec in as_dict(results.get("sets")).values():
        found.extend(as_dict(as_dict(spec).get("sizes")))
    langs = results.get("languages")
    return _ordered(langs if isinstance(langs, list) else [], found)


def methods_of(results: Mapping[str, Any]) -> list[str]:
    """The study's methods in its order, then any other method a section mentions."""
    found: list[str] = list(as_dict(results.get("sets")))
    for bench in as_dict(results.get("benchmarks")).values():
        found.extend(as_dict(as_dict(bench).get("delta")))
    for per_method in as_dict(results.get("metrics")).values():
        found.extend(as_dict(per_method))
    found.extend(as_dict(results.get("relevance")))
    found.extend(as_dict(as_dict(results.get("sweep")).get("methods")))
    methods = results.get("methods")
    return _ordered(methods if isinstance(methods, list) else [], found)


def method_colors(methods: Sequence[str]) -> dict[str, Any]:
    """One colour per method, stable for a given method list; ``random`` is grey."""
    palette = [c for i, c in enumerate(_TAB10) if i != 7]  # tab10's grey is random's
    colors: dict[str, Any] = {}
    i = 0
    for method in methods:
        if method == "random":
            colors[method] = RANDOM_COLOR
        else:
            colors[method] = palette[i % len(palette)]
            i += 1
    return colors


def figure_png(fig: Figure) -> bytes:
    """Render ``fig`` (at its own dpi) to PNG bytes that depend only on its content.

    One Agg draw (which runs the constrained layout), then Pillow's encoder with no text chunks:
    no software version and no date, so the same figure gives the same bytes.
    """
    from PIL import Image

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    buffer = io.BytesIO()
    Image.fromarray(rgba[..., :3].copy(), mode="RGB").save(buffer, format="png", optimize=False)
    return buffer.getvalue()


def _new_figure(width: float, height: float, title: str) -> Figure:
    """A constrained-layout figure at least as wide as its title needs, at most MAX_WIDTH."""
    title_width = max(len(line) for line in title.split("\n")) * 0.095 + 0.6
    fig = Figure(
        figsize=(min(MAX_WIDTH, max(width, title_width)), height), dpi=DPI, layout="constrained"
    )
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=SUPTITLE)
    return fig


# ---- heatmap grids ----------------------------------------------------------------------------
@dataclass
class _Panel:
    title: str
    matrix: np.ndarray  # [rows, cols], nan where absent
    main: list[list[str]]  # main annotation per cell
    sub: list[list[str]] | None = None  # second, smaller line per cell
    right: list[str] | None = None  # text to the right of each row
    diagonal: list[tuple[int, int]] | None = None  # cells to outline


def _text_color(cmap: Colormap, norm: Normalize, value: float) -> str:
    r, g, b, _ = cmap(norm(value))
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"


def _heatmap_grid(
    panels: list[_Panel],
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
    fig = _new_figure(width, height, title)
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
                ax.annotate(
                    panel.main[i][j],
                    (j, i),
                    xytext=(0, 6 if sub else 0),
                    textcoords="offset points",
                    ha="center",
                    va="center",
                    fontsize=FONT,
                    color=color,
                    annotation_clip=True,
                    clip_on=True,
                )
                if sub:
                    ax.annotate(
                        sub,
                        (j, i),
                        xytext=(0, -8),
                        textcoords="offset points",
                        ha="center",
                        va="center",
                        fontsize=SMALL,
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


# ---- 1. masking effect ------------------------------------------------------------------------
def masking_heatmaps(results: Mapping[str, Any], benchmark: str) -> Figure | None:
    """Δ (masked − unmasked) of one benchmark: one panel per method, rows = masked language,
    columns = evaluated language, diverging colours centred at 0 with red = damage."""
    bench = as_dict(as_dict(results.get("benchmarks")).get(benchmark))
    delta = as_dict(bench.get("delta"))
    delta_ci = as_dict(bench.get("delta_ci"))
    methods = [m for m in methods_of(results) if as_dict(delta.get(m))]
    if not methods:
        return None
    langs = languages_of(results)
    rows = _ordered(
        [x for x in langs if any(x in delta[m] for m in methods)],
        [x for m in methods for x in delta[m]],
    )
    cols = _ordered(
        [x for x in langs if any(x in as_dict(row) for m in methods for row in delta[m].values())],
        [x for m in methods for row in delta[m].values() for x in as_dict(row)],
    )
    if not rows or not cols:
        return None
    n_cols = len(cols)
    annotate, show_ci = n_cols <= 12, n_cols <= 8
    panels: list[_Panel] = []
    any_ci = False
    for method in methods:
        matrix = np.full((len(rows), n_cols), np.nan)
        main = [[""] * n_cols for _ in rows]
        sub = [[""] * n_cols for _ in rows]
        for i, masked in enumerate(rows):
            d_row = as_dict(delta[method].get(masked))
            ci_row = as_dict(as_dict(delta_ci.get(method)).get(masked))
            for j, evaluated in enumerate(cols):
                value = as_float(d_row.get(evaluated))
                matrix[i, j] = value
                if annotate:
                    main[i][j] = _minus(format_number(value))
                ci = as_interval(ci_row.get(evaluated))
                if show_ci and ci is not None and math.isfinite(value):
                    sub[i][j] = _minus(format_interval(ci))
                    any_ci = True
        diagonal = [(i, cols.index(x)) for i, x in enumerate(rows) if x in cols]
        panels.append(_Panel(method, matrix, main, sub, diagonal=diagonal))
    if not any_ci:
        for panel in panels:
            panel.sub = None
    finite = np.concatenate([p.matrix[np.isfinite(p.matrix)] for p in panels])
    vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    higher_is_better = bool(bench.get("higher_is_better", False))
    # red is damage: a rise for bits per byte, a fall for accuracy
    cmap = colormaps["RdBu" if higher_is_better else "RdBu_r"]
    unit = str(bench.get("unit") or "")
    name = str(bench.get("title") or benchmark)
    harm = (
        "negative Δ = damage (the score falls)"
        if higher_is_better
        else "positive Δ = damage (the value rises)"
    )
    cell_w = 1.25 if any_ci else (0.8 if annotate else 0.45)
    cell_h = 0.56 if any_ci else (0.45 if annotate else 0.35)
    return _heatmap_grid(
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


# ---- 2. selectivity ---------------------------------------------------------------------------
def selectivity_summary(results: Mapping[str, Any]) -> Figure | None:
    """Diagonal dominance DD per method (bars) and language (groups), one panel per benchmark."""
    metrics = as_dict(results.get("metrics"))
    methods = methods_of(results)
    langs = languages_of(results)
    panels = []
    for bench_name, per_method in metrics.items():
        per_method = as_dict(per_method)
        ms = [m for m in methods if as_dict(per_method.get(m))]
        ls = [x for x in langs if any(x in per_method[m] for m in ms)]
        values = {m: {x: as_float(as_dict(per_method[m].get(x)).get("dd")) for x in ls} for m in ms}
        if any(math.isfinite(v) for per in values.values() for v in per.values()):
            cis = {
                m: {x: as_interval(as_dict(per_method[m].get(x)).get("dd_ci")) for x in ls}
                for m in ms
            }
            panels.append((bench_name, ms, ls, values, cis))
    if not panels:
        return None
    colors = method_colors(methods)
    n_bars = max(len(p[1]) * len(p[2]) for p in panels)
    fig = _new_figure(
        max(9.0, 4.0 + 0.32 * n_bars),
        1.1 + 3.4 * len(panels),
        "Diagonal dominance DD = own-language damage ÷ mean off-target damage",
    )
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    benchmarks = as_dict(results.get("benchmarks"))
    shown: dict[str, Any] = {}
    for ax, (bench_name, ms, ls, values, cis) in zip(axes, panels, strict=True):
        bench = as_dict(benchmarks.get(bench_name))
        _dd_panel(ax, ms, ls, values, cis, colors, shown)
        ax.set_title(str(bench.get("title") or bench_name), fontsize=TITLE)
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
                        _minus(format_number(value, 2)),
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


# ---- 3. budget sweep --------------------------------------------------------------------------
def budget_sweep(results: Mapping[str, Any]) -> Figure | None:
    """Damage as the budget grows: one panel per language, solid = target language, dashed =
    mean over the other languages, one colour per method."""
    sweep = as_dict(results.get("sweep"))
    raw_budgets = sweep.get("budgets")
    budgets = [as_float(b) for b in raw_budgets] if isinstance(raw_budgets, list) else []
    per_method = as_dict(sweep.get("methods"))
    if not budgets or not all(math.isfinite(b) for b in budgets) or not per_method:
        return None
    n = len(budgets)
    methods = [m for m in methods_of(results) if as_dict(per_method.get(m))]
    langs = [x for x in languages_of(results) if any(x in per_method[m] for m in methods)]
    langs = _ordered(langs, [x for m in methods for x in per_method[m]])

    def series(method: str, lang: str, key: str) -> np.ndarray | None:
        raw = as_dict(per_method[method].get(lang)).get(key)
        if not isinstance(raw, list) or len(raw) != n:
            return None
        return np.array([as_float(v) for v in raw])

    if not any(series(m, x, "target") is not None for m in methods for x in langs):
        return None
    colors = method_colors(methods_of(results))
    ncols = min(len(langs), 3)
    nrows = math.ceil(len(langs) / ncols)
    bench_name = str(sweep.get("benchmark") or "bpb")
    bench = as_dict(as_dict(results.get("benchmarks")).get(bench_name))
    unit = str(bench.get("unit") or ("bits/byte" if bench_name == "bpb" else ""))
    title = f"Damage as the budget grows ({bench.get('title') or bench_name})"
    fig = _new_figure(2.4 + 3.6 * ncols, 1.3 + 3.0 * nrows, title)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    x = np.array(budgets) * 100.0
    log_x = min(budgets) > 0 and max(budgets) / min(budgets) >= 4
    for k, ax in enumerate(grid.flat):
        if k >= len(langs):
            ax.remove()
            continue
        lang = langs[k]
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
        ax.set_title(language_label(lang), fontsize=TITLE)
        ax.tick_params(labelsize=FONT)
        ax.grid(color="0.92", lw=0.8)
        ax.set_axisbelow(True)
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


# ---- 4. layers --------------------------------------------------------------------------------
def layer_histograms(results: Mapping[str, Any]) -> Figure | None:
    """Neurons per layer in each method's set: one panel per language, one line per method."""
    sets = as_dict(results.get("sets"))
    methods = [m for m in methods_of(results) if as_dict(as_dict(sets.get(m)).get("layer_counts"))]
    if not methods:
        return None

    def counts(method: str, lang: str) -> list[float] | None:
        raw = as_dict(sets[method].get("layer_counts")).get(lang)
        return [as_float(v) for v in raw] if isinstance(raw, list) and raw else None

    langs = [x for x in languages_of(results) if any(counts(m, x) is not None for m in methods)]
    if not langs:
        return None
    colors = method_colors(methods_of(results))
    ncols = min(len(langs), 3)
    nrows = math.ceil(len(langs) / ncols)
    fig = _new_figure(2.2 + 3.6 * ncols, 1.3 + 2.9 * nrows, "Where each method's neurons sit")
    grid = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    drawn: list[str] = []
    for k, ax in enumerate(grid.flat):
        if k >= len(langs):
            ax.remove()
            continue
        lang = langs[k]
        for method in methods:
            values = counts(method, lang)
            if values is None:
                continue
            is_random = method == "random"
            ax.step(
                range(len(values)),
                values,
                where="mid",
                color=colors[method],
                lw=1.4 if is_random else 1.9,
                ls="--" if is_random else "-",
                zorder=3 if is_random else 2,
            )
            if method not in drawn:
                drawn.append(method)
        ax.set_title(language_label(lang), fontsize=TITLE)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=10))
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=FONT)
        ax.grid(color="0.92", lw=0.8)
        ax.set_axisbelow(True)
    handles = [
        Line2D([], [], color=colors[m], lw=2.0, ls="--" if m == "random" else "-", label=m)
        for m in drawn
    ]
    fig.legend(
        handles=handles,
        loc="outside right center",
        title="method",
        title_fontsize=SMALL,
        fontsize=SMALL,
        frameon=False,
    )
    fig.supxlabel("layer (0 = first)", fontsize=FONT)
    fig.supylabel("neurons in the set", fontsize=FONT)
    return fig


# ---- 5. overlap -------------------------------------------------------------------------------
def _jaccard_text(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if value >= 0.095 or value == 0 else f"{value:.3f}"


def _jaccard_figure(
    nested: Mapping[str, Any],
    groups: list[str],
    items: list[str],
    *,
    group_label: Callable[[str], str],
    item_label: Callable[[str], str],
    title: str,
    axis: str,
    label_w: float,
) -> Figure | None:
    panels = []
    used_items = [i for i in items if any(i in as_dict(nested.get(g)) for g in groups)]
    if len(used_items) < 2:
        return None
    for group in groups:
        table = as_dict(nested.get(group))
        if not table:
            continue
        n = len(used_items)
        matrix = np.full((n, n), np.nan)
        main = [[""] * n for _ in range(n)]
        for i, a in enumerate(used_items):
            for j, b in enumerate(used_items):
                value = as_float(as_dict(table.get(a)).get(b))
                if i == j and math.isfinite(value):
                    main[i][j] = _jaccard_text(value)
                    continue  # the diagonal (1 by definition) stays grey
                matrix[i, j] = value
                main[i][j] = _jaccard_text(value)
        panels.append(_Panel(group_label(group), matrix, main))
    if not panels:
        return None
    finite = np.concatenate([p.matrix[np.isfinite(p.matrix)] for p in panels])
    vmax = float(finite.max()) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    n = len(used_items)
    return _heatmap_grid(
        panels,
        [item_label(i) for i in used_items],
        [item_label(i) for i in used_items],
        cmap=colormaps["Blues"],
        norm=Normalize(0.0, vmax),
        colorbar_label="Jaccard index (diagonal = 1, grey)",
        title=title,
        xlabel=axis,
        ylabel=axis,
        cell_w=0.62 if n <= 8 else 0.45,
        cell_h=0.42 if n <= 8 else 0.34,
        label_w=label_w,
    )


def overlap_between_methods(results: Mapping[str, Any]) -> Figure | None:
    """Jaccard index between the methods' sets, one panel per language."""
    nested = as_dict(as_dict(results.get("overlap")).get("between_methods"))
    return _jaccard_figure(
        nested,
        _ordered(languages_of(results), nested),
        methods_of(results),
        group_label=language_label,
        item_label=str,
        title="Overlap between methods' neuron sets (Jaccard index)",
        axis="method",
        label_w=1.3,
    )


def overlap_between_languages(results: Mapping[str, Any]) -> Figure | None:
    """Jaccard index between languages' sets, one panel per method."""
    nested = as_dict(as_dict(results.get("overlap")).get("between_languages"))
    return _jaccard_figure(
        nested,
        _ordered(methods_of(results), nested),
        languages_of(results),
        group_label=str,
        item_label=language_label,
        title="Overlap between languages' neuron sets (Jaccard index)",
        axis="language",
        label_w=1.8,
    )


# ---- 6. relevance -----------------------------------------------------------------------------
def relevance_capture(results: Mapping[str, Any]) -> Figure | None:
    """Relevance capture RC (% of each language's positive relevance inside a set) per method,
    rows = the set's language, columns = the language whose relevance is measured; RS at right."""
    relevance = as_dict(results.get("relevance"))
    methods = [m for m in methods_of(results) if as_dict(relevance.get(m))]
    if not methods:
        return None
    langs = languages_of(results)
    rows = _ordered(
        [x for x in langs if any(x in relevance[m] for m in methods)],
        [x for m in methods for x in relevance[m]],
    )
    cols = _ordered(
        [
            x
            for x in langs
            if any(
                x in as_dict(as_dict(r).get("rc")) for m in methods for r in relevance[m].values()
            )
        ],
        [x for m in methods for r in relevance[m].values() for x in as_dict(as_dict(r).get("rc"))],
    )
    if not rows or not cols:
        return None
    panels = []
    for method in methods:
        matrix = np.full((len(rows), len(cols)), np.nan)
        main = [[""] * len(cols) for _ in rows]
        right = []
        for i, masked in enumerate(rows):
            entry = as_dict(relevance[method].get(masked))
            rc = as_dict(entry.get("rc"))
            for j, evaluated in enumerate(cols):
                value = as_float(rc.get(evaluated)) * 100.0
                matrix[i, j] = value
                main[i][j] = f"{format_number(value, 2)}%" if math.isfinite(value) else "n/a"
            rs = as_float(entry.get("rs"))
            right.append(f"RS {format_number(rs, 2)}" if math.isfinite(rs) else "")
        diagonal = [(i, cols.index(x)) for i, x in enumerate(rows) if x in cols]
        panels.append(_Panel(method, matrix, main, right=right, diagonal=diagonal))
    finite = np.concatenate([p.matrix[np.isfinite(p.matrix)] for p in panels])
    vmax = float(finite.max()) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    return _heatmap_grid(
        panels,
        [language_label(x) for x in rows],
        [language_label(x) for x in cols],
        cmap=colormaps["Purples"],
        norm=Normalize(0.0, vmax),
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


# ---- all figures ------------------------------------------------------------------------------
def _masking_caption(results: Mapping[str, Any], benchmark: str) -> str:
    bench = as_dict(as_dict(results.get("benchmarks")).get(benchmark))
    unit = bench.get("unit") or "units of the benchmark"
    direction = (
        "a fall is damage, so damage shows as negative Δ"
        if bench.get("higher_is_better")
        else "a rise is damage"
    )
    return (
        f"Masking effect on {bench.get('title') or benchmark}. Each panel is one method. Row: "
        "the language whose neurons were masked; column: the language evaluated. The number is "
        f"Δ = masked − unmasked in {unit} ({direction}); the bracket below it is its 95% "
        "bootstrap interval. Red cells are damage, blue cells improvement; all panels share "
        "one colour scale. The outlined diagonal is own-language damage: a language-specific "
        "set has strong red on the diagonal and pale cells elsewhere."
    )


CAPTIONS: dict[str, str] = {
    "selectivity": (
        "Diagonal dominance DD_L = D_L(L) ÷ mean over E≠L of D_L(E): how many times more a set "
        "damages its own language than the others, per benchmark. Bars: methods, grouped by "
        "language; whiskers: 95% bootstrap interval. The dotted line at 1 means no "
        "selectivity, the dashed line marks the 5× target. A log axis is used when values span "
        "more than 20×; a DD at or below zero (off-target improvement or no own damage) is then "
        "drawn as a ▼ at the bottom with its value."
    ),
    "sweep": (
        "Budget sweep: damage on the target language (solid) and the mean damage on the other "
        "languages (dashed, open markers) as the number of masked neurons grows, in % of all "
        "MLP neurons. A selective method keeps the dashed line near zero while the solid line "
        "rises."
    ),
    "layers": (
        "Layer distribution: how many of each method's neurons sit in each layer, one panel per "
        "language. The random control is layer-matched to the CRANE sets, so its dashed grey "
        "line lies on top of CRANE's."
    ),
    "overlap-methods": (
        "Overlap between methods: Jaccard index |A ∩ B| ÷ |A ∪ B| of two methods' sets for the "
        "same language. The diagonal (a set with itself, 1) is grey so that the colour scale "
        "shows the off-diagonal values; 0 means the methods picked disjoint neurons."
    ),
    "overlap-languages": (
        "Overlap between languages: Jaccard index of two languages' sets within one method. "
        "Low values mean the method finds different neurons for different languages; the "
        "grey diagonal is 1 by definition."
    ),
    "relevance": (
        "Relevance capture: RC_L(E), the share (%) of language E's positive relevance that "
        "falls on the neurons of L's set (rows: the set's language L, columns: E). The outlined "
        "diagonal is a set's own language. RS_L at the right of each row is RC_L(L) ÷ mean "
        "RC_L(E) over the other languages; above 1 the set holds its own language's relevance "
        "preferentially."
    ),
}


def make_figures(results: Mapping[str, Any]) -> list[tuple[str, str, Figure]]:
    """Every figure the results support, as ``(id, caption, figure)`` in report order."""
    out: list[tuple[str, str, Figure]] = []
    for benchmark in as_dict(results.get("benchmarks")):
        fig = masking_heatmaps(results, benchmark)
        if fig is not None:
            out.append((f"masking-{safe_id(benchmark)}", _masking_caption(results, benchmark), fig))
    makers: list[tuple[str, Callable[[Mapping[str, Any]], Figure | None]]] = [
        ("selectivity", selectivity_summary),
        ("sweep", budget_sweep),
        ("layers", layer_histograms),
        ("overlap-methods", overlap_between_methods),
        ("overlap-languages", overlap_between_languages),
        ("relevance", relevance_capture),
    ]
    for fig_id, maker in makers:
        fig = maker(results)
        if fig is not None:
            out.append((fig_id, CAPTIONS[fig_id], fig))
    return out


__all__ = [
    "budget_sweep",
    "figure_png",
    "format_number",
    "language_label",
    "layer_histograms",
    "make_figures",
    "masking_heatmaps",
    "method_colors",
    "overlap_between_languages",
    "overlap_between_methods",
    "relevance_capture",
    "selectivity_summary",
]
