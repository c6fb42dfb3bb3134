"""The study report: figures (PNG, PDF, SVG), tables (CSV, and LaTeX on request) and a self-contained HTML page.

``build_report(RUN_DIR)`` rebuilds ``RUN_DIR/report/`` from ``RUN_DIR/study.json``
(docs/results.md) without recomputing anything.
"""

from __future__ import annotations

from crane.report.build import build_report

__all__ = ["build_report"]
