"""One self-contained HTML page of a study's results: inline CSS, figures as data URIs.

The page loads nothing from anywhere (no scripts, fonts, stylesheets or images by URL), so it can
be mailed or archived as one file. Every piece of text from the results is escaped.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from html import escape
from typing import Any

from crane.report.style import (
    as_float,
    as_interval,
    format_interval,
    format_number,
    language_label,
    present,
)
from crane.results import MIN_UNITS, NO_METRIC, NOT_SELECTIVE, SELECTIVE, StudyResults

_CSS = """
:root { --fg: #1d1d1f; --muted: #5f6368; --line: #d9dce1; --soft: #f5f6f8; --accent: #2a5599; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: #fff; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.3em; margin: 36px 0 10px; padding-bottom: 4px;
     border-bottom: 2px solid var(--line); }
h3 { font-size: 1.08em; margin: 22px 0 6px; }
p.lead { color: var(--muted); margin: 0 0 18px; }
nav { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
      padding: 8px 14px; font-size: 0.92em; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 12px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 0.9em;
        font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 9px; text-align: right; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
th.row, td.row { text-align: left; }
td .ci { display: block; color: var(--muted); font-size: 0.86em; }
td.hit { background: #e7f4e7; }
td.na { color: var(--muted); }
td.weak { background: #f6ecec; }
p.warn { color: #8a4b00; }
figure { margin: 18px 0 30px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.92em; max-width: 980px; margin-top: 6px; }
ul.notes li { margin: 3px 0; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: 10px;
      overflow-x: auto; font-size: 0.85em; }
.muted { color: var(--muted); }
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    return _e(format_number(value, digits))


def _seconds(value: Any) -> str:
    x = as_float(value)
    if not math.isfinite(x):
        return "n/a"
    if x < 60:
        return f"{x:.1f} s"
    minutes, secs = divmod(round(x), 60)
    hours, minutes = divmod(minutes, 60)
    long = f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"
    return f"{x:.1f} s ({long})"


def _value_cell(value: Any, ci: Any = None, *, extra_class: str = "") -> str:
    x = as_float(value)
    interval = as_interval(ci)
    classes = " ".join(c for c in (extra_class, "" if math.isfinite(x) else "na") if c)
    attr = f' class="{classes}"' if classes else ""
    inner = _num(x)
    if interval is not None and math.isfinite(x):
        inner += f'<span class="ci">{_e(format_interval(interval, 3))}</span>'
    return f"<td{attr}>{inner}</td>"


# ---- sections ---------------------------------------------------------------------------------
def _model_name(results: StudyResults, default: str) -> str:
    model = results.model
    return str(model.spec or model.details.get("id") or default)


def _header(results: StudyResults) -> str:
    model = results.model
    facts: list[tuple[str, str]] = []
    facts.append(("Model", _e(_model_name(results, "unknown"))))
    n_layers, d_ff = model.n_layers, model.d_ff
    if n_layers is not None and d_ff is not None:
        total = n_layers * d_ff
        facts.append(("Layers × d_ff", f"{n_layers} × {d_ff} = {total:,} MLP neurons"))
    for key, label in (("dtype", "Dtype"), ("revision", "Revision"), ("sha256", "SHA-256")):
        if model.details.get(key):
            facts.append((label, f"<code>{_e(model.details[key])}</code>"))
    langs = ", ".join(language_label(x) for x in results.languages)
    facts.append(("Languages", _e(langs) or "none"))
    facts.append(("Methods", _e(", ".join(results.methods)) or "none"))
    for label, text in (
        ("Reference method", results.reference_method),
        ("Relevance from", results.relevance_source),
        ("Identification corpus", results.identify_corpus),
    ):
        if text:
            facts.append((label, _e(text)))
    if results.seed is not None:
        facts.append(("Seed", _e(results.seed)))
    if results.seconds is not None:
        facts.append(("Wall time", _e(_seconds(results.seconds))))
    out = ['<dl class="facts">']
    out += [f"<dt>{label}</dt><dd>{value}</dd>" for label, value in facts]
    out.append("</dl>")
    stages = results.stage_seconds
    if stages:
        out.append("<h3>Stage times</h3>")
        out.append('<div class="scroll"><table><tr><th class="row">stage</th><th>seconds</th></tr>')
        for stage, secs in stages.items():
            out.append(f'<tr><td class="row">{_e(stage)}</td><td>{_e(_seconds(secs))}</td></tr>')
        out.append("</table></div>")
    return "\n".join(out)


def _few_units(results: StudyResults, name: str) -> str:
    """A warning when the benchmark's intervals rest on fewer than :data:`MIN_UNITS` units."""
    bench = results.benchmarks.get(name)
    if bench is None:
        return ""
    few = {x: n for x, n in bench.items.items() if isinstance(n, int) and n < MIN_UNITS}
    if not few:
        return ""
    listed = ", ".join(f"{language_label(x)} {n}" for x, n in few.items())
    return (
        f'<p class="warn">Warning: these intervals rest on fewer than {MIN_UNITS} texts or '
        f"items per language ({_e(listed)}); a bootstrap over so few units is rough.</p>"
    )


def _summary(results: StudyResults) -> str:
    metrics = results.metrics
    out = [
        "<p>Per benchmark, method (rows) and masked language: <b>Sel</b> = own damage − mean "
        "damage on the other languages (the headline), the <b>damage</b> D<sub>L</sub>(L) on "
        "the masked language itself (Δ for bits per byte, −Δ for accuracy, so larger is more "
        "harm), the mean <b>off-target</b> damage, and <b>DD</b> = own ÷ off-target damage "
        "(secondary: it explodes when the others barely move), each with its 95% bootstrap "
        "interval. A Sel cell marked “no selective set at k” does not clear the layer-matched "
        "random control (the paired interval of the difference is not above 0; for a benchmark "
        "run without the controls, Sel's own interval is not above 0).</p>"
    ]
    if not metrics:
        return '<p class="muted">This study computed no metrics.</p>'
    for name, per_method in metrics.items():
        bench = results.benchmarks.get(name)
        methods = [m for m in results.methods if per_method.get(m)]
        bench_langs = present(results.languages, *(per_method[m] for m in methods))
        title = (bench.title if bench else None) or name
        unit = bench.unit if bench else None
        higher_is_better = bench.higher_is_better if bench else None
        compared = results.comparisons.get(name)
        verdict = compared.verdict if compared is not None else {}
        direction = ""
        if higher_is_better is not None:
            direction = (
                " — higher is better; damage = −Δ"
                if higher_is_better
                else " — lower is better; damage = Δ"
            )
        out.append(
            f'<h3>{_e(title)} <span class="muted">({_e(name)}'
            f"{', ' + _e(unit) if unit else ''}){_e(direction)}</span></h3>"
        )
        out.append(_few_units(results, name))
        out.append('<div class="scroll"><table>')
        out.append(
            '<tr><th class="row" rowspan="2">method</th>'
            + "".join(f'<th colspan="4">{_e(language_label(x))}</th>' for x in bench_langs)
            + "</tr>"
        )
        out.append(
            "<tr>" + "<th>Sel</th><th>damage</th><th>off-target</th><th>DD</th>" * len(bench_langs)
            + "</tr>"
        )
        for method in methods:
            cells = [f'<td class="row">{_e(method)}</td>']
            for lang in bench_langs:
                entry = per_method[method].get(lang, NO_METRIC)
                weak = verdict.get(method, {}).get(lang) == NOT_SELECTIVE
                clear = verdict.get(method, {}).get(lang) == SELECTIVE
                shade = "weak" if weak else ("hit" if clear else "")
                cell = _value_cell(entry.sel, entry.sel_ci, extra_class=shade)
                if weak:
                    cell = cell[:-5] + '<span class="ci">no selective set at k</span></td>'
                cells.append(cell)
                cells.append(_value_cell(entry.damage, entry.damage_ci))
                cells.append(_value_cell(entry.off_target, entry.off_target_ci))
                cells.append(_value_cell(entry.dd, entry.dd_ci))
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table></div>")
    return "\n".join(x for x in out if x)


def _method_table(
    title: str, methods: Sequence[str], languages: Sequence[str], entry: Any
) -> str:
    """A heading and a method × language table of values with intervals; ``entry(method,
    lang)`` gives ``(value, ci)`` or ``None`` (the method has no row); '' without rows."""
    rows = []
    for method in methods:
        values = [entry(method, lang) for lang in languages]
        if all(v is None for v in values):
            continue
        cells = [f'<td class="row">{_e(method)}</td>']
        cells += [_value_cell(*(v if v is not None else (None, None))) for v in values]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        return ""
    head = "".join(f"<th>{_e(language_label(x))}</th>" for x in languages)
    return (
        f"<h3>{title}</h3>"
        f'<div class="scroll"><table><tr><th class="row">method</th>{head}</tr>'
        + "".join(rows) + "</table></div>"
    )


def _comparisons(results: StudyResults) -> str:
    """Paired Sel differences against the reference method and the random control, and the
    efficiency against the reference optimum when the study ran it."""
    out: list[str] = []
    langs = results.languages
    for name, compared in results.comparisons.items():
        bench = results.benchmarks.get(name)
        title = _e((bench.title if bench else None) or name)
        searched_reference = f"{results.reference_method}+search"
        against = [
            b for b in (results.reference_method, searched_reference, "random")
            if b in results.methods
        ]
        if "optimise" in results.methods:
            against.append("optimise")
        for b in dict.fromkeys(against):

            def paired(a: str, lang: str, b: str = b, table: Any = compared.paired) -> Any:
                per_lang = table.get(a, {}).get(b)
                if a == b or not per_lang:
                    return None
                got = per_lang.get(lang, {})
                return got.get("diff"), got.get("ci")

            out.append(_method_table(
                f"{title}: Sel(method) − Sel({_e(b)}), paired", results.methods, langs, paired
            ))
        searched = [m for m in results.methods if f"{m}+search" in results.methods]
        if searched:

            def gain(a: str, lang: str, table: Any = compared.paired) -> Any:
                got = table.get(f"{a}+search", {}).get(a, {}).get(lang)
                return (got.get("diff"), got.get("ci")) if got else None

            out.append(_method_table(
                f"{title}: the same set search on every proposal, "
                "Sel(method+search) − Sel(method as published), paired", searched, langs, gain,
            ))
        if compared.efficiency:
            above = sorted(
                {
                    m for m, per_lang in compared.efficiency.items() if m != "optimise"
                    for got in per_lang.values()
                    if isinstance(got.get("value"), (int, float)) and got["value"] > 1
                }
            )
            if above:
                out.append(
                    f"<p><b>Note:</b> {_e(', '.join(above))} exceed the reference optimum's Sel "
                    "on these texts (efficiency above 1): here the optimum is not a ceiling.</p>"
                )

            def efficiency(method: str, lang: str, table: Any = compared.efficiency) -> Any:
                per_lang = table.get(method)
                if not per_lang or method == "optimise":
                    return None
                got = per_lang.get(lang, {})
                return got.get("value"), got.get("ci")

            out.append(_method_table(
                f"{title}: efficiency Sel ÷ Sel* of the reference optimum", results.methods,
                langs, efficiency,
            ))
    out = [x for x in out if x]
    if not out:
        return ""
    lead = (
        "<p>Differences between methods on the same bootstrap resamples of the same texts "
        "(a paired 95% interval: a method is better when the interval lies above 0).</p>"
    )
    return '<h2 id="comparisons">Comparisons</h2>' + lead + "\n".join(out)


def _control(results: StudyResults) -> str:
    """English beside the Latin-script control language, per method (bits per byte)."""
    control = results.control_language
    english = "en" if "en" in results.languages else results.languages[0]
    if control is None or control == english:
        return ""
    out = []
    for name, per_method in results.metrics.items():
        compared = results.comparisons.get(name)
        verdict = compared.verdict if compared is not None else {}
        rows = []
        for method in results.methods:
            if method == "random" or method not in per_method:
                continue
            cells = [f'<td class="row">{_e(method)}</td>']
            for lang in (english, control):
                entry = per_method[method].get(lang, NO_METRIC)
                cells.append(_value_cell(entry.sel, entry.sel_ci))
                cells.append(f"<td>{_e(verdict.get(method, {}).get(lang, 'n/a'))}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        head = "".join(
            f'<th colspan="2">{_e(language_label(x))}</th>' for x in (english, control)
        )
        out.append(
            f"<h3>{_e(name)}</h3>"
            f'<div class="scroll"><table><tr><th class="row" rowspan="2">method</th>{head}</tr>'
            "<tr>" + "<th>Sel</th><th>verdict</th>" * 2 + "</tr>" + "".join(rows)
            + "</table></div>"
        )
    return (
        f'<h2 id="control">{_e(language_label(english))} and a Latin-script control</h2>'
        f"<p>{_e(language_label(control))} is in the study as a control for "
        f"{_e(language_label(english))}: a method with no selective set for either speaks "
        "about Latin script or the model's dominant language rather than about English; one "
        "selective for the control but not for English points to English's dominance. The "
        "two languages are evaluated on different texts, so their Sel are compared side by "
        "side, not as a paired difference.</p>" + "".join(out)
    )


def _frontier(results: StudyResults) -> str:
    """Own damage at a fixed off-target damage, read along each method's budget sweep."""
    sweep = results.sweep
    if sweep is None:
        return ""
    levels: list[str] = []
    for per_lang in sweep.methods.values():
        for entry in per_lang.values():
            levels += [k for k in entry.at_off_target if k not in levels]
    if not levels:
        return ""
    head = "".join(
        f'<th colspan="{len(levels)}">{_e(language_label(x))}</th>' for x in results.languages
    )
    sub = "".join(f"<th>at {_e(level)}</th>" for _ in results.languages for level in levels)
    rows = []
    for method in present(results.methods, sweep.methods):
        cells = [f'<td class="row">{_e(method)}</td>']
        for lang in results.languages:
            entry = sweep.methods[method].get(lang)
            for level in levels:
                value = entry.at_off_target.get(level) if entry is not None else None
                cells.append(
                    _value_cell(value) if value is not None else '<td class="na">not reached</td>'
                )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<h2 id="frontier">Frontier</h2><p>Own-language damage (bits/byte) where the mean '
        "off-target damage reaches each level, interpolated along the method's budget sweep "
        "(unverified sets, starting from the empty set); “not reached” where the sweep's "
        "largest budget stays below the level. Higher is better.</p>"
        f'<div class="scroll"><table><tr><th class="row" rowspan="2">method</th>{head}</tr>'
        f"<tr>{sub}</tr>" + "".join(rows) + "</table></div>"
    )


def _unmasked(results: StudyResults) -> str:
    langs = results.languages
    rows = []
    for name, bench in results.benchmarks.items():
        none, items = bench.none, bench.items
        if not none:
            continue
        unit = bench.unit
        label = f"{bench.title or name}" + (f" ({unit})" if unit else "")
        cells = [f'<td class="row">{_e(label)}</td>']
        for lang in langs:
            n = items.get(lang)
            count = f'<span class="ci">{_e(n)} items</span>' if n is not None else ""
            cell = _value_cell(none.get(lang), bench.none_ci.get(lang))
            cells.append(cell[:-5] + count + "</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        return '<p class="muted">No unmasked values were recorded.</p>'
    header = (
        '<tr><th class="row">benchmark</th>'
        + "".join(f"<th>{_e(language_label(x))}</th>" for x in langs)
        + "</tr>"
    )
    return (
        "<p>Each benchmark's value with no neurons masked (the baseline every Δ is "
        "measured from), and how many texts or questions it averages.</p>"
        f'<div class="scroll"><table>{header}{"".join(rows)}</table></div>'
    )


def _set_sizes(results: StudyResults) -> str:
    sets = results.sets
    if not sets:
        return '<p class="muted">No neuron sets were recorded.</p>'
    n_layers, d_ff = results.model.n_layers, results.model.d_ff
    total = n_layers * d_ff if n_layers is not None and d_ff is not None else None
    total = total if total and total > 0 else None
    langs = results.languages
    methods = present(results.methods, sets)
    header = (
        '<tr><th class="row">method</th>'
        + "".join(f"<th>{_e(language_label(x))}</th>" for x in langs)
        + '<th class="row">file</th></tr>'
    )
    rows = []
    for method in methods:
        spec = sets[method]
        sizes = spec.sizes
        cells = [f'<td class="row">{_e(method)}</td>']
        for lang in langs:
            size = as_float(sizes.get(lang))
            if not math.isfinite(size):
                cells.append('<td class="na">n/a</td>')
                continue
            share = (
                f'<span class="ci">{format_number(100 * size / total, 2)}%</span>' if total else ""
            )
            cells.append(f"<td>{int(size):,}{share}</td>")
        cells.append(f'<td class="row"><code>{_e(spec.file or "")}</code></td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = " (second line: % of all MLP neurons)" if total else ""
    return (
        f"<p>Neurons masked per method and language{note}.</p>"
        f'<div class="scroll"><table>{header}{"".join(rows)}</table></div>'
    )


def _verification(results: StudyResults) -> str:
    verification = results.verification
    rows = []
    columns: list[str] = []
    for per_lang in verification.values():
        for entry in per_lang.values():
            for key, value in entry.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    if key not in columns:
                        columns.append(key)
    if not columns:
        return ""
    for method, per_lang in verification.items():
        for lang, entry in per_lang.items():
            cells = [
                f'<td class="row">{_e(method)}</td>',
                f'<td class="row">{_e(language_label(lang))}</td>',
            ]
            cells += [f"<td>{_num(entry.get(c), 6)}</td>" for c in columns]
            rows.append("<tr>" + "".join(cells) + "</tr>")
    header = (
        '<tr><th class="row">method</th><th class="row">language</th>'
        + "".join(f"<th>{_e(c.replace('_', ' '))}</th>" for c in columns)
        + "</tr>"
    )
    return (
        '<h2 id="verification">Verification</h2>'
        "<p>What group-testing verification did to each verified set.</p>"
        f'<div class="scroll"><table>{header}{"".join(rows)}</table></div>'
    )


def _figures(figures: Sequence[tuple[str, str, bytes]]) -> str:
    if not figures:
        return '<p class="muted">The results hold nothing to plot.</p>'
    out = []
    for fig_id, caption, png in figures:
        data = base64.b64encode(png).decode("ascii")
        out.append(
            f'<figure id="fig-{_e(fig_id)}"><img src="data:image/png;base64,{data}" '
            f'alt="{_e(caption.split(". ")[0])}"><figcaption><b>{_e(fig_id)}.</b> '
            f"{_e(caption)}</figcaption></figure>"
        )
    return "\n".join(out)


def _notes(results: StudyResults) -> str:
    if not results.notes:
        return ""
    items = "".join(f"<li>{_e(n)}</li>" for n in results.notes)
    return f'<h2 id="notes">Notes</h2><ul class="notes">{items}</ul>'


def _provenance(results: StudyResults) -> str:
    parts = [
        "<p>The options the study ran with and the model it loaded; the numbers above "
        "come from <code>study.json</code> next to this report "
        "(<code>tables/</code> holds them as CSV).</p>"
    ]
    for title, section in (("Model", results.model.to_dict()), ("Configuration", results.config)):
        if section is not None:
            text = json.dumps(section, indent=2, sort_keys=True, ensure_ascii=False, default=str)
            parts.append(f"<h3>{title}</h3><pre>{_e(text)}</pre>")
    parts.append(f'<p class="muted">Results format: {_e(results.format)}</p>')
    return "\n".join(parts)


def render_html(results: StudyResults, figures: Sequence[tuple[str, str, bytes]]) -> str:
    """The report page for ``results`` with ``figures`` as ``(id, caption, PNG bytes)``."""
    spec = _model_name(results, "study")
    verification = _verification(results)
    notes = _notes(results)
    comparisons, frontier = _comparisons(results), _frontier(results)
    control = _control(results)
    sections = [
        ("summary", "Summary"),
        *([("comparisons", "Comparisons")] if comparisons else []),
        *([("control", "Control language")] if control else []),
        *([("frontier", "Frontier")] if frontier else []),
        ("unmasked", "Unmasked values"),
        ("sets", "Set sizes"),
        *([("verification", "Verification")] if verification else []),
        ("figures", "Figures"),
        *([("notes", "Notes")] if notes else []),
        ("provenance", "Provenance"),
    ]
    nav = "".join(f'<a href="#{sid}">{_e(label)}</a>' for sid, label in sections)
    body = [
        f"<h1>crane study: {_e(spec)}</h1>",
        '<p class="lead">Language-specific neurons: which neurons each method finds for each '
        "language, and what masking them does.</p>",
        f"<nav>{nav}</nav>",
        _header(results),
        '<h2 id="summary">Summary</h2>',
        _summary(results),
        comparisons,
        control,
        frontier,
        '<h2 id="unmasked">Unmasked values</h2>',
        _unmasked(results),
        '<h2 id="sets">Set sizes</h2>',
        _set_sizes(results),
        verification,
        '<h2 id="figures">Figures</h2>',
        _figures(figures),
        notes,
        '<h2 id="provenance">Provenance</h2>',
        _provenance(results),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>crane report: {_e(spec)}</title>\n<style>{_CSS}</style>\n</head>\n"
        "<body>\n<main>\n" + "\n".join(part for part in body if part) + "\n</main>\n</body>\n"
        "</html>\n"
    )


__all__ = ["render_html"]
