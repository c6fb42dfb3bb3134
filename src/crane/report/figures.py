"""Figures of a study's results (docs/results.md), drawn with matplotlib's object API.

Every figure function takes :class:`crane.results.StudyResults` and returns a
:class:`matplotlib.figure.Figure`, or ``None`` when the study holds no data for it;
:func:`make_figures` assembles them in report order with their captions. The figures live in
one module each (heatmaps, selectivity, sweep, layers, overlap, relevance); :func:`figure_png`
renders one to PNG bytes that depend only on the results.
"""

from __future__ import annotations

from collections.abc import Callable

from matplotlib.figure import Figure

from crane.report.heatmaps import masking_caption, masking_heatmaps
from crane.report.layers import layer_histograms
from crane.report.overlap import overlap_between_languages, overlap_between_methods
from crane.report.relevance import relevance_capture
from crane.report.selectivity import selectivity_summary
from crane.report.style import figure_png, format_number, language_label, method_colors, safe_id
from crane.report.sweep import budget_sweep, selectivity_frontier
from crane.results import StudyResults

CAPTIONS: dict[str, str] = {
    "selectivity": (
        "Selectivity Sel_L = D_L(L) − mean over E≠L of D_L(E): how much more a set damages its "
        "own language than the others on average, in the benchmark's unit, per benchmark. "
        "Bars: methods, grouped by language; whiskers: 95% bootstrap interval. A hatched bar "
        "is a set whose Sel does not clear the layer-matched random control (paired 95% "
        "interval of the difference not above 0; for a benchmark run without the controls, "
        "Sel's own interval not above 0): no selective set at that budget."
    ),
    "sweep": (
        "Budget sweep: damage on the target language (solid) and the mean damage on the other "
        "languages (dashed, open markers) as the number of masked neurons grows, in % of all "
        "MLP neurons. A selective method keeps the dashed line near zero while the solid line "
        "rises."
    ),
    "frontier": (
        "Selectivity frontier: for each method, the own-language damage (y) against the mean "
        "damage on the other languages (x) of its sweep sets, from the empty set at (0, 0) "
        "through each budget; whiskers: 95% bootstrap intervals on both axes. Stars: the "
        "study's sets at the main budget. A better method lies higher at the same x; the "
        "dotted lines mark the off-target damages at which the frontier table reads the own "
        "damage (interpolated), the grey diagonal is Sel = 0."
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


def make_figures(results: StudyResults) -> list[tuple[str, str, Figure]]:
    """Every figure the results support, as ``(id, caption, figure)`` in report order."""
    out: list[tuple[str, str, Figure]] = []
    for benchmark in results.benchmarks:
        fig = masking_heatmaps(results, benchmark)
        if fig is not None:
            out.append((f"masking-{safe_id(benchmark)}", masking_caption(results, benchmark), fig))
    makers: list[tuple[str, Callable[[StudyResults], Figure | None]]] = [
        ("selectivity", selectivity_summary),
        ("sweep", budget_sweep),
        ("frontier", selectivity_frontier),
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
    "CAPTIONS",
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
    "safe_id",
    "selectivity_frontier",
    "selectivity_summary",
]
