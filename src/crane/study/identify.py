"""The study's identification stage: every method's sets on the same texts, the layer-matched
random control, relevance capture, and the unverified budget-sweep sets, saved in the run
directory and recorded in its manifest (a rerun with the same inputs reads them back)."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crane.faults import kill_point
from crane.io import atomic_write_text, parse_json
from crane.manifest import Manifest, inputs_key
from crane.models.loading import LoadedModel
from crane.neurons import NeuronSet
from crane.progress import Progress
from crane.study.config import IDENTIFY_KEYS, StudyConfig

STAGE = "identify"
@dataclass
class IdentifiedSets:
    """What the identification stage hands to evaluation and to ``study.json``."""

    sets: dict[str, NeuronSet]
    reference: str
    sweep_files: dict[str, dict[str, str]] = field(default_factory=dict)
    """Sweep method → budget fraction (``"0.002"``) → set file relative to the run directory."""
    relevance: dict[str, Any] = field(default_factory=dict)
    relevance_source: str | None = None
    identify_corpus: str | None = None
    verification: dict[str, Any] = field(default_factory=dict)
    method_seconds: dict[str, float] = field(default_factory=dict)

    def extra(self) -> dict[str, Any]:
        """Everything but the sets (saved as ``identify-stage.json``)."""
        out = dataclasses.asdict(self)
        for key in ("sets", "reference"):
            out.pop(key)
        return out


def control_names(config: StudyConfig) -> list[str]:
    """The random controls of a study: ``random`` (seed ``seed``), ``random-1`` (seed + 1)..."""
    if not config.random_control:
        return []
    return ["random", *(f"random-{i}" for i in range(1, config.random_seeds))]


def study_methods(config: StudyConfig) -> list[str]:
    """The sets of a study: its methods, their searched variants (``search_methods``), then
    its random controls."""
    from crane.identification.run import SEARCHED

    ordered = [
        name
        for m in config.methods
        for name in (m, *([f"{m}{SEARCHED}"] if m in config.search_methods else []))
    ]
    return [*ordered, *control_names(config)]


def identify_stage(
    config: StudyConfig,
    loaded: LoadedModel,
    out: Path,
    manifest: Manifest,
    progress: Progress,
    notes: list[str],
) -> IdentifiedSets:
    """Sets of every method (and the random control and sweep sets), saved in ``out``."""
    from crane.data.builtin import load_corpus, resolve_identification_corpus
    from crane.identification import reference_method

    spec, note = resolve_identification_corpus(config.identify_corpus, config.languages)
    if note:
        notes.append(note)
    corpus = load_corpus(
        spec,
        part="identify",
        languages=config.languages,  # a built-in's parts depend on the languages (gettext)
        lang=config.corpus_lang,
        text_field=config.text_field,
        lang_field=config.lang_field,
    ).select(config.languages)
    _check_overlap(config, corpus, notes)
    key = inputs_key(
        {
            "config": {k: getattr(config, k) for k in IDENTIFY_KEYS},
            "model": loaded.identity.key(),
            "corpus": corpus.provenance,
        }
    )
    reference = reference_method(config.methods, config.budget)
    if manifest.complete(STAGE, key):
        sets = {m: NeuronSet.load(out / f"neurons-{m}.json") for m in study_methods(config)}
        extra = parse_json((out / "identify-stage.json").read_text(encoding="utf-8"))
        return IdentifiedSets(sets, reference, **extra)
    started = time.perf_counter()
    found = _identify(config, loaded, corpus, out, progress)
    found_sets = dict(found.sets)
    for i, name in enumerate(control_names(config)[1:], start=1):  # further seeds
        found_sets[name] = found_sets[reference].random_like(
            seed=config.seed + i, d_ff=loaded.shape.d_ff
        )
        found_sets[name].save(out / f"neurons-{name}.json")
    outputs = [out / f"neurons-{m}.json" for m in found_sets]
    relevance_source = "crane" if found.stats.get("crane") is not None else "gradxact"
    relevance_stats = found.stats.get(relevance_source)
    stage = IdentifiedSets(
        found_sets,
        reference,
        sweep_files=_sweep_sets(config, found, loaded, out),
        relevance=_relevance(relevance_stats, found_sets),
        relevance_source=relevance_source,
        identify_corpus=spec,
        verification={
            m: {lang: dataclasses.asdict(r) for lang, r in reports.items()}
            for m, reports in found.reports.items()
        },
        method_seconds=found.seconds,
    )
    outputs += [out / f for per in stage.sweep_files.values() for f in per.values()]
    stage_file = atomic_write_text(
        out / "identify-stage.json", json.dumps(stage.extra(), indent=1, default=str) + "\n"
    )
    kill_point("identified")
    manifest.record(STAGE, key, [*outputs, stage_file], time.perf_counter() - started)
    return stage


def _check_overlap(config: StudyConfig, identification: Any, notes: list[str]) -> None:
    """Identification texts must not be among the evaluation texts: the bits-per-byte corpus
    and, when the study builds them, the cloze test's and generation prompts' source (a clear
    error; a note under ``allow_overlap``)."""
    from crane.data.builtin import load_corpus
    from crane.data.splits import check_overlap
    from crane.study.evaluate import cloze_source

    evaluations = [
        load_corpus(config.bpb_corpus, part=config.bpb_part, languages=config.languages)
    ]
    if config.choice_builtin_items or config.generation_prompts:
        evaluations.append(cloze_source(config.languages))
    for evaluation in evaluations:
        shared = [lang for lang in config.languages if lang in evaluation.languages]
        found = check_overlap(
            identification, evaluation.select(shared), allow_overlap=config.allow_overlap
        )
        if found:
            notes.append(f"{found.message()}; allow_overlap is set, so the study went on.")


def _identify(
    config: StudyConfig, loaded: LoadedModel, corpus: Any, out: Path, progress: Progress
) -> Any:
    from crane.identification import identify_methods

    return identify_methods(
        loaded,
        corpus,
        [*config.methods, *(["random"] if config.random_control else [])],
        budget=config.budget,
        options=config.identify_options(),
        out_dir=out,
        progress=progress,
        verify_methods=config.verify_methods,
        reference_budget=config.reference_budget,
        seed=config.seed,
        search_methods=config.search_methods,
    )


def _relevance(stats: Any, sets: dict[str, NeuronSet]) -> dict[str, Any]:
    """Relevance capture of every set, when a relevance method ran."""
    from crane.evaluation.metrics import relevance_capture

    if stats is None:
        return {}
    return {name: relevance_capture(stats, s) for name, s in sets.items()}


def _sweep_sets(
    config: StudyConfig, found: Any, loaded: LoadedModel, out: Path
) -> dict[str, dict[str, str]]:
    """Unverified sets of the sweep methods at each sweep budget: method → budget → file."""
    from crane.identification.run import built_set
    from crane.methods import get_method
    from crane.progress import NullProgress
    from crane.scoring import Budget

    files: dict[str, dict[str, str]] = {}
    for method in config.sweep_methods if config.sweep_budgets else []:
        spec = get_method(method)
        files[method] = {}
        for fraction in config.sweep_budgets:
            budget = Budget(count=max(1, round(float(fraction) * loaded.shape.n_neurons)))
            if spec.builder is not None:  # optimised again at every budget (fit texts only)
                neurons, _ = built_set(
                    loaded, method, found, found.stats[method], config.identify_options(),
                    budget, NullProgress(), validate=False,
                )
            else:
                options = config.score_options() if spec.statistics == "relevance" else None
                neurons = spec.select(
                    found.stats[method], budget=budget, site=config.site, options=options
                )
            neurons.meta.update({"method": method, "sweep_fraction": float(fraction)})
            name = f"sweep/neurons-{method}@{float(fraction):g}.json"
            neurons.save(out / name)
            files[method][f"{float(fraction):g}"] = name
    return files
