"""LaTeX tables of a study's results for a paper (``crane report RUN_DIR --latex``).

:func:`latex_tables` gives, as file name → text, one booktabs ``tabular`` per table (no
``table`` float, so a paper sets its own caption and label: ``\\input{...}`` it inside one):

- ``selectivity-<benchmark>.tex``: method × language rows; own-language damage, mean
  off-target damage and Sel with its 95% bootstrap interval, ``1.23 [0.80, 1.66]``;
- ``delta-<benchmark>.tex``: the masking matrix, method × masked language rows and one column
  per evaluated language, each cell the change Δ with its interval;
- ``unmasked.tex``: the unmasked value of every benchmark per language.

The numbers come from :class:`crane.results.StudyResults` as they are (nothing is recomputed);
one table uses the same decimals throughout (enough for three significant digits on its largest
magnitude, 2 to 4), a missing number is ``--``, a minus sign is ``$-$``. Every name from the
results (methods, benchmark titles, units) is escaped. Needs ``\\usepackage{booktabs}``.
Deterministic for given results.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from crane.report.style import as_float, as_interval, language_label, present, safe_id
from crane.results import NO_METRIC, BenchmarkResults, StudyResults

MISSING = "--"
_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}


def escape_latex(text: Any) -> str:
    """``text`` with LaTeX's special characters escaped for text mode: ``a_b & c`` →
    ``a\\_b \\& c``; line breaks become spaces."""
    flat = " ".join(str(text).split())
    return "".join(_SPECIAL.get(c, c) for c in flat)


def decimals_for(values: Iterable[Any]) -> int:
    """Decimals that give the largest finite magnitude among ``values`` three significant digits,
    at least 2 and at most 4 (2 when there is none)."""
    finite = [abs(x) for x in map(as_float, values) if math.isfinite(x)]
    top = max(finite, default=0.0)
    if top == 0:
        return 2
    return min(4, max(2, 2 - math.floor(math.log10(top))))


def latex_number(value: Any, decimals: int) -> str:
    """A number with ``decimals`` decimals and a typographic minus (``$-$0.25``); ``--`` for a
    missing or non-finite value."""
    x = as_float(value)
    if not math.isfinite(x):
        return MISSING
    text = f"{x:.{decimals}f}"
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", "$-$")


def with_interval(value: Any, interval: Any, decimals: int) -> str:
    """``1.23 [0.80, 1.66]``: a value and its 95% interval with the same decimals; the value
    alone when the interval is missing."""
    text = latex_number(value, decimals)
    bounds = as_interval(interval)
    if bounds is None:
        return text
    low, high = (latex_number(b, decimals) for b in bounds)
    return f"{text} [{low}, {high}]"


def _interval_ends(interval: Any) -> tuple[float, ...]:
    bounds = as_interval(interval)
    return bounds if bounds is not None else ()


def _tabular(
    comments: Sequence[str], align: str, header: Sequence[str], groups: Sequence[list[list[str]]]
) -> str:
    """A booktabs tabular: comment lines, the header row, then row groups split by midrules."""
    lines = [f"% {' '.join(c.split())}" for c in comments]  # a comment needs no escaping
    lines += [f"\\begin{{tabular}}{{{align}}}", "\\toprule", " & ".join(header) + r" \\"]
    for group in groups:
        lines.append("\\midrule")
        lines += [" & ".join(row) + r" \\" for row in group]
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def _benchmark_name(results: StudyResults, name: str) -> str:
    bench = results.benchmarks.get(name)
    title = bench.title if bench is not None and bench.title else name
    unit = f" ({bench.unit})" if bench is not None and bench.unit else ""
    return f"{title}{unit}"


def _selectivity(results: StudyResults) -> dict[str, str]:
    """One table per benchmark: damage, off-target damage and Sel [95% CI] per method × language."""
    tables = {}
    for name, per_method in results.metrics.items():
        methods = present(results.methods, per_method)
        cells = [
            (method, lang, per_method[method].get(lang, NO_METRIC))
            for method in methods
            for lang in present(results.languages, per_method[method])
        ]
        if not cells:
            continue
        d = decimals_for(
            v
            for _, _, m in cells
            for v in (m.damage, m.off_target, m.sel, *_interval_ends(m.sel_ci))
        )
        groups = []
        for method in methods:
            rows = []
            for m_name, lang, m in cells:
                if m_name != method:
                    continue
                rows.append(
                    [
                        escape_latex(method) if not rows else "",
                        escape_latex(language_label(lang)),
                        latex_number(m.damage, d),
                        latex_number(m.off_target, d),
                        with_interval(m.sel, m.sel_ci, d),
                    ]
                )
            groups.append(rows)
        comments = [
            f"crane study: selectivity on {_benchmark_name(results, name)}; "
            "needs \\usepackage{booktabs}",
            "Damage: harm on the masked language (larger = worse, in the benchmark's unit); "
            "off-target: mean damage on the other languages; Sel = damage - off-target, "
            "with its 95% bootstrap interval.",
        ]
        header = ["Method", "Language", "Own damage", "Off-target damage", r"Sel [95\% CI]"]
        tables[f"selectivity-{safe_id(name)}.tex"] = _tabular(comments, "llrrr", header, groups)
    return tables


def _delta_ci(bench: BenchmarkResults, method: str, masked: str, lang: str) -> Any:
    return bench.delta_ci.get(method, {}).get(masked, {}).get(lang)


def _deltas(results: StudyResults) -> dict[str, str]:
    """One table per benchmark: Δ [95% CI] per method × masked language (rows) and evaluated
    language (columns)."""
    tables = {}
    for name, bench in results.benchmarks.items():
        methods = present(results.methods, bench.delta)
        evaluated = present(
            results.languages, *(row for m in methods for row in bench.delta[m].values())
        )
        if not methods or not evaluated:
            continue
        entries = [
            (method, masked, bench.delta[method][masked])
            for method in methods
            for masked in present(results.languages, bench.delta[method])
        ]
        ci = partial(_delta_ci, bench)
        d = decimals_for(
            v
            for method, masked, row in entries
            for lang in evaluated
            for v in (row.get(lang), *_interval_ends(ci(method, masked, lang)))
        )
        groups = []
        for method in methods:
            rows = []
            for m_name, masked, row in entries:
                if m_name != method:
                    continue
                rows.append(
                    [
                        escape_latex(method) if not rows else "",
                        escape_latex(language_label(masked)),
                        *(with_interval(row.get(e), ci(method, masked, e), d) for e in evaluated),
                    ]
                )
            groups.append(rows)
        comments = [
            f"crane study: change on {_benchmark_name(results, name)} when a language's neurons "
            "are masked; needs \\usepackage{booktabs}",
            "Rows: method and masked language; columns: evaluated language; "
            "cells: masked minus unmasked value with its 95% bootstrap interval.",
        ]
        header = ["Method", "Masked", *(escape_latex(language_label(e)) for e in evaluated)]
        align = "ll" + "r" * len(evaluated)
        tables[f"delta-{safe_id(name)}.tex"] = _tabular(comments, align, header, groups)
    return tables


def _unmasked(results: StudyResults) -> dict[str, str]:
    """The unmasked value of every benchmark (columns) per language (rows)."""
    names = [name for name, bench in results.benchmarks.items() if bench.none]
    langs = present(results.languages, *(results.benchmarks[n].none for n in names))
    if not names or not langs:
        return {}
    decimals = {n: decimals_for(results.benchmarks[n].none.values()) for n in names}
    header = ["Language"]
    for name in names:
        bench = results.benchmarks[name]
        arrow = {True: r", $\uparrow$", False: r", $\downarrow$"}.get(bench.higher_is_better, "")
        unit = escape_latex(bench.unit) if bench.unit else ""
        label = escape_latex(bench.title or name)
        header.append(f"{label} ({unit}{arrow})" if unit or arrow else label)
    rows = [
        [
            escape_latex(language_label(lang)),
            *(latex_number(results.benchmarks[n].none.get(lang), decimals[n]) for n in names),
        ]
        for lang in langs
    ]
    comments = [
        "crane study: unmasked values per benchmark and language; needs \\usepackage{booktabs}",
        "Arrows: the direction that is better.",
    ]
    return {"unmasked.tex": _tabular(comments, "l" + "r" * len(names), header, [rows])}


def latex_tables(results: StudyResults) -> dict[str, str]:
    """The report's LaTeX tables: file name → text (deterministic for given results)."""
    tables: dict[str, str] = {}
    for part in (_selectivity, _deltas, _unmasked):
        tables |= part(results)
    return tables


__all__ = ["decimals_for", "escape_latex", "latex_number", "latex_tables", "with_interval"]
