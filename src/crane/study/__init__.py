"""A study: identify neurons with several methods at equal budget on the same texts, evaluate
every benchmark per language under every set and the layer-matched random control, compute
metrics with bootstrap intervals, and write ``study.json`` and the report.

Stages of a run directory (recorded in ``RUN_DIR/manifest.json``; a rerun reuses every stage
whose inputs are unchanged and whose outputs are intact):

- ``identify`` (:mod:`crane.study.identify`): ``neurons-<method>.json`` per method and
  ``neurons-random.json`` (layer-matched to the reference method's sets), relevance capture
  and the budget-sweep sets under ``sweep/``; relevance and activation shards resume on their
  own;
- ``evaluate:<benchmark>`` (:mod:`crane.study.evaluate`): one file per masking condition,
  ``eval/<benchmark>/<row>.json``, saved as soon as it is done;
- ``study.json`` (:mod:`crane.study.assemble`, schema :mod:`crane.results`, docs/results.md)
  and ``report/`` (figures and ``index.html``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crane.faults import kill_point
from crane.io import atomic_write_text
from crane.manifest import Manifest
from crane.progress import NullProgress, Progress
from crane.study.config import DEFAULT_METHODS, FORMAT, StudyConfig, load_config

__all__ = ["DEFAULT_METHODS", "FORMAT", "StudyConfig", "StudyResult", "load_config", "run_study"]


@dataclass
class StudyResult:
    """A finished study: its run directory, ``study.json`` as a dict, the report's path."""

    run_dir: Path
    results: dict[str, Any]
    report: Path | None
    seconds: float


@contextmanager
def _stage(name: str, progress: Progress) -> Iterator[None]:
    """One line (and an INFO log) when a stage starts and when it ends, with its seconds."""
    started = time.perf_counter()
    progress.message(f"stage {name}: started")
    yield
    progress.message(f"stage {name}: done in {time.perf_counter() - started:.1f} s")


def _slow_rows(main: list[Any], config: StudyConfig) -> list[Any]:
    """The rows of a benchmark other than bits per byte: one random seed (the verdicts there
    compare with it) and, with ``benchmark_methods``, those methods only."""
    rows = [c for c in main if not str(c.method).startswith("random-")]
    if config.benchmark_methods is None:
        return rows
    return [c for c in rows if c.method in config.benchmark_methods]


def run_study(
    config: StudyConfig,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    report: bool = True,
) -> StudyResult:
    """Run (or resume) the study described by ``config`` in ``out_dir``."""
    from crane.models.loading import load_model
    from crane.results import StudyResults
    from crane.study.assemble import (
        benchmark_results,
        overlap,
        strict_json,
        study_header,
        sweep_results,
    )
    from crane.study.evaluate import evaluate_stage, study_benchmarks, study_conditions
    from crane.study.identify import identify_stage

    config.validate()
    progress = progress or NullProgress()
    started = time.perf_counter()
    out = Path(out_dir)
    notes: list[str] = []
    progress.message(f"loading {config.model}")
    loaded = load_model(
        config.model,
        dtype=config.dtype,
        device=config.device,
        trust_remote_code=config.trust_remote_code,
        revision=config.revision,
        attn_implementation=config.attn_implementation,
        progress=progress.message,
    )
    manifest = Manifest(out, loaded.identity.key())  # another model's run is refused
    benchmarks = study_benchmarks(config, loaded, progress)
    with _stage("identify", progress):
        stage = identify_stage(config, loaded, out, manifest, progress, notes)
    main, sweep = study_conditions(stage, config, out)
    results = study_header(config, loaded, stage)
    for benchmark in benchmarks:
        # bits per byte under every row; the slower benchmarks without the sweep and with one
        # random seed (the verdicts there compare with that seed)
        rows = main if benchmark.name == "bpb" else _slow_rows(main, config)
        conditions = [*rows, *sweep] if benchmark.name == "bpb" else rows
        with _stage(f"evaluate:{benchmark.name}", progress):
            cells = evaluate_stage(
                benchmark, conditions, loaded, out, manifest, config, progress
            )
        bench, metrics, compared = benchmark_results(benchmark, cells, rows, config)
        results["benchmarks"][benchmark.name], results["metrics"][benchmark.name] = bench, metrics
        results["comparisons"][benchmark.name] = compared
        if benchmark.name == "bpb" and sweep:
            results["sweep"] = sweep_results(cells, sweep, config)
    results["overlap"] = overlap(stage.sets, config.languages)
    results["notes"] = notes
    seconds = manifest.seconds()  # this run's stages, in pipeline order (resumed or not)
    order = ["identify", *(f"evaluate:{b.name}" for b in benchmarks)]
    results["stage_seconds"] = {name: seconds[name] for name in order if name in seconds}
    results["seconds"] = time.perf_counter() - started
    results = strict_json(results)
    typed = StudyResults.from_dict(results, where=str(out / "study.json"))  # schema, once
    kill_point("study-json")
    atomic_write_text(out / "study.json", json.dumps(results, indent=1, allow_nan=False) + "\n")
    report_path = None
    if report:
        from crane.report import build_report

        report_path = build_report(out, results=typed)
    return StudyResult(out, results, report_path, results["seconds"])
