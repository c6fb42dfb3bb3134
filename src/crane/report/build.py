"""Build a study's report from its results: figures (PNG, PDF, SVG), tables (CSV, optionally
LaTeX) and one HTML page.

``build_report(RUN_DIR)`` reads ``RUN_DIR/study.json`` (docs/results.md) and writes::

    RUN_DIR/report/index.html            self-contained page (figures embedded)
    RUN_DIR/report/<figure id>.png       every figure on its own, and the same figure as
    RUN_DIR/report/<figure id>.pdf       vector graphics for a paper (TrueType fonts)
    RUN_DIR/report/<figure id>.svg
    RUN_DIR/report/tables/*.csv          the numbers in long form, for pandas or a spreadsheet
    RUN_DIR/report/tables/*.tex          with ``latex=True``: booktabs tables with 95% intervals

``titles=False`` leaves out every figure's title (for a paper, whose captions carry them).
The results are checked once, when read (:class:`crane.results.StudyResults`); results that do
not pass raise :class:`crane.results.ResultsError` before any file is written. Past that check
the report trusts its input: an exception from the report code is a bug and propagates as one.
Nothing is recomputed and nothing depends on the time of the build: the same results (and
options) give byte-identical files. Every file is written atomically; files of an earlier build
that this one does not produce (a figure the results no longer support, LaTeX tables of a build
with ``latex=True`` when this one has not) are removed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crane.faults import kill_point
from crane.io import atomic_write_bytes, atomic_write_text
from crane.report.figures import make_figures
from crane.report.html import render_html
from crane.report.latex import latex_tables
from crane.report.style import FIGURE_FORMATS, figure_files, strip_titles
from crane.report.tables import report_tables
from crane.results import StudyResults

REPORT_DIR = "report"
TABLES_DIR = "tables"
_FIGURE_PREFIXES = (
    "masking-",
    "selectivity",
    "sweep",
    "frontier",
    "layers",
    "overlap-",
    "relevance",
)
_TABLE_PREFIXES = (
    "delta-",
    "metrics",
    "unmasked",
    "sets",
    "sweep",
    "frontier",
    "paired",
    "efficiency",
    "verdicts",
    "overlap",
    "relevance",
)
_LATEX_PREFIXES = ("selectivity-", "delta-", "unmasked")


def build_report(
    run_dir: str | Path,
    *,
    results: StudyResults | Mapping[str, Any] | None = None,
    titles: bool = True,
    latex: bool = False,
) -> Path:
    """Write ``RUN_DIR/report/`` from ``RUN_DIR/study.json`` (or from ``results`` when given,
    e.g. by the pipeline that has just written that file) and return the path of index.html.

    ``titles=False`` draws the figures without their titles (panel titles, axis labels and
    legends stay); ``latex=True`` also writes ``tables/*.tex`` (:mod:`crane.report.latex`).

    Raises ResultsError (a ConfigError) when study.json is missing or is not a study's results.
    """
    run_dir = Path(run_dir)
    study = run_dir / "study.json"
    if results is None:
        results = StudyResults.load(study)
    elif not isinstance(results, StudyResults):
        # the same values study.json holds (tuples become lists, paths strings, ...)
        plain = json.loads(json.dumps(results, default=str))
        results = StudyResults.from_dict(plain, where=str(study))
    out = run_dir / REPORT_DIR
    tables_dir = out / TABLES_DIR

    figures: list[tuple[str, str, bytes]] = []  # (id, caption, PNG) for the page
    files: dict[str, bytes] = {}  # file name → bytes, every format of every figure
    for fig_id, caption, fig in make_figures(results):
        if not titles:
            strip_titles(fig)
        rendered = figure_files(fig)
        fig.clear()
        figures.append((fig_id, caption, rendered["png"]))
        files |= {f"{fig_id}.{fmt}": data for fmt, data in rendered.items()}
    tables = report_tables(results)
    tex = latex_tables(results) if latex else {}
    html = render_html(results, figures)

    written: set[Path] = set()
    for name, data in files.items():
        written.add(atomic_write_bytes(out / name, data))
    kill_point("report")
    for name, text in (tables | tex).items():
        written.add(atomic_write_text(tables_dir / name, text))
    for fmt in FIGURE_FORMATS:
        _remove_stale(out, f"*.{fmt}", _FIGURE_PREFIXES, written)
    _remove_stale(tables_dir, "*.csv", _TABLE_PREFIXES, written)
    _remove_stale(tables_dir, "*.tex", _LATEX_PREFIXES, written)
    return atomic_write_text(out / "index.html", html)


def _remove_stale(folder: Path, pattern: str, prefixes: tuple[str, ...], keep: set[Path]) -> None:
    """Delete report files of an earlier build that this build no longer produces."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob(pattern)):
        if path not in keep and path.name.startswith(prefixes):
            path.unlink(missing_ok=True)


__all__ = ["build_report", "latex_tables", "report_tables"]
