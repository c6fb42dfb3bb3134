"""The report's CSV tables: the numbers of a study's results in long form (one value a row),
for pandas or a spreadsheet. Deterministic for given results."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from crane.report.style import present, safe_id
from crane.results import METRIC_NAMES, StudyResults


def _cell(value: Any) -> str:
    """A CSV cell: numbers in shortest round-trip form, missing/non-finite as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return buffer.getvalue()


def _number(value: Any) -> float | int | None:
    """A number kept as it is (int or float); ``None`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _ci(value: Any) -> tuple[Any, Any]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return _number(value[0]), _number(value[1])
    return None, None


def _deltas(results: StudyResults) -> dict[str, str]:
    """One table per benchmark: value, Δ and its interval per method × masked × evaluated."""
    langs = results.languages
    tables = {}
    for name, bench in results.benchmarks.items():
        rows = []
        for method in present(results.methods, bench.value, bench.delta):
            values, deltas = bench.value.get(method, {}), bench.delta.get(method, {})
            for masked in present(langs, values, deltas):
                v_row, d_row = values.get(masked, {}), deltas.get(masked, {})
                ci_row = bench.delta_ci.get(method, {}).get(masked, {})
                for evaluated in present(langs, v_row, d_row):
                    low, high = _ci(ci_row.get(evaluated))
                    value, delta = _number(v_row.get(evaluated)), _number(d_row.get(evaluated))
                    rows.append([name, method, masked, evaluated, value, delta, low, high])
        header = ["benchmark", "method", "masked", "evaluated", "value", "delta"]
        tables[f"delta-{safe_id(name)}.csv"] = _csv([*header, "ci_low", "ci_high"], rows)
    return tables


def _unmasked(results: StudyResults) -> dict[str, str]:
    rows = []
    for name, bench in results.benchmarks.items():
        for lang in present(results.languages, bench.none, bench.items):
            rows.append([name, lang, _number(bench.none.get(lang)), _number(bench.items.get(lang))])
    return {"unmasked.csv": _csv(["benchmark", "language", "none", "items"], rows)} if rows else {}


def _metrics(results: StudyResults) -> dict[str, str]:
    keys = list(METRIC_NAMES)
    for per_method in results.metrics.values():
        for per_lang in per_method.values():
            for entry in per_lang.values():
                for key in entry.extra:
                    base = key[:-3] if key.endswith("_ci") else key
                    if base not in keys:
                        keys.append(base)
    rows = []
    for name, per_method in results.metrics.items():
        for method in present(results.methods, per_method):
            per_lang = per_method[method]
            for lang in present(results.languages, per_lang):
                entry = per_lang[lang]
                row: list[Any] = [name, method, lang]
                for key in keys:
                    row += [_number(entry.get(key)), *_ci(entry.get(f"{key}_ci"))]
                rows.append(row)
    if not rows:
        return {}
    header = ["benchmark", "method", "language"]
    for key in keys:
        header += [key, f"{key}_ci_low", f"{key}_ci_high"]
    return {"metrics.csv": _csv(header, rows)}


def _sets(results: StudyResults) -> dict[str, str]:
    sets = results.sets
    if not sets:
        return {}
    lengths = [len(c) for s in sets.values() for c in s.layer_counts.values()]
    n_layers = max([results.model.n_layers or 0, *lengths])
    rows = []
    for method in present(results.methods, sets):
        spec = sets[method]
        for lang in present(results.languages, spec.sizes, spec.layer_counts):
            per_layer = [*spec.layer_counts.get(lang, ()), *[None] * n_layers][:n_layers]
            rows.append([method, lang, _number(spec.sizes.get(lang)), *per_layer])
    header = ["method", "language", "size", *(f"layer_{i}" for i in range(n_layers))]
    return {"sets.csv": _csv(header, rows)}


def _sweep(results: StudyResults) -> dict[str, str]:
    """The sweep (every budget with intervals) and the frontier (own damage at fixed
    off-target damage)."""
    sweep = results.sweep
    if sweep is None or not sweep.budgets or not sweep.methods:
        return {}
    rows, frontier = [], []
    for method in present(results.methods, sweep.methods):
        per_lang = sweep.methods[method]
        for lang in present(results.languages, per_lang):
            entry = per_lang[lang]
            for i, budget in enumerate(sweep.budgets):
                row: list[Any] = [method, lang, _number(budget)]
                for values, cis in (
                    (entry.target, entry.target_ci), (entry.off_target, entry.off_target_ci),
                    (entry.sel, entry.sel_ci),
                ):
                    row.append(_number(values[i]) if i < len(values) else None)
                    row += list(_ci(cis[i])) if i < len(cis) else [None, None]
                rows.append(row)
            for level, own in entry.at_off_target.items():
                frontier.append([method, lang, level, _number(own)])
    header = ["method", "language", "budget"]
    for key in ("target", "off_target", "sel"):
        header += [key, f"{key}_ci_low", f"{key}_ci_high"]
    out = {"sweep.csv": _csv(header, rows)}
    if frontier:
        head = ["method", "language", "off_target_level", "own_damage"]
        out["frontier.csv"] = _csv(head, frontier)
    return out


def _comparisons(results: StudyResults) -> dict[str, str]:
    """Paired differences of Sel between methods, efficiency against the reference optimum,
    and each set's verdict against the random control."""
    paired, efficiency, verdicts = [], [], []
    for name, compared in results.comparisons.items():
        for a in present(results.methods, compared.paired):
            for b in present(results.methods, compared.paired[a]):
                per_lang = compared.paired[a][b]
                for lang in present(results.languages, per_lang):
                    entry = per_lang[lang]
                    paired.append(
                        [name, a, b, lang, _number(entry.get("diff")), *_ci(entry.get("ci"))]
                    )
        for method in present(results.methods, compared.efficiency):
            per_lang = compared.efficiency[method]
            for lang in present(results.languages, per_lang):
                entry = per_lang[lang]
                efficiency.append(
                    [name, method, lang, _number(entry.get("value")), *_ci(entry.get("ci"))]
                )
        for method in present(results.methods, compared.verdict):
            for lang in present(results.languages, compared.verdict[method]):
                verdicts.append([name, method, lang, compared.verdict[method][lang]])
    out = {}
    if paired:
        head = ["benchmark", "method", "versus", "language", "sel_difference", "ci_low", "ci_high"]
        out["paired.csv"] = _csv(head, paired)
    if efficiency:
        head = ["benchmark", "method", "language", "efficiency", "ci_low", "ci_high"]
        out["efficiency.csv"] = _csv(head, efficiency)
    if verdicts:
        out["verdicts.csv"] = _csv(["benchmark", "method", "language", "verdict"], verdicts)
    return out


def _overlap(results: StudyResults) -> dict[str, str]:
    langs, methods = results.languages, results.methods
    rows = []
    for kind, nested, groups, items in (
        ("between_methods", results.overlap.between_methods, langs, methods),
        ("between_languages", results.overlap.between_languages, methods, langs),
    ):
        for group in present(groups, nested):
            table = nested[group]
            for a in present(items, table):
                for b in present(items, table[a]):
                    rows.append([kind, group, a, b, _number(table[a][b])])
    return {"overlap.csv": _csv(["kind", "group", "a", "b", "jaccard"], rows)} if rows else {}


def _relevance(results: StudyResults) -> dict[str, str]:
    rows = []
    for method in present(results.methods, results.relevance):
        per_lang = results.relevance[method]
        for masked in present(results.languages, per_lang):
            entry = per_lang[masked]
            for evaluated in present(results.languages, entry.rc):
                rows.append(
                    [method, masked, evaluated, _number(entry.rc[evaluated]), _number(entry.rs)]
                )
    header = ["method", "set_language", "evaluated", "rc", "rs"]
    return {"relevance.csv": _csv(header, rows)} if rows else {}


def report_tables(results: StudyResults) -> dict[str, str]:
    """The report's CSV tables: file name → text (deterministic for given results)."""
    tables: dict[str, str] = {}
    for part in (
        _deltas, _unmasked, _metrics, _comparisons, _sets, _sweep, _overlap, _relevance
    ):
        tables |= part(results)
    return tables


__all__ = ["report_tables"]
