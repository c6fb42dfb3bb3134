"""``identify``: relevance statistics → CRANE scores → (verified) neuron set, in a run directory.

Run directory layout::

    RUN_DIR/stats/<lang>/shard-NNNNN.safetensors(.json)   resumable relevance shards (AttnLRP)
    RUN_DIR/stats-gradxact/<lang>/...                      the same for gradient × activation
    RUN_DIR/neurons-<method>.json                          the neuron set with provenance
    RUN_DIR/identify-<method>.json                         options, counts, verification report
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from crane.collect import RelevanceOptions, collect_relevance
from crane.data.corpus import Corpus
from crane.errors import ConfigError, CraneError, LanguageError
from crane.io import atomic_write_text
from crane.manifest import Manifest, inputs_key
from crane.methods import get_method, method_names, registered_methods
from crane.models.loading import LoadedModel
from crane.neurons import NeuronSet
from crane.progress import NullProgress, Progress
from crane.scoring import Budget, select_top
from crane.stats import Stats
from crane.verify import LanguageReport, VerifyOptions, verify_candidates


@dataclass(frozen=True)
class IdentifyOptions:
    """Every choice of an identification run (all recorded in its outputs)."""

    relevance: RelevanceOptions = field(default_factory=RelevanceOptions)
    score: str = "margin"
    quantile: float = 0.95
    profile: str = "signed"
    normalize: str = "global"
    budget: Budget = field(default_factory=lambda: Budget(fraction=0.005))
    verify: bool = True
    verify_fraction: float = 0.2
    verify_min_texts: int = 4
    verify_max_texts: int = 24
    verification: VerifyOptions = field(default_factory=VerifyOptions)
    max_texts: int | None = None
    """Most texts per language (the first ones)."""
    token_budget: int | None = None
    """Most tokens per language (``crane identify --max-tokens``); not ``batch_tokens``, the
    padded tokens of one batch."""

    @property
    def method_name(self) -> str:
        """The registered method of this relevance method (``crane`` for AttnLRP,
        ``gradxact`` for plain gradient × activation)."""
        return next(
            spec.name
            for spec in registered_methods()
            if spec.relevance == self.relevance.method
        )


@dataclass
class IdentifyResult:
    neurons: NeuronSet
    stats: Stats
    reports: dict[str, LanguageReport]
    seconds: float


def stats_dirname(relevance_method: str) -> str:
    """Folder of a run's relevance shards: ``stats`` for AttnLRP, ``stats-<method>`` otherwise."""
    return "stats" if relevance_method == "attnlrp" else f"stats-{relevance_method}"


def split_for_verification(
    corpus: Corpus, fraction: float, min_texts: int, max_texts: int
) -> tuple[Corpus, Corpus]:
    """Hold out the last texts of each language for verification (deterministic)."""
    if not 0 < fraction < 1:
        raise ConfigError(f"verify_fraction must be in (0, 1), got {fraction}.")
    keep: dict[str, list[str]] = {}
    held: dict[str, list[str]] = {}
    for lang in corpus.languages:
        texts = corpus[lang]
        n = min(max(round(fraction * len(texts)), min_texts), max_texts, len(texts) - 1)
        if n < 1:
            raise LanguageError(
                f"Language '{lang}' has {len(texts)} text(s): too few to hold some out for "
                "verification; give more texts or use --no-verify."
            )
        keep[lang], held[lang] = texts[: len(texts) - n], texts[len(texts) - n :]
    provenance = dict(corpus.provenance)
    return (
        Corpus(keep, {**provenance, "part": "identification minus verification"}),
        Corpus(held, {**provenance, "part": "verification (held out from identification)"}),
    )


def _collection_split(corpus: Corpus, options: IdentifyOptions) -> tuple[Corpus, Corpus | None]:
    """(texts whose relevance is collected, held-out verification texts or ``None``)."""
    if not options.verify:
        return corpus, None
    return split_for_verification(
        corpus, options.verify_fraction, options.verify_min_texts, options.verify_max_texts
    )


def _relevance_stats(
    loaded: LoadedModel,
    collect_corpus: Corpus,
    options: IdentifyOptions,
    out: Path | None,
    progress: Progress,
    rank: tuple[int, int] | None = None,
) -> Stats:
    """The relevance statistics of a run (shards under ``out/stats[-<method>]``)."""
    return collect_relevance(
        loaded.model,
        loaded.tokenizer,
        collect_corpus,
        options=options.relevance,
        out_dir=out / stats_dirname(options.relevance.method) if out is not None else None,
        adapter=loaded.adapter,
        model_id=loaded.source,
        max_texts=options.max_texts,
        max_tokens=options.token_budget,
        progress=progress,
        part=rank,
    )


def identify(
    loaded: LoadedModel,
    corpus: Corpus,
    *,
    options: IdentifyOptions | None = None,
    out_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> IdentifyResult:
    """Find each language's neurons on ``corpus`` by one relevance method (see the module
    docstring for outputs): the last texts of each language are held out for verification."""
    options = options or IdentifyOptions()
    if len(corpus.languages) < 2:
        raise ConfigError("Identification compares languages: give at least two (e.g. en,zh).")
    fit, validation = _collection_split(corpus, options)
    return _identify_relevance(loaded, fit, validation, options, out_dir, progress)


def _identify_relevance(
    loaded: LoadedModel,
    fit: Corpus,
    validation: Corpus | None,
    options: IdentifyOptions,
    out_dir: str | Path | None,
    progress: Progress | None,
) -> IdentifyResult:
    """A relevance method's set: statistics on ``fit``, verified on ``validation`` when
    ``options.verify`` (``validation`` is then required)."""
    progress = progress or NullProgress()
    started = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    spec = get_method(options.method_name)
    for lang in fit.languages:  # fail on a bad budget before any computation
        options.budget.for_language(lang, loaded.shape.n_neurons)
    verify_corpus = validation if options.verify else None
    stats = _relevance_stats(loaded, fit, options, out, progress)
    stage = f"identify-method:{spec.name}"
    key = _result_key(loaded, options, stats, fit, verify_corpus)
    if out is not None:
        reused = _reuse_result(out, stage, key, spec.name, stats)
        if reused is not None:
            progress.message(f"{spec.name}: reusing the finished sets in {out}")
            return reused
    scores = spec.score(
        stats,
        score=options.score,
        quantile=options.quantile,
        profile=options.profile,
        normalize=options.normalize,
    )
    site = options.relevance.site
    reports: dict[str, LanguageReport] = {}
    if verify_corpus is not None:
        neurons, reports = verify_candidates(
            loaded.model, loaded.tokenizer, scores, options.budget, verify_corpus,
            site=site, options=options.verification, adapter=loaded.adapter, progress=progress,
        )
    else:
        neurons = select_top(scores, options.budget, site=site)
    neurons.meta.update(
        {
            "method": spec.name,
            "relevance": asdict(options.relevance),
            "model": loaded.source,
            "corpus": stats.meta.get("corpus"),
            "texts": _texts_provenance(fit, validation),
            "counts": {lang: stats[lang].counts for lang in stats.language_codes},
            "verified": options.verify,
        }
    )
    result = IdentifyResult(neurons, stats, reports, time.perf_counter() - started)
    if out is not None:
        name = spec.name
        neurons.save(out / f"neurons-{name}.json")
        report = {
            "method": name,
            "options": _jsonable(asdict(options)),
            "sizes": {lang: neurons.size(lang) for lang in neurons.languages},
            "counts": neurons.meta["counts"],
            "verification": {lang: asdict(r) for lang, r in reports.items()},
            "seconds": result.seconds,
        }
        atomic_write_text(out / f"identify-{name}.json", json.dumps(report, indent=1, default=str))
        Manifest(out).record(
            stage, key, [out / f"neurons-{name}.json", out / f"identify-{name}.json"],
            result.seconds,
        )
    return result


def _texts_provenance(fit: Corpus, validation: Corpus | None) -> dict[str, Any]:
    """Which texts a set was fitted (and validated) on: the same for every method of a run."""
    return {
        "fit": fit.provenance.get("sha256"),
        "fit_texts": {lang: len(fit[lang]) for lang in fit.languages},
        "validation": validation.provenance.get("sha256") if validation is not None else None,
        "validation_texts": (
            {lang: len(validation[lang]) for lang in validation.languages}
            if validation is not None
            else {}
        ),
    }


def _stats_digest(stats: Stats) -> str:
    """sha256 over every language's counts and accumulator bytes (sorted names)."""
    digest = hashlib.sha256()
    for lang in sorted(stats.language_codes):
        digest.update(json.dumps([lang, stats[lang].counts], sort_keys=True).encode())
        for name in sorted(stats[lang].tensors):
            digest.update(name.encode())
            digest.update(stats[lang].tensors[name].contiguous().numpy().tobytes())
    return digest.hexdigest()


def _result_key(
    loaded: LoadedModel,
    options: IdentifyOptions,
    stats: Stats,
    collect_corpus: Corpus,
    verify_corpus: Corpus | None,
) -> str:
    """What a relevance method's sets depend on: options, model weights, the verification texts
    and the merged statistics (which stand for the collection texts and their shards)."""
    chosen = asdict(options)
    chosen["budget"].pop("source", None)  # the matched file's path: its sizes are what counts
    chosen["relevance"].pop("checkpoint", None)  # how memory is saved, not what is computed
    chosen["max_tokens"] = chosen.pop("token_budget")  # the key of runs before the rename
    return inputs_key(
        {
            "options": _jsonable(chosen),
            "model": loaded.identity.key(),
            "collect": collect_corpus.provenance.get("sha256"),
            "verify": verify_corpus.provenance.get("sha256") if verify_corpus else None,
            "stats": _stats_digest(stats),
        }
    )


def _reuse_result(
    out: Path, stage: str, key: str, name: str, stats: Stats
) -> IdentifyResult | None:
    """The finished sets and verification reports of an earlier run with the same inputs, when
    the manifest vouches for them (outputs intact); ``None`` otherwise."""
    if not Manifest(out).complete(stage, key):
        return None
    try:
        neurons = NeuronSet.load(out / f"neurons-{name}.json")
        report = json.loads((out / f"identify-{name}.json").read_text(encoding="utf-8"))
        reports = {
            lang: LanguageReport(**r) for lang, r in (report.get("verification") or {}).items()
        }
    except (CraneError, OSError, ValueError, TypeError):
        return None  # recorded but unreadable: compute again
    return IdentifyResult(neurons, stats, reports, float(report.get("seconds", 0.0)))


@dataclass
class MethodsResult:
    """Neuron sets of several methods from one run, with verification reports and timings."""

    sets: dict[str, NeuronSet]
    reports: dict[str, dict[str, LanguageReport]]
    seconds: dict[str, float]
    stats: dict[str, Stats] = field(default_factory=dict)
    """Statistics each method was scored on (activation methods share one object)."""


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
    methods = [m for m in methods if m not in controls] + controls  # a control copies a set
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
    ``RUN_DIR/neurons-<method>.json``.

    Under ``torchrun``/``accelerate launch`` every rank first computes its share of the
    statistics shards (:func:`crane.distributed.share_statistics`); rank 0 then goes on alone
    and every other rank raises :class:`crane.distributed.RankDone`.
    """
    from crane.distributed import share_statistics
    from crane.methods import parse_methods

    methods, budget_for = budget_plan(parse_methods(",".join(methods)), budget, reference_budget)
    _check_before_work(loaded, corpus, methods, budget)
    base = options or IdentifyOptions()
    progress = progress or NullProgress()
    share_statistics(
        loaded, corpus, methods, out_dir=out_dir, options=base, progress=progress,
        verify_methods=verify_methods, budget=budget, reference_budget=reference_budget,
    )
    out = Path(out_dir) if out_dir is not None else None
    fit, validation = _shared_split(corpus, base, methods, verify_methods)
    texts = _texts_provenance(fit, validation)
    result = MethodsResult({}, {}, {})
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
            continue
        else:
            if activation_stats is None:
                activation_stats = _activation_stats(loaded, fit, base, out, progress)
            if chosen is not None:
                for lang in activation_stats.language_codes:
                    chosen.for_language(lang, loaded.shape.n_neurons)
            result.stats[name] = activation_stats
            neurons = spec.select(
                activation_stats,
                budget=chosen,
                site=base.relevance.site,
                options=(method_options or {}).get(name),
            )
            neurons.meta.update(
                {
                    "method": name,
                    "model": loaded.source,
                    "corpus": activation_stats.meta.get("corpus"),
                    "texts": texts,
                    "budget": chosen.describe() if chosen is not None else "own",
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
    return result


def _shared_split(
    corpus: Corpus,
    base: IdentifyOptions,
    methods: list[str],
    verify_methods: tuple[str, ...] | list[str] | None,
) -> tuple[Corpus, Corpus | None]:
    """The run's fit and validation texts: a validation split is held out when any method of
    the run is verified on it, and then every method is fitted on the same rest."""
    verified = any(_method_options(base, m, verify_methods).verify for m in methods
                   if get_method(m).statistics == "relevance")
    return _collection_split(corpus, replace(base, verify=verified))


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
    verify = (
        base.verify and spec.verifiable and (verify_methods is None or name in verify_methods)
    )
    return replace(base, relevance=relevance, verify=verify)


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

    return collect_activations(
        loaded.model, loaded.tokenizer, corpus,
        options=ActivationOptions(
            site=base.relevance.site, max_length=base.relevance.max_length,
            batch_size=base.relevance.batch_size, batch_tokens=base.relevance.batch_tokens,
            shard_texts=base.relevance.shard_texts,
        ),
        out_dir=out / "activations" if out is not None else None,
        adapter=loaded.adapter, model_id=loaded.source, max_texts=base.max_texts,
        max_tokens=base.token_budget, progress=progress, part=rank,
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
    fit, _ = _shared_split(corpus, base, methods, verify_methods)  # as identify_methods
    kinds = {name: get_method(name).statistics for name in methods}
    for name in (m for m in methods if kinds[m] == "relevance"):
        chosen = _method_options(base, name, verify_methods)
        _relevance_stats(loaded, fit, chosen, out, progress, rank=rank)
    if "activation" in kinds.values():
        _activation_stats(loaded, fit, base, out, progress, rank=rank)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
