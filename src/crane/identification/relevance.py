"""One relevance method (``crane``: AttnLRP; ``gradxact``): relevance statistics → scores →
(verified) neuron set, in a run directory.

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
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from crane.collect import collect_relevance
from crane.data.corpus import Corpus
from crane.errors import ConfigError, CraneError, LanguageError
from crane.identification.options import IdentifyOptions, IdentifyResult
from crane.io import atomic_write_text, parse_json
from crane.manifest import Manifest, inputs_key
from crane.methods import get_method
from crane.models.loading import LoadedModel
from crane.neurons import NeuronSet
from crane.progress import NullProgress, Progress
from crane.scoring import select_top
from crane.stats import Stats
from crane.verify import LanguageReport, verify_candidates


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


def collector_options(
    loaded: LoadedModel,
    options: IdentifyOptions,
    out_dir: Path | None,
    progress: Progress,
    rank: tuple[int, int] | None,
) -> dict[str, Any]:
    """The keyword arguments every statistics collector of a run takes (where shards go, the
    model's identity, the per-language token budget, this rank's share)."""
    return {
        "out_dir": out_dir,
        "adapter": loaded.adapter,
        "model_id": loaded.source,
        "max_texts": options.max_texts,
        "max_tokens": options.token_budget,
        "progress": progress,
        "part": rank,
    }


def _relevance_stats(
    loaded: LoadedModel,
    collect_corpus: Corpus,
    options: IdentifyOptions,
    out: Path | None,
    progress: Progress,
    rank: tuple[int, int] | None = None,
) -> Stats:
    """The relevance statistics of a run (shards under ``out/stats[-<method>]``)."""
    folder = out / stats_dirname(options.relevance.method) if out is not None else None
    return collect_relevance(
        loaded.model, loaded.tokenizer, collect_corpus, options=options.relevance,
        **collector_options(loaded, options, folder, progress, rank),
    )


RECONSTRUCTION = (
    "crane-neurons' reconstruction of CRANE (Le & Li, 2026, arXiv 2601.04664) from the paper's "
    "abstract; every choice where the paper is silent is in docs/method.md"
)
"""Recorded in the provenance of every relevance method's set."""

VERIFY_MODES = ("groups", "rounds", "search")
"""``groups``: v1 group tests of the top candidates; ``rounds``: v2 causal construction;
``search``: v3, the construction's set improved by passes of measured swaps."""


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
    if options.verify_mode not in VERIFY_MODES:
        raise ConfigError(
            f"Unknown verify mode {options.verify_mode!r}; use one of: {', '.join(VERIFY_MODES)}."
        )
    for lang in fit.languages:  # fail on a bad budget before any computation
        options.budget.for_language(lang, loaded.shape.n_neurons)
    verify_corpus = validation if options.verify else None
    stats = _relevance_stats(loaded, fit, options, out, progress)
    stage = f"identify-method:{spec.name}"
    key = _result_key(loaded, options, stats, fit, verify_corpus)
    if out is not None:
        reused = _reuse_result(out, stage, key, spec.name, stats, options.verify_mode)
        if reused is not None:
            progress.message(f"{spec.name}: reusing the finished sets in {out}")
            return reused
    scores = spec.score(stats, **options.score_options())
    site = options.relevance.site
    reports: dict[str, LanguageReport] = {}
    if verify_corpus is not None and options.verify_mode in ("rounds", "search"):
        from crane.construction import construct_sets
        from crane.intervene import mask_neurons

        def recollect(masked: NeuronSet) -> Stats:
            with mask_neurons(loaded.model, masked, adapter=loaded.adapter):
                return collect_relevance(
                    loaded.model, loaded.tokenizer, fit, options=options.relevance,
                    adapter=loaded.adapter, model_id=loaded.source,
                    max_texts=options.max_texts, max_tokens=options.token_budget,
                )

        searching = options.verify_mode == "search"
        neurons, reports = construct_sets(
            loaded, stats, verify_corpus,
            score=lambda again: spec.score(again, **options.score_options()),
            recollect=recollect, budget=options.budget, site=site,
            batching=options.relevance, options=options.construction(),
            progress=progress, measure=not searching,
        )
        if searching:
            neurons, reports = searched(
                loaded, spec.name, neurons, scores, fit, verify_corpus, options, out, progress
            )
        neurons.meta.update(
            {"method": spec.name, "options": scores.options, "budget": options.budget.describe()}
        )
    elif verify_corpus is not None:
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
            "reconstruction": RECONSTRUCTION,
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
        Manifest(out, loaded.identity.key()).record(
            stage, key, [out / f"neurons-{name}.json", out / f"identify-{name}.json"],
            result.seconds,
        )
    return result


def collected_texts(loaded: LoadedModel, corpus: Corpus, options: IdentifyOptions) -> Corpus:
    """The texts of ``corpus`` that every statistics collector of a run reads (the leading
    ones within ``max_texts`` and the token budget)."""
    from crane.shards import texts_within_budget

    return Corpus(
        {
            lang: texts_within_budget(
                loaded.tokenizer, corpus[lang], options.max_texts, options.token_budget
            )
            for lang in corpus.languages
        },
        dict(corpus.provenance),
    )


def searched(
    loaded: LoadedModel,
    name: str,
    start: NeuronSet,
    scores: Any,
    fit: Corpus,
    validation: Corpus,
    options: IdentifyOptions,
    out: Path | None,
    progress: Progress,
    start_label: str | None = None,
) -> tuple[NeuronSet, dict[str, Any]]:
    """Method ``name``'s set after the set search (selection v3) from ``start`` (its top-k or
    construction, or ``start_label``), candidates from ``scores``; checkpoints under
    ``RUN_DIR/search``."""
    from crane.search import search_neuron_set

    label = start_label or ("top-k" if options.rounds == 1 else f"rounds:{options.rounds}")
    neurons, reports = search_neuron_set(
        loaded, start, scores, collected_texts(loaded, fit, options), validation,
        batching=options.relevance, options=options.search(), start_label=label,
        method=name, state_dir=out / "search" if out is not None else None, progress=progress,
        rescore=_masked_rescore(loaded, name.removesuffix("+search"), start, options),
    )
    return neurons, dict(reports)


def _masked_rescore(
    loaded: LoadedModel, method: str, start: NeuronSet, options: IdentifyOptions
) -> Any:
    """``rescore(lang, members, texts)`` for the search's ``masked`` candidates: ``method``'s
    ranking from its statistics collected again on ``texts`` with ``members`` masked."""
    import torch

    from crane.activations import ActivationOptions, collect_activations
    from crane.intervene import mask_neurons
    from crane.scoring.base import to_layer_indices

    spec = get_method(method)
    relevance = replace(options.relevance, method=spec.relevance or options.relevance.method)

    def rescore(lang: str, members: list[int], texts: dict[str, list[str]]) -> Any:
        masked = NeuronSet(
            {lang: to_layer_indices(torch.tensor(members), loaded.shape.d_ff)}, start.site,
            loaded.shape.n_layers, loaded.shape.d_ff,
        )
        corpus = Corpus(texts)
        with mask_neurons(loaded.model, masked, adapter=loaded.adapter):
            if spec.statistics == "relevance":
                stats = collect_relevance(
                    loaded.model, loaded.tokenizer, corpus, options=relevance,
                    adapter=loaded.adapter,
                )
                return spec.score(stats, **options.score_options()).ranking(lang)
            stats = collect_activations(
                loaded.model, loaded.tokenizer, corpus, adapter=loaded.adapter,
                options=ActivationOptions(
                    site=options.relevance.site, max_length=relevance.max_length,
                    batch_size=relevance.batch_size, batch_tokens=relevance.batch_tokens,
                ),
            )
            return spec.score(stats).ranking(lang)

    return rescore


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
    out: Path, stage: str, key: str, name: str, stats: Stats, mode: str = "groups"
) -> IdentifyResult | None:
    """The finished sets and verification reports of an earlier run with the same inputs, when
    the manifest vouches for them (outputs intact); ``None`` otherwise."""
    if not Manifest(out).complete(stage, key):
        return None
    try:
        neurons = NeuronSet.load(out / f"neurons-{name}.json")
        report = parse_json((out / f"identify-{name}.json").read_text(encoding="utf-8"))
        kind: Any = LanguageReport
        if mode == "rounds":
            from crane.construction import ConstructionReport

            kind = ConstructionReport
        elif mode == "search":
            from crane.search import SearchReport

            kind = SearchReport
        reports = {lang: kind(**r) for lang, r in (report.get("verification") or {}).items()}
    except (CraneError, OSError, ValueError, TypeError):
        return None  # recorded but unreadable: compute again
    return IdentifyResult(neurons, stats, reports, float(report.get("seconds", 0.0)))


def _jsonable(value: Any) -> Any:
    return parse_json(json.dumps(value, default=str))
