"""What every report figure and table shares: sizes, colours, number formats, labels, rendering.

Figures are built from matplotlib ``Figure`` objects and rendered with ``FigureCanvasAgg``:
nothing touches pyplot's global state, so building a report never opens a window or changes a
user's backend. :func:`figure_png` gives PNG bytes that depend only on the figure;
:func:`figure_files` gives the same figure as PNG, PDF and SVG, each without a date or a random
id, so the same results give byte-identical files in every format. :func:`strip_titles` removes
a figure's title for papers, where the caption carries it.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from crane.data.languages import language_name
from crane.errors import LanguageError

DPI = 110
MAX_WIDTH = 12.0  # inches
FONT = 10  # axis labels, tick labels, cell values
SMALL = 9  # secondary text (intervals, reference labels); nothing is drawn smaller
TITLE = 11  # panel titles
SUPTITLE = 12  # figure titles

FIGURE_FORMATS = ("png", "pdf", "svg")  # every report figure is written in each

_TAB10 = [colormaps["tab10"](i) for i in range(10)]
RANDOM_COLOR = "#7f7f7f"


# ---- values -----------------------------------------------------------------------------------
def as_float(value: Any) -> float:
    """A number as float; ``nan`` for anything else (``None``: undefined, text, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def as_interval(value: Any) -> tuple[float, float] | None:
    """A ``(low, high)`` pair of finite numbers, or ``None``."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    low, high = as_float(value[0]), as_float(value[1])
    return (low, high) if math.isfinite(low) and math.isfinite(high) else None


def present(order: Iterable[str], *sections: Iterable[str]) -> list[str]:
    """The names of ``order`` (the study's languages or methods) that any section holds."""
    held = [set(section) for section in sections]
    return [name for name in order if any(name in h for h in held)]


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


def minus(text: str) -> str:
    """Typographic minus signs for figure text."""
    return text.replace("-", "\u2212")


# ---- names ------------------------------------------------------------------------------------
def language_label(code: str) -> str:
    """``"en"`` → ``"English (en)"``; an unknown code stays as it is."""
    try:
        return f"{language_name(code)} ({code})"
    except (LanguageError, KeyError, ValueError, TypeError):
        return str(code)


def safe_id(name: str) -> str:
    """A file-name-safe form of a benchmark or method name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "x"


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


# ---- figures ----------------------------------------------------------------------------------
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


# Vector output: matplotlib's defaults for saving, whatever the user's matplotlibrc says, then
# TrueType (Type 42) fonts in PDFs (venues' PDF checks reject Type 3), glyphs as paths in SVGs
# (no font needed to view them) and a fixed salt for the SVG ids (random otherwise).
_VECTOR_RC = {
    **{
        key: value
        for key, value in matplotlib.rcParamsDefault.items()
        if key.startswith(("savefig.", "pdf.", "svg."))
    },
    "pdf.fonttype": 42,
    "svg.fonttype": "path",
    "svg.hashsalt": "crane-neurons",
}
# No creation date: the same figure gives the same bytes (the producer names matplotlib's version).
_VECTOR_METADATA: dict[str, dict[str, Any]] = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}


def figure_files(fig: Figure) -> dict[str, bytes]:
    """Render ``fig`` as ``{"png": ..., "pdf": ..., "svg": ...}``, bytes that depend only on it.

    The PNG is drawn first (:func:`figure_png`, which runs the constrained layout); the layout is
    then frozen, so that the PDF and SVG show exactly the PNG's arrangement (a second layout pass
    would move things a little) and the figure no longer changes when drawn again.
    """
    png = figure_png(fig)
    fig.set_layout_engine("none")
    out = {"png": png}
    for fmt in FIGURE_FORMATS[1:]:
        buffer = io.BytesIO()
        with matplotlib.rc_context(_VECTOR_RC):
            fig.savefig(buffer, format=fmt, dpi=fig.dpi, metadata=_VECTOR_METADATA[fmt])
        out[fmt] = buffer.getvalue()
    return out


def strip_titles(fig: Figure) -> Figure:
    """Remove the title of ``fig`` (and of its subfigures) before it is drawn, for a paper whose
    caption carries the title; the layout then gives its room to the panels.

    Panel titles stay: they say which language, method or benchmark a panel shows (a caption
    cannot), as do axis labels and legends.
    """
    for part in [fig, *getattr(fig, "subfigs", [])]:
        title = getattr(part, "_suptitle", None)
        if title is not None:
            title.set_text("")
            title.set_visible(False)
            title.set_in_layout(False)
    return fig


def new_figure(width: float, height: float, title: str) -> Figure:
    """A constrained-layout figure at least as wide as its title needs, at most MAX_WIDTH."""
    title_width = max(len(line) for line in title.split("\n")) * 0.095 + 0.6
    fig = Figure(
        figsize=(min(MAX_WIDTH, max(width, title_width)), height), dpi=DPI, layout="constrained"
    )
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=SUPTITLE)
    return fig


def language_panels(
    langs: Sequence[str],
    title: str,
    *,
    margin: float,
    height: float,
    sharey: bool = False,
) -> tuple[Figure, list[tuple[Any, str]]]:
    """A figure with one panel per language, up to three a row (3.6 × ``height`` inches each,
    plus ``margin`` for the legend): the figure and its ``(axes, language)`` pairs."""
    ncols = min(len(langs), 3)
    nrows = math.ceil(len(langs) / ncols)
    fig = new_figure(margin + 3.6 * ncols, 1.3 + height * nrows, title)
    grid = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    for ax in grid.flat[len(langs) :]:
        ax.remove()
    return fig, list(zip(grid.flat, langs, strict=False))


def finish_panel(ax: Any, lang: str) -> None:
    """A language panel's title, tick labels and light grid behind the data."""
    ax.set_title(language_label(lang), fontsize=TITLE)
    ax.tick_params(labelsize=FONT)
    ax.grid(color="0.92", lw=0.8)
    ax.set_axisbelow(True)


def finite_max(values: Iterable[np.ndarray], *, absolute: bool = False) -> float:
    """The largest finite value (or magnitude) over ``values``; 1.0 when there is none or it
    is not positive (a colour scale's upper end)."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values])
    if absolute:
        finite = np.abs(finite)
    top = float(finite.max()) if finite.size else 1.0
    return top if top > 0 else 1.0


__all__ = [
    "FIGURE_FORMATS",
    "as_float",
    "as_interval",
    "figure_files",
    "figure_png",
    "finish_panel",
    "finite_max",
    "format_interval",
    "format_number",
    "language_label",
    "language_panels",
    "method_colors",
    "minus",
    "new_figure",
    "present",
    "safe_id",
    "strip_titles",
]
