"""``study.json``: the metrics of every benchmark, the budget sweep and the overlaps, checked
against the typed results schema (:mod:`crane.results`) before they are written."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from crane.evaluation.conditions import Benchmark, Cell, Condition
from crane.evaluation.metrics import matrix_metrics
from crane.models.loading import LoadedModel
from crane.neurons import NeuronSet
from crane.results import NOT_SELECTIVE, SELECTIVE
from crane.study.config import FORMAT, StudyConfig
from crane.study.identify import IdentifiedSets, study_methods

CONTROL = "random"
REFERENCE_OPTIMUM = "optimise"


def benchmark_results(
    benchmark: Benchmark,
    cells: dict[tuple[str, str], Cell],
    conditions: list[Condition],
    config: StudyConfig,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(the benchmark's values and changes with intervals, its metrics per method, the
    comparisons between methods: :func:`comparisons`)."""
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
        keep_replicates=True,
    )
    metrics = out.pop("metrics")
    compared = comparisons(out.pop("replicates"), config.languages)
    head = {
        "title": benchmark.title,
        "unit": benchmark.unit,
        "higher_is_better": benchmark.higher_is_better,
        "items": benchmark.items,
    }
    return {**head, **out}, metrics, compared


def comparisons(
    replicates: dict[str, dict[str, Any]], languages: list[str]
) -> dict[str, Any]:
    """Every pair of methods compared on the same bootstrap resamples of one benchmark.

    - ``paired``: A → B → L → ``{diff, ci}``, Sel(A) − Sel(B) with its paired 95% interval;
    - ``efficiency``: method → L → ``{value, ci}``, Sel / Sel* where Sel* is the reference
      optimum's (``optimise``, when the study ran it), on the same resamples;
    - ``verdict``: method → L → ``selective`` when the paired interval of Sel minus the mean
      Sel of the random controls (``random``, ``random-1``, ...) lies above 0 (without a
      random control: when Sel's own interval does), else
      ``no selective set at k`` (docs/method.md: say so rather than report a set that is not).
    """
    from crane.evaluation.metrics import interval, paired_difference

    paired: dict[str, Any] = {}
    for a, per_a in replicates.items():
        for b, per_b in replicates.items():
            if a == b:
                continue
            for lang in languages:
                if lang in per_a and lang in per_b:
                    paired.setdefault(a, {}).setdefault(b, {})[lang] = paired_difference(
                        per_a[lang], per_b[lang]
                    )
    efficiency: dict[str, Any] = {}
    star = replicates.get(REFERENCE_OPTIMUM, {})
    for method, per in replicates.items():
        for lang in languages:
            if lang in per and lang in star:
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.asarray(per[lang], dtype=np.float64) / star[lang]
                efficiency.setdefault(method, {})[lang] = {
                    "value": float(ratio[0]), "ci": interval(ratio[1:])
                }
    verdict: dict[str, Any] = {}
    controls = [m for m in replicates if m == CONTROL or m.startswith(f"{CONTROL}-")]
    for method, per in replicates.items():
        if method in controls:
            continue
        for lang in per:
            seeds = [np.asarray(replicates[c][lang]) for c in controls if lang in replicates[c]]
            if seeds:  # Sel − the mean Sel of the random controls, on the same resamples
                diff = np.asarray(per[lang]) - np.mean(seeds, axis=0)
                low = interval(diff[1:])[0]
            else:
                low = interval(np.asarray(per[lang])[1:])[0]
            clear = low is not None and math.isfinite(low) and low > 0
            verdict.setdefault(method, {})[lang] = SELECTIVE if clear else NOT_SELECTIVE
    return {"paired": paired, "efficiency": efficiency, "verdict": verdict}


FRONTIER_LEVELS = (0.05, 0.2)
"""Off-target damages (bits per byte) at which the frontier reads each method's own damage."""


def sweep_results(
    cells: dict[tuple[str, str], Cell], sweep: list[Condition], config: StudyConfig
) -> dict[str, Any]:
    """The budget sweep (bits per byte, unverified sets): per method and language, the own
    and mean off-target damage and Sel at every budget with 95% intervals, and the frontier:
    own damage at a fixed off-target damage (:data:`FRONTIER_LEVELS`, interpolated)."""
    from crane.evaluation.metrics import own_at_off_target
    from crane.study.evaluate import SWEEP_PREFIX

    budgets: list[float] = [float(b) for b in config.sweep_budgets]
    rows: dict[str, dict[str, str]] = {}  # "<method>@<fraction>" → masked language → row
    for condition in sweep:
        assert condition.method is not None and condition.masked is not None
        key = condition.name[len(SWEEP_PREFIX) :].rsplit(":", 1)[0]
        rows.setdefault(key, {})[condition.masked] = condition.name
    metrics = matrix_metrics(
        {key: cell.units for key, cell in cells.items()}, rows, config.languages,
        n_boot=config.n_boot, seed=config.seed,
    )["metrics"]
    methods: dict[str, Any] = {}
    for method in dict.fromkeys(str(c.method) for c in sweep):
        methods[method] = {}
        for lang in config.languages:
            points = [metrics[f"{method}@{b:g}"].get(lang) for b in budgets]
            if any(p is None for p in points):
                continue
            series: dict[str, Any] = {
                "target": [p["damage"] for p in points],
                "target_ci": [p["damage_ci"] for p in points],
                "off_target": [p["off_target"] for p in points],
                "off_target_ci": [p["off_target_ci"] for p in points],
                "sel": [p["sel"] for p in points],
                "sel_ci": [p["sel_ci"] for p in points],
            }
            series["at_off_target"] = {
                f"{level:g}": own_at_off_target(
                    series["off_target"], series["target"], level
                )
                for level in FRONTIER_LEVELS
            }
            methods[method][lang] = series
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
        **({"control_language": config.control_language} if config.control_language else {}),
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
        "comparisons": {},
        "relevance": stage.relevance,
        "relevance_source": stage.relevance_source,
    }


def strict_json(results: dict[str, Any]) -> dict[str, Any]:
    """The results as they read back from strict JSON (no NaN, plain types)."""
    return finite(json.loads(json.dumps(results, default=str)))
