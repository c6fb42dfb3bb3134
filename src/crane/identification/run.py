"""The one entry into identification: several methods on the same texts and budgets, the
layer-matched random control, data-parallel statistics under torchrun."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from crane.data.corpus import Corpus
from crane.errors import ConfigError
from crane.identification.options import IdentifyOptions, MethodsResult
from crane.identification.relevance import (
    _collection_split,
    _identify_relevance,
    _relevance_stats,
    _texts_provenance,
    collected_texts,
    collector_options,
    searched,
)
from crane.manifest import Manifest
from crane.methods import get_method, method_names
from crane.models.loading import LoadedModel
from crane.neurons import NeuronSet
from crane.progress import NullProgress, Progress
from crane.scoring import Budget
from crane.scoring.budget import DEFAULT_FRACTION
from crane.stats import Stats

BudgetFor = Callable[[str, "Path | None"], "Budget | None"]


def budget_plan(
    methods: list[str], budget: str, reference_budget: str = "0.5%"
) -> tuple[list[str], BudgetFor]:
    """Order ``methods`` and give each its budget from a budget spec (see ``crane identify``).

    ``match:METHOD`` (METHOD among ``methods``) runs METHOD first at ``reference_budget``
    (default 0.5%; LAPE and PLND at their own sizes) and sizes every other method like it;
    ``own`` gives LAPE and PLND their own sizes; anything else is parsed by
    :func:`parse_budget`. Returns the ordered methods and ``budget_for(method, run_dir)``,
    a Budget or ``None`` for own sizes.
    """
    from crane.scoring import parse_budget

    reference = budget[len("match:") :] if budget.startswith("match:") else None
    controls = [m for m in methods if get_method(m).statistics == "control"]
    built = [m for m in methods if get_method(m).builder is not None]
    # a method built with the model may start from another's scores; a control copies a set
    methods = [m for m in methods if m not in controls and m not in built] + built + controls
    if controls:
        reference_method(methods, budget)  # fails early when there is nothing to copy
    if reference is not None and reference in methods:
        methods = [reference, *(m for m in methods if m != reference)]
    else:
        reference = None
        parse_budget(reference_budget)
        if budget == "own":
            own = [m for m in method_names() if get_method(m).has_own_size]
            if any(not get_method(m).has_own_size for m in methods if m not in controls):
                raise ConfigError(
                    f"--budget own (the method's own set size) applies to {' and '.join(own)} "
                    "only."
                )
        else:
            parse_budget(budget)  # a bad budget fails before any computation

    def budget_for(name: str, out: Path | None) -> Budget | None:
        if reference is not None and name != reference:
            if out is None:
                raise ConfigError(
                    "A budget matching another method of the run needs a run directory (--out)."
                )
            return parse_budget(f"match:{out / f'neurons-{reference}.json'}")
        if budget == "own" or (name == reference and get_method(name).has_own_size):
            return None
        return parse_budget(reference_budget if name == reference else budget)

    return methods, budget_for


def identify_methods(
    loaded: LoadedModel,
    corpus: Corpus,
    methods: list[str],
    *,
    budget: str = "0.5%",
    options: IdentifyOptions | None = None,
    out_dir: str | Path | None = None,
    progress: Progress | None = None,
    verify_methods: tuple[str, ...] | list[str] | None = None,
    reference_budget: str = "0.5%",
    seed: int = 0,
    method_options: dict[str, dict[str, Any]] | None = None,
    search_methods: tuple[str, ...] | list[str] | None = None,
) -> MethodsResult:
    """The one entry into identification: several methods on the same texts.

    When ``options.verify`` is on, the last texts of each language are held out as the
    *validation* split and every method, baselines included, is fitted on the rest (the same
    texts for all, recorded in each set's ``texts`` provenance); verifiable methods
    (:class:`crane.methods.MethodSpec`) confirm their candidates on the validation split
    (``verify_methods`` limits which; default all). Relevance methods get their own statistics
    (:func:`identify`'s shards); activation methods share **one** forward pass
    (``RUN_DIR/activations``); the ``random`` control is a layer-matched copy (``seed``) of the
    reference method's sets (the ``match:`` method, else the first method). Budgets follow
    :func:`budget_plan`. ``method_options`` passes scorer options to activation methods
    (e.g. ``{"plnd": {"top_number": 500}}``). Each set is saved as
    ``RUN_DIR/neurons-<method>.json``. Each method of ``search_methods`` is reported twice:
    as published (its own set) and after the set search from that set, ``<method>+search``
    (selection v3; the same search options for every method).

    Under ``torchrun``/``accelerate launch`` every rank first computes its share of the
    statistics shards (:func:`crane.distributed.share_statistics`); rank 0 then goes on alone
    and every other rank raises :class:`crane.distributed.RankDone`.
    """
    from crane.distributed import share_statistics
    from crane.methods import parse_methods

    methods, budget_for = budget_plan(parse_methods(",".join(methods)), budget, reference_budget)
    _check_before_work(loaded, corpus, methods, budget)
    base = options or IdentifyOptions()
    searches = check_search_methods(methods, search_methods, base, verify_methods)
    progress = progress or NullProgress()
    share_statistics(
        loaded, corpus, methods, out_dir=out_dir, options=base, progress=progress,
        verify_methods=verify_methods, budget=budget, reference_budget=reference_budget,
        search_methods=searches,
    )
    out = Path(out_dir) if out_dir is not None else None
    # a run directory of another model is refused here, before any work
    owner = Manifest(out, loaded.identity.key()) if out is not None else None
    fit, validation = _shared_split(corpus, base, methods, verify_methods, searches)
    texts = _texts_provenance(fit, validation)
    result = MethodsResult({}, {}, {}, fit=fit, validation=validation)
    activation_stats: Stats | None = None
    for name in methods:
        spec = get_method(name)
        started = time.perf_counter()
        chosen = budget_for(name, out)
        if spec.statistics == "control":
            neurons = _control_set(result, methods, budget, loaded, seed)
        elif spec.statistics == "relevance":
            run = _identify_relevance(
                loaded, fit, validation,
                replace(_method_options(base, name, verify_methods), budget=chosen),
                out, progress,
            )
            result.sets[name], result.reports[name] = run.neurons, run.reports
            result.stats[name] = run.stats
            result.seconds[name] = time.perf_counter() - started
            if name in searches:
                _search_variant(loaded, name, result, fit, base, out, progress, method_options)
            continue
        else:
            if activation_stats is None:
                activation_stats = _activation_stats(loaded, fit, base, out, progress)
            if chosen is not None:
                for lang in activation_stats.language_codes:
                    chosen.for_language(lang, loaded.shape.n_neurons)
            result.stats[name] = activation_stats
            scorer_options = (method_options or {}).get(name)
            if spec.builder is not None:
                chosen = chosen or Budget(fraction=DEFAULT_FRACTION)
                neurons, result.reports[name] = built_set(
                    loaded, name, result, activation_stats, base, chosen, progress
                )
            elif chosen is not None and validation is not None and _is_verified(
                base, name, verify_methods
            ):
                neurons, result.reports[name] = _verified_set(
                    loaded, name, activation_stats, fit, validation, base, chosen,
                    scorer_options, progress, out,
                )
            else:
                neurons = spec.select(
                    activation_stats, budget=chosen, site=base.relevance.site,
                    options=scorer_options,
                )
            neurons.meta.update(
                {
                    "method": name,
                    "model": loaded.source,
                    "corpus": activation_stats.meta.get("corpus"),
                    "texts": texts,
                    "budget": chosen.describe() if chosen is not None else "own",
                    "verified": name in result.reports,
                    "counts": {
                        lang: activation_stats[lang].counts
                        for lang in activation_stats.language_codes
                    },
                }
            )
        if out is not None:
            neurons.save(out / f"neurons-{name}.json")
        result.sets[name] = neurons
        result.seconds[name] = time.perf_counter() - started
        if name in searches:
            _search_variant(loaded, name, result, fit, base, out, progress, method_options)
    if owner is not None:
        owner.own()
    return result


def _search_variant(
    loaded: LoadedModel,
    name: str,
    result: MethodsResult,
    fit: Corpus,
    base: IdentifyOptions,
    out: Path | None,
    progress: Progress,
    method_options: dict[str, dict[str, Any]] | None,
) -> None:
    """``<name>+search``: method ``name``'s published set after the set search, added to
    ``result`` (and saved in the run directory)."""
    started = time.perf_counter()
    assert result.validation is not None
    spec = get_method(name)
    if spec.statistics == "relevance":
        scores = spec.score(result.stats[name], **base.score_options())
    else:
        scores = spec.score(result.stats[name], **((method_options or {}).get(name) or {}))
    variant = f"{name}{SEARCHED}"
    neurons, result.reports[variant] = searched(
        loaded, variant, result.sets[name], scores, fit, result.validation, base, out,
        progress, start_label="published",
    )
    neurons.meta.update({"method": variant, "searched_from": name, "verified": True})
    if out is not None:
        neurons.save(out / f"neurons-{variant}.json")
    result.sets[variant] = neurons
    result.seconds[variant] = time.perf_counter() - started


SEARCHED = "+search"
"""Suffix of a method's set after the set search from its published set (``actmean+search``)."""


def check_search_methods(
    methods: list[str],
    search_methods: tuple[str, ...] | list[str] | None,
    base: IdentifyOptions,
    verify_methods: tuple[str, ...] | list[str] | None,
) -> list[str]:
    """The methods that get a searched variant, checked before any work."""
    chosen = list(dict.fromkeys(search_methods or []))
    for name in chosen:
        spec = get_method(name)
        if name not in methods:
            raise ConfigError(
                f"search_methods names {name!r}, which the run does not identify; add it to "
                "the methods or leave it out of search_methods."
            )
        if spec.statistics == "control" or spec.builder is not None:
            raise ConfigError(
                f"search_methods cannot take {name!r}: the search starts from a scored "
                "method's set (e.g. crane, gradxact, actmean, lape)."
            )
        if base.verify_mode == "search" and _is_verified(base, name, verify_methods):
            raise ConfigError(
                f"{name!r} is already searched (verify_mode = \"search\"); leave it out of "
                "search_methods or out of verify_methods."
            )
    return chosen


def _shared_split(
    corpus: Corpus,
    base: IdentifyOptions,
    methods: list[str],
    verify_methods: tuple[str, ...] | list[str] | None,
    searches: list[str] | None = None,
) -> tuple[Corpus, Corpus | None]:
    """The run's fit and validation texts: a validation split is held out when any method of
    the run is verified or searched on it, and then every method is fitted on the same rest."""
    verified = bool(searches) or any(_is_verified(base, m, verify_methods) for m in methods)
    return _collection_split(corpus, replace(base, verify=verified))


def _is_verified(
    base: IdentifyOptions, name: str, verify_methods: tuple[str, ...] | list[str] | None
) -> bool:
    """Whether method ``name`` confirms its candidates on the validation texts: verifiable
    methods (CRANE's) unless ``verify_methods`` leaves them out; any other scored method when
    ``verify_methods`` names it (e.g. actmean, to separate "relevance vs activation" from
    "verified vs not")."""
    spec = get_method(name)
    if not base.verify or spec.statistics == "control":
        return False
    if verify_methods is None:
        return spec.verifiable
    return name in verify_methods


def _verified_set(
    loaded: LoadedModel,
    name: str,
    stats: Stats,
    fit: Corpus,
    validation: Corpus,
    base: IdentifyOptions,
    budget: Budget,
    scorer_options: dict[str, Any] | None,
    progress: Progress,
    out: Path | None = None,
) -> tuple[NeuronSet, dict[str, Any]]:
    """An activation method's set confirmed like CRANE's (``base.verify_mode``): group tests
    of its ranking, the causal construction with its statistics collected again under each
    round's mask, or that construction's set improved by the set search."""
    from crane.construction import construct_sets
    from crane.intervene import mask_neurons
    from crane.verify import verify_candidates

    spec = get_method(name)
    site = spec.site_for(base.relevance.site)

    def score(again: Stats) -> Any:
        return spec.score(again, **(scorer_options or {}))

    if base.verify_mode == "groups":
        neurons, reports = verify_candidates(
            loaded.model, loaded.tokenizer, score(stats), budget, validation, site=site,
            options=base.verification, adapter=loaded.adapter, progress=progress,
        )
        return neurons, dict(reports)

    def recollect(masked: NeuronSet) -> Stats:
        with mask_neurons(loaded.model, masked, adapter=loaded.adapter):
            return _activation_stats(loaded, fit, base, None, NullProgress())

    searching = base.verify_mode == "search"
    neurons, built = construct_sets(
        loaded, stats, validation, score=score, recollect=recollect, budget=budget, site=site,
        batching=base.relevance, options=base.construction(),
        progress=progress, measure=not searching,
    )
    if searching:
        return searched(loaded, name, neurons, score(stats), fit, validation, base, out, progress)
    return neurons, dict(built)


def built_set(
    loaded: LoadedModel,
    name: str,
    result: MethodsResult,
    activation_stats: Stats,
    base: IdentifyOptions,
    budget: Budget,
    progress: Progress,
    *,
    validate: bool = True,
) -> tuple[NeuronSet, dict[str, Any]]:
    """The sets of a method built with the model (``optimise``) on the run's fit texts,
    initialised from the scores of ``base.optimise.init`` (default: crane when the run has it,
    else actmean), measured on the validation texts when ``validate``."""
    spec = get_method(name)
    init_name = base.optimise.init or ("crane" if "crane" in result.stats else "actmean")
    init_spec = get_method(init_name)
    if init_spec.builder is not None or init_spec.statistics == "control":
        raise ConfigError(
            f"{name} cannot start from {init_name!r}: name a scored method (e.g. crane or "
            "actmean) as optimise_init."
        )
    stats = result.stats.get(init_name)
    if stats is None and init_spec.statistics == "activation":
        stats = activation_stats
    if stats is None:
        raise ConfigError(
            f"{name} starts from {init_name!r}, which this run does not compute; add it to "
            "the run's methods or choose another optimise_init."
        )
    options = base.score_options() if init_spec.statistics == "relevance" else {}
    init = init_spec.score(stats, **options)
    init.method = init_name
    assert result.fit is not None
    fit = collected_texts(loaded, result.fit, base)  # the texts every collector of the run read
    site = spec.site_for(base.relevance.site)
    rivals = {
        m: s for m, s in result.sets.items()
        if get_method(m.removesuffix(SEARCHED)).statistics != "control"
    }
    neurons, reports = spec.build(
        loaded, fit, result.validation if validate else None, init,
        budget=budget, site=site, batching=base.relevance,
        options=replace(base.optimise, init=init_name), progress=progress,
        starts=_warm_starts(result, base.optimise.start, site, loaded.shape.d_ff),
        rivals=rivals if validate else None,
    )
    return neurons, dict(reports)


def _warm_starts(
    result: MethodsResult, start: str | None, site: str, d_ff: int
) -> dict[str, tuple[str, list[int]]] | None:
    """Language → (set name, flat members) the reference optimum starts from: the set named
    ``start``, or with ``best`` each language's set of the highest validated Sel among the
    run's verified and searched sets at ``site``; ``None`` without a start."""
    if start is None:
        return None
    if start != "best":
        if start not in result.sets:
            raise ConfigError(
                f"optimise_start names {start!r}, which this run does not identify; name one "
                f"of: {', '.join(result.sets)}, or best."
            )
        chosen = result.sets[start]
        return {lang: (start, sorted(chosen.flat(lang, d_ff))) for lang in chosen.languages}
    starts: dict[str, tuple[str, list[int]]] = {}
    for lang in result.validation.languages if result.validation is not None else []:
        measured = [
            (float(getattr(reports[lang], "measured_sel", float("nan"))), m)
            for m, reports in result.reports.items()
            if lang in reports and result.sets.get(m) is not None
            and result.sets[m].site == site and lang in result.sets[m].languages
        ]
        measured = [(sel, m) for sel, m in measured if sel == sel]  # NaN: not measured
        if measured:
            _, best = max(measured)
            starts[lang] = (best, sorted(result.sets[best].flat(lang, d_ff)))
    return starts or None


def reference_method(methods: list[str], budget: str) -> str:
    """The method others are sized like (``match:METHOD``) and the control copies: the
    matched method when it is in the run, else the first method that is not a control."""
    matched = budget[len("match:") :] if budget.startswith("match:") else None
    if matched in methods:
        return matched
    scored = [m for m in methods if get_method(m).statistics != "control"]
    if not scored:
        raise ConfigError(
            "The random control copies another method's sets layer by layer; run it with a "
            "method to match (e.g. --method crane,random)."
        )
    return scored[0]


def _control_set(
    result: MethodsResult, methods: list[str], budget: str, loaded: LoadedModel, seed: int
) -> NeuronSet:
    """The layer-matched random control of the run's reference sets."""
    reference = reference_method(methods, budget)
    return result.sets[reference].random_like(seed=seed, d_ff=loaded.shape.d_ff)


def _check_before_work(
    loaded: LoadedModel, corpus: Corpus, methods: list[str], budget: str
) -> None:
    """Fail on too few languages or a budget the model cannot hold before any work."""
    if len(corpus.languages) < 2:
        raise ConfigError("Identification compares languages: give at least two (e.g. en,zh).")
    if budget != "own" and not (budget.startswith("match:") and budget[6:] in methods):
        from crane.scoring import parse_budget

        fixed = parse_budget(budget)
        for lang in corpus.languages:
            fixed.for_language(lang, loaded.shape.n_neurons)


def _method_options(
    base: IdentifyOptions, name: str, verify_methods: tuple[str, ...] | list[str] | None
) -> IdentifyOptions:
    """``base`` for relevance method ``name`` (crane | gradxact), verified or not."""
    spec = get_method(name)
    relevance = replace(base.relevance, method=spec.relevance).validate()
    return replace(base, relevance=relevance, verify=_is_verified(base, name, verify_methods))


def _activation_stats(
    loaded: LoadedModel,
    corpus: Corpus,
    base: IdentifyOptions,
    out: Path | None,
    progress: Progress,
    rank: tuple[int, int] | None = None,
) -> Stats:
    """The one activation pass of a run (shards under ``out/activations``)."""
    from crane.activations import ActivationOptions, collect_activations

    folder = out / "activations" if out is not None else None
    return collect_activations(
        loaded.model, loaded.tokenizer, corpus,
        options=ActivationOptions(
            site=base.relevance.site, max_length=base.relevance.max_length,
            batch_size=base.relevance.batch_size, batch_tokens=base.relevance.batch_tokens,
            shard_texts=base.relevance.shard_texts,
        ),
        **collector_options(loaded, base, folder, progress, rank),
    )


def collect_shards(
    loaded: LoadedModel,
    corpus: Corpus,
    methods: list[str],
    *,
    rank: tuple[int, int],
    options: IdentifyOptions | None = None,
    out_dir: str | Path,
    progress: Progress | None = None,
    verify_methods: tuple[str, ...] | list[str] | None = None,
    budget: str = "0.5%",
    reference_budget: str = "0.5%",
    search_methods: tuple[str, ...] | list[str] | None = None,
) -> None:
    """Compute data-parallel rank ``rank = (rank, world_size)``'s share of every statistics
    shard that :func:`identify_methods` with the same arguments reads from ``out_dir``.

    Shards are dealt round-robin over all languages (see :func:`crane.collect.run_shards`);
    once every rank has done its share, :func:`identify_methods` on one process finds every
    shard complete and only merges, scores, verifies and writes. Nothing else is written.
    ``budget`` and ``reference_budget`` are checked as :func:`identify_methods` checks them, so
    a bad one fails on every rank before any work.
    """
    from crane.methods import parse_methods

    methods, _ = budget_plan(parse_methods(",".join(methods)), budget, reference_budget)
    _check_before_work(loaded, corpus, methods, budget)
    base = options or IdentifyOptions()
    progress = progress or NullProgress()
    out = Path(out_dir)
    searches = list(search_methods or [])
    fit, _ = _shared_split(corpus, base, methods, verify_methods, searches)  # as identify_methods
    kinds = {name: get_method(name).statistics for name in methods}
    for name in (m for m in methods if kinds[m] == "relevance"):
        chosen = _method_options(base, name, verify_methods)
        _relevance_stats(loaded, fit, chosen, out, progress, rank=rank)
    if "activation" in kinds.values():
        _activation_stats(loaded, fit, base, out, progress, rank=rank)


