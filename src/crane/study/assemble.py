"""``study.json``: the metrics of every benchmark, the budget sweep and the overlaps, checked
against the typed results schema (:mod:`crane.results`) before they are written."""

from __future__ import annotations

import json
import math
from typing import Any

from crane.evaluation.conditions import NONE, Benchmark, Cell, Condition
from crane.evaluation.metrics import matrix_metrics, row_metrics
from crane.models.loading import LoadedModel
from crane.neurons import NeuronSet
from crane.study.config import FORMAT, StudyConfig
from crane.study.identify import IdentifiedSets, study_methods


def benchmark_results(
    benchmark: Benchmark,
    cells: dict[tuple[str, str], Cell],
    conditions: list[Condition],
    config: StudyConfig,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the benchmark's values and changes with intervals, its metrics per method)."""
    rows: dict[str, dict[str, str]] = {}
    for condition in conditions:
        if condition.method is not None and condition.masked is not None:
            rows.setdefault(condition.method, {})[condition.masked] = condition.name
    out = matrix_metrics(
        {key: cell.units for key, cell in cells.items()},
        rows,
        config.languages,
        higher_is_better=benchmark.higher_is_better,
        n_boot=config.n_boot,
        seed=config.seed,
    )
    metrics = out.pop("metrics")
    head = {
        "title": benchmark.title,
        "unit": benchmark.unit,
        "higher_is_better": benchmark.higher_is_better,
        "items": benchmark.items,
    }
    return {**head, **out}, metrics


def sweep_results(
    cells: dict[tuple[str, str], Cell], sweep: list[Condition], config: StudyConfig
) -> dict[str, Any]:
    """Own and off-target change of every sweep set (bits per byte, unverified sets)."""
    methods: dict[str, Any] = {}
    budgets: list[float] = [float(b) for b in config.sweep_budgets]
    by_method: dict[str, dict[str, list[Condition]]] = {}
    for condition in sweep:
        assert condition.method is not None and condition.masked is not None
        by_method.setdefault(condition.method, {}).setdefault(condition.masked, []).append(
            condition
        )
    for method, per_lang in by_method.items():
        methods[method] = {}
        for lang, rows in per_lang.items():
            target, off = [], []
            for row in rows:
                damage = {
                    e: cells[(row.name, e)].value - cells[(NONE, e)].value
                    for e in config.languages
                }
                point = row_metrics(damage, lang)
                target.append(point["damage"])
                off.append(point["off_target"])
            methods[method][lang] = {"target": target, "off_target": off}
    return {"budgets": budgets, "benchmark": "bpb", "verified": False, "methods": methods}


def overlap(sets: dict[str, NeuronSet], languages: list[str]) -> dict[str, Any]:
    """Jaccard between methods (per language) and between languages (per method)."""
    between_methods = {
        lang: {
            a: {
                b: sets[a].overlap(sets[b], lang)["jaccard"]
                for b in sets
                if lang in sets[b].languages
            }
            for a in sets
            if lang in sets[a].languages
        }
        for lang in languages
    }
    between_languages = {name: s.jaccard_matrix() for name, s in sets.items()}
    return {"between_methods": between_methods, "between_languages": between_languages}


def finite(value: Any) -> Any:
    """Results as strict JSON: NaN and infinities (an undefined ratio) become ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def study_header(
    config: StudyConfig, loaded: LoadedModel, stage: IdentifiedSets
) -> dict[str, Any]:
    """Everything in ``study.json`` that does not come from a benchmark."""
    n_layers = loaded.shape.n_layers
    return {
        "format": FORMAT,
        "model": {**loaded.source, "n_layers": n_layers, "d_ff": loaded.shape.d_ff},
        "languages": config.languages,
        "methods": study_methods(config),
        "reference_method": stage.reference,
        "seed": config.seed,
        "config": config.to_dict(),
        "identify_corpus": stage.identify_corpus,
        "sets": {
            name: {
                "sizes": {lang: s.size(lang) for lang in s.languages},
                "layer_counts": {lang: s.layer_counts(lang, n_layers) for lang in s.languages},
                "file": f"neurons-{name}.json",
            }
            for name, s in stage.sets.items()
        },
        "verification": stage.verification,
        "benchmarks": {},
        "metrics": {},
        "relevance": stage.relevance,
        "relevance_source": stage.relevance_source,
    }


def strict_json(results: dict[str, Any]) -> dict[str, Any]:
    """The results as they read back from strict JSON (no NaN, plain types)."""
    return finite(json.loads(json.dumps(results, default=str)))
