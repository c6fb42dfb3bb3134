"""Where each method's neurons sit: neurons per layer, one panel per language."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from crane.report.style import FONT, SMALL, as_float, finish_panel, language_panels, method_colors
from crane.results import StudyResults


def layer_histograms(results: StudyResults) -> Figure | None:
    """Neurons per layer in each method's set: one panel per language, one line per method."""
    sets = results.sets
    methods = [m for m in results.methods if m in sets and sets[m].layer_counts]
    if not methods:
        return None

    def counts(method: str, lang: str) -> list[float] | None:
        raw = sets[method].layer_counts.get(lang)
        return [as_float(v) for v in raw] if raw else None

    langs = [x for x in results.languages if any(counts(m, x) is not None for m in methods)]
    if not langs:
        return None
    colors = method_colors(results.methods)
    title = "Where each method's neurons sit"
    fig, panels = language_panels(langs, title, margin=2.2, height=2.9, sharey=True)
    drawn: list[str] = []
    for ax, lang in panels:
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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=10))
        ax.set_ylim(bottom=0)
        finish_panel(ax, lang)
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


__all__ = ["layer_histograms"]
