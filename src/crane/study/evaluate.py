"""The study's evaluation stage: its benchmarks and masking conditions, run through the one
evaluation loop (:func:`crane.evaluation.conditions.run_conditions`) with a row cache, so every
finished (benchmark, condition) row survives a kill and is reused by a rerun."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from crane.errors import ConfigError
from crane.evaluation.benchmarks import BPB, CHOICE, GENERATION
from crane.evaluation.conditions import (
    UNMASKED,
    Benchmark,
    Cell,
    Condition,
    RowCache,
    run_conditions,
    set_conditions,
)
from crane.manifest import Manifest
from crane.models.loading import LoadedModel
from crane.neurons import NeuronSet
from crane.progress import Progress
from crane.study.config import StudyConfig
from crane.study.identify import IdentifiedSets

SWEEP_PREFIX = "sweep-"
"""Condition names of the budget sweep: ``sweep-<method>@<fraction>:<lang>``."""


def study_benchmarks(config: StudyConfig, loaded: LoadedModel, progress: Progress) -> list[Any]:
    """Bits per byte, the multiple-choice tests the config asks for, generation fidelity."""
    from crane.data.builtin import load_corpus
    from crane.evaluation.benchmarks import BitsPerByteBenchmark

    corpus = load_corpus(
        config.bpb_corpus, part=config.bpb_part, languages=config.languages
    ).select(config.languages)
    if config.bpb_max_texts:
        corpus = corpus.take(config.bpb_max_texts)
    part = f" ({config.bpb_part})" if config.bpb_corpus in ("udhr", "gettext") else ""
    benchmarks: list[Any] = [
        BitsPerByteBenchmark(
            loaded.model, loaded.tokenizer, corpus, batch_size=config.eval_batch_size,
            batch_tokens=config.batch_tokens, max_length=config.max_length, progress=progress,
            labels=replace(BPB, title=f"Bits per byte, {config.bpb_corpus}{part}"),
        )
    ]
    benchmarks += _choice_benchmarks(config, loaded, progress)
    if config.generation_prompts:
        benchmarks.append(_generation_benchmark(config, loaded, progress))
    return benchmarks


def _choice_benchmarks(
    config: StudyConfig, loaded: LoadedModel, progress: Progress
) -> list[Benchmark]:
    from crane.data.choice_files import load_choice_set
    from crane.evaluation.benchmarks import ChoiceBenchmark

    sets = []
    if config.choice_builtin_items:
        builtin = _cloze(config)
        n = min(len(builtin[lang]) for lang in builtin.languages)
        title = f"Parallel cloze test ({n} items, 4 options, accuracy, length-normalised)"
        sets.append(("choice", title, builtin))
    if config.choice_files:
        files = {lang: Path(p) for lang, p in config.choice_files.items()}
        title = "Multiple choice (your files, accuracy, length-normalised)"
        sets.append(("mc", title, load_choice_set(files, **config.choice_fields)))
    out: list[Benchmark] = []
    for name, title, choice_set in sets:
        missing = [lang for lang in config.languages if lang not in choice_set.languages]
        if missing:
            raise ConfigError(
                f"The {name} benchmark has no questions for {', '.join(missing)}; give a file "
                "per language."
            )
        out.append(
            ChoiceBenchmark(
                loaded.model, loaded.tokenizer, choice_set, batch_size=config.eval_batch_size,
                batch_tokens=config.batch_tokens, max_length=config.max_length,
                progress=progress, labels=replace(CHOICE, name=name, title=title),
            )
        )
    return out


def cloze_source(languages: list[str]) -> Any:
    """The parallel texts the built-in cloze test and the generation prompts come from: the
    held-out gettext messages of ``languages`` (the part the study never identifies on), else,
    when this machine's catalogs miss one of them, UDHR's held-out paragraphs."""
    from crane.data.builtin import GettextUnavailable, gettext_corpus
    from crane.evaluation.cloze import udhr_paragraphs

    try:
        return gettext_corpus("heldout", languages=languages)
    except GettextUnavailable:
        return udhr_paragraphs("heldout", languages)  # disjoint from UDHR identification


def _cloze(config: StudyConfig, n_items: int | None = None) -> Any:
    """The built-in parallel cloze test (``n_items`` per language, default
    ``choice_builtin_items``) on :func:`cloze_source`, the same items in every language of the
    study."""
    from crane.evaluation.cloze import cloze_set

    return cloze_set(
        cloze_source(config.languages), n_items=n_items or config.choice_builtin_items,
        seed=config.seed,
        languages=config.languages,
    )


def _generation_benchmark(
    config: StudyConfig, loaded: LoadedModel, progress: Progress
) -> Benchmark:
    """Greedy continuations of parallel prompts (the first halves of the built-in cloze
    test's items, any language), identified offline (langid extra)."""
    from crane.evaluation.benchmarks import GenerationBenchmark
    from crane.evaluation.generation import language_identifier

    prompts = _cloze(config, config.generation_prompts)
    return GenerationBenchmark(
        loaded.model, loaded.tokenizer, prompts, language_identifier(),
        max_new_tokens=config.generation_tokens, batch_size=config.eval_batch_size,
        progress=progress,
        labels=replace(
            GENERATION,
            title=(
                f"Generation fidelity (greedy, {config.generation_tokens} tokens, share in "
                "the language)"
            ),
        ),
    )


def study_conditions(
    stage: IdentifiedSets, config: StudyConfig, run_dir: Path
) -> tuple[list[Condition], list[Condition]]:
    """(every method's rows ``<method>:<lang>``, the budget sweep's rows)."""
    main = set_conditions(stage.sets, config.languages, name="{set}:{lang}")
    sweep: list[Condition] = []
    for method, per_budget in stage.sweep_files.items():
        for fraction, name in per_budget.items():
            neuron_set = NeuronSet.load(run_dir / name)
            sweep += [
                Condition(f"{SWEEP_PREFIX}{method}@{fraction}:{lang}", neuron_set, lang, method)
                for lang in config.languages
            ]
    return main, sweep


def evaluate_stage(
    benchmark: Benchmark,
    conditions: list[Condition],
    loaded: LoadedModel,
    out: Path,
    manifest: Manifest,
    config: StudyConfig,
    progress: Progress,
) -> dict[tuple[str, str], Cell]:
    """Every condition of one benchmark (plus ``none``); rows are saved and reused one by one
    under ``out/eval/<benchmark>/``; the stage is recorded in the manifest."""
    rows = [UNMASKED, *conditions]
    cache = RowCache(
        out / "eval", {"model": loaded.identity.key(), "languages": config.languages}
    )
    started = time.perf_counter()
    cells = run_conditions(
        loaded.model, rows, [benchmark], languages=config.languages, adapter=loaded.adapter,
        cache=cache, progress=progress,
    )[benchmark.name]
    stage, key = f"evaluate:{benchmark.name}", cache.stage_key(benchmark, rows)
    if not manifest.complete(stage, key):
        files = [cache.path(benchmark, c) for c in rows]
        manifest.record(stage, key, files, time.perf_counter() - started)
    return cells
