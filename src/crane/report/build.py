"""Build a study's report from its results: figures (PNG), tables (CSV) and one HTML page.

``build_report(RUN_DIR)`` reads ``RUN_DIR/study.json`` (docs/results.md) and writes::

    RUN_DIR/report/index.html            self-contained page (figures embedded)
    RUN_DIR/report/<figure id>.png       every figure on its own
    RUN_DIR/report/tables/*.csv          the numbers in long form, for pandas or a spreadsheet

Nothing is recomputed and nothing depends on the time of the build: the same results give
byte-identical files. Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crane.errors import ConfigError
from crane.faults import checkpoint
from crane.io import atomic_write_bytes, atomic_write_text
from crane.report.figures import (
    as_dict,
    as_float,
    figure_png,
    languages_of,
    make_figures,
    methods_of,
    safe_id,
)
from crane.report.html import render_html

REPORT_DIR = "report"
TABLES_DIR = "tables"
METRIC_KEYS = ("damage", "off_target", "sel", "dd")
_FIGURE_PREFIXES = ("masking-", "selectivity", "sweep", "layers", "overlap-", "relevance")
_TABLE_PREFIXES = ("delta-", "metrics", "unmasked", "sets", "sweep", "overlap", "relevance")


def build_report(run_dir: str | Path, *, results: dict[str, Any] | None = None) -> Path:
    """Write ``RUN_DIR/report/`` from ``RUN_DIR/study.json`` (or from ``results`` when given,
    e.g. by the pipeline that has just written that file) and return the path of index.html.

    Raises ConfigError when study.json is missing or is not a study's results.
    """
    run_dir = Path(run_dir)
    study = run_dir / "study.json"
    if results is None:
        results = _read_results(study)
    else:
        # the same values study.json holds (tuples become lists, paths strings, ...)
        results = json.loads(json.dumps(results, default=str))
    _check_results(results, study)
    out = run_dir / REPORT_DIR
    tables_dir = out / TABLES_DIR

    try:
        figures: list[tuple[str, str, bytes]] = []
        for fig_id, caption, fig in make_figures(results):
            figures.append((fig_id, caption, figure_png(fig)))
            fig.clear()
        tables = report_tables(results)
        html = render_html(results, figures)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ConfigError(
            f"{study} holds results the report cannot use ({type(exc).__name__}: {exc}); "
            "run crane demo or crane run again to rewrite it."
        ) from None

    written: set[Path] = set()
    for fig_id, _, png in figures:
        written.add(atomic_write_bytes(out / f"{fig_id}.png", png))
    checkpoint("report")
    for name, text in tables.items():
        written.add(atomic_write_text(tables_dir / name, text))
    _remove_stale(out, "*.png", _FIGURE_PREFIXES, written)
    _remove_stale(tables_dir, "*.csv", _TABLE_PREFIXES, written)
    return atomic_write_text(out / "index.html", html)


def _read_results(study: Path) -> dict[str, Any]:
    if not study.is_file():
        raise ConfigError(
            f"{study} does not exist; run crane demo or crane run first to produce a study's "
            "results, then build the report from its run directory."
        )
    try:
        data = json.loads(study.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = getattr(exc, "msg", None) or getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"{study} is not readable JSON ({reason}); run crane demo or crane run first to "
            "write it again."
        ) from None
    return data


def _check_results(results: Any, study: Path) -> None:
    fmt = results.get("format") if isinstance(results, dict) else None
    if (
        not isinstance(results, dict)
        or not isinstance(results.get("languages"), list)
        or (fmt is not None and not str(fmt).startswith("crane-study/"))
    ):
        raise ConfigError(
            f"{study} is not a crane study's results (expected format crane-study/1 with a "
            "'languages' list); run crane demo or crane run first."
        )


def _remove_stale(folder: Path, pattern: str, prefixes: tuple[str, ...], keep: set[Path]) -> None:
    """Delete report files of an earlier build that this build no longer produces."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob(pattern)):
        if path not in keep and path.name.startswith(prefixes):
            path.unlink(missing_ok=True)


# ---- tables -----------------------------------------------------------------------------------
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
    """A JSON number kept as it is (int or float); ``None`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _ci(value: Any) -> tuple[Any, Any]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return _number(value[0]), _number(value[1])
    return None, None


def report_tables(results: Mapping[str, Any]) -> dict[str, str]:
    """The report's CSV tables: file name → text (deterministic for given results)."""
    langs = languages_of(results)
    methods = methods_of(results)
    tables: dict[str, str] = {}
    benchmarks = as_dict(results.get("benchmarks"))

    for name, bench in benchmarks.items():
        bench = as_dict(bench)
        value, delta, delta_ci = (as_dict(bench.get(k)) for k in ("value", "delta", "delta_ci"))
        rows = []
        for method in [m for m in methods if m in value or m in delta]:
            masked_keys = [*as_dict(value.get(method)), *as_dict(delta.get(method))]
            for masked in [x for x in langs if x in masked_keys]:
                v_row = as_dict(as_dict(value.get(method)).get(masked))
                d_row = as_dict(as_dict(delta.get(method)).get(masked))
                ci_row = as_dict(as_dict(delta_ci.get(method)).get(masked))
                for evaluated in [x for x in langs if x in v_row or x in d_row]:
                    low, high = _ci(ci_row.get(evaluated))
                    rows.append(
                        [
                            name,
                            method,
                            masked,
                            evaluated,
                            _number(v_row.get(evaluated)),
                            _number(d_row.get(evaluated)),
                            low,
                            high,
                        ]
                    )
        header = [
            "benchmark",
            "method",
            "masked",
            "evaluated",
            "value",
            "delta",
            "ci_low",
            "ci_high",
        ]
        tables[f"delta-{safe_id(name)}.csv"] = _csv(header, rows)

    unmasked = []
    for name, bench in benchmarks.items():
        bench = as_dict(bench)
        none, items = as_dict(bench.get("none")), as_dict(bench.get("items"))
        for lang in [x for x in langs if x in none or x in items]:
            unmasked.append([name, lang, _number(none.get(lang)), _number(items.get(lang))])
    if unmasked:
        tables["unmasked.csv"] = _csv(["benchmark", "language", "none", "items"], unmasked)

    metrics = as_dict(results.get("metrics"))
    keys = list(METRIC_KEYS)
    for per_method in metrics.values():
        for per_lang in as_dict(per_method).values():
            for entry in as_dict(per_lang).values():
                for key in as_dict(entry):
                    base = key[:-3] if key.endswith("_ci") else key
                    if base not in keys:
                        keys.append(base)
    metric_rows = []
    for name, per_method in metrics.items():
        per_method = as_dict(per_method)
        for method in [m for m in methods if m in per_method]:
            per_lang = as_dict(per_method[method])
            for lang in [x for x in langs if x in per_lang]:
                entry = as_dict(per_lang[lang])
                row: list[Any] = [name, method, lang]
                for key in keys:
                    row += [_number(entry.get(key)), *_ci(entry.get(f"{key}_ci"))]
                metric_rows.append(row)
    if metric_rows:
        header = ["benchmark", "method", "language"]
        for key in keys:
            header += [key, f"{key}_ci_low", f"{key}_ci_high"]
        tables["metrics.csv"] = _csv(header, metric_rows)

    sets = as_dict(results.get("sets"))
    if sets:
        declared = as_float(as_dict(results.get("model")).get("n_layers"))
        lengths = [
            len(c)
            for s in sets.values()
            for c in as_dict(as_dict(s).get("layer_counts")).values()
            if isinstance(c, list)
        ]
        n_layers = max([int(declared) if math.isfinite(declared) else 0, *lengths])
        set_rows = []
        for method in [m for m in methods if m in sets]:
            spec = as_dict(sets[method])
            sizes, counts = as_dict(spec.get("sizes")), as_dict(spec.get("layer_counts"))
            for lang in [x for x in langs if x in sizes or x in counts]:
                per_layer = counts.get(lang) if isinstance(counts.get(lang), list) else []
                per_layer = [_number(c) for c in per_layer] + [None] * n_layers
                set_rows.append([method, lang, _number(sizes.get(lang)), *per_layer[:n_layers]])
        header = ["method", "language", "size", *(f"layer_{i}" for i in range(n_layers))]
        tables["sets.csv"] = _csv(header, set_rows)

    sweep = as_dict(results.get("sweep"))
    budgets = sweep.get("budgets") if isinstance(sweep.get("budgets"), list) else []
    sweep_methods = as_dict(sweep.get("methods"))
    if budgets and sweep_methods:
        sweep_rows = []
        for method in [m for m in methods if m in sweep_methods]:
            per_lang = as_dict(sweep_methods[method])
            for lang in [x for x in langs if x in per_lang]:
                entry = as_dict(per_lang[lang])
                target = entry.get("target") if isinstance(entry.get("target"), list) else []
                off = entry.get("off_target") if isinstance(entry.get("off_target"), list) else []
                for i, budget in enumerate(budgets):
                    sweep_rows.append(
                        [
                            method,
                            lang,
                            _number(budget),
                            _number(target[i]) if i < len(target) else None,
                            _number(off[i]) if i < len(off) else None,
                        ]
                    )
        tables["sweep.csv"] = _csv(
            ["method", "language", "budget", "target", "off_target"], sweep_rows
        )

    overlap = as_dict(results.get("overlap"))
    overlap_rows = []
    for kind, groups, items in (
        ("between_methods", langs, methods),
        ("between_languages", methods, langs),
    ):
        nested = as_dict(overlap.get(kind))
        for group in [g for g in groups if g in nested] + [g for g in nested if g not in groups]:
            table = as_dict(nested[group])
            row_keys = [i for i in items if i in table] + [i for i in table if i not in items]
            for a in row_keys:
                inner = as_dict(table[a])
                col_keys = [i for i in items if i in inner] + [i for i in inner if i not in items]
                for b in col_keys:
                    overlap_rows.append([kind, group, a, b, _number(inner[b])])
    if overlap_rows:
        tables["overlap.csv"] = _csv(["kind", "group", "a", "b", "jaccard"], overlap_rows)

    relevance = as_dict(results.get("relevance"))
    relevance_rows = []
    for method in [m for m in methods if m in relevance]:
        per_lang = as_dict(relevance[method])
        for masked in [x for x in langs if x in per_lang]:
            entry = as_dict(per_lang[masked])
            rc = as_dict(entry.get("rc"))
            for evaluated in [x for x in langs if x in rc]:
                relevance_rows.append(
                    [method, masked, evaluated, _number(rc[evaluated]), _number(entry.get("rs"))]
                )
    if relevance_rows:
        tables["relevance.csv"] = _csv(
            ["method", "set_language", "evaluated", "rc", "rs"], relevance_rows
        )
    return tables


__all__ = ["build_report", "report_tables"]
