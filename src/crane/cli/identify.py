"""``crane identify``: each language's neurons by one or several methods; resumable, and
data-parallel under torchrun / accelerate launch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from crane.cli.options import (
    AttnOpt,
    BatchSizeOpt,
    BatchTokensOpt,
    ConfigOpt,
    CorpusLangOpt,
    DeviceOpt,
    DtypeOpt,
    LangFieldOpt,
    RevisionOpt,
    TextFieldOpt,
    TrustOpt,
    check_options,
    config_values,
)
from crane.cli.render import (
    RichReporter,
    console,
    note,
    print_neuron_set,
    print_overlaps,
    progress_bars,
)
from crane.errors import ConfigError
from crane.io import check_output_dir
from crane.manifest import clear_run

OPTION_KEYS = {
    "model": "model", "langs": "languages", "corpus": "identify_corpus", "lang": "corpus_lang",
    "text_field": "text_field", "lang_field": "lang_field", "method": "methods", "site": "site",
    "target": "target", "score": "score", "quantile": "quantile", "profile": "profile",
    "normalize": "normalize", "lam": "lam", "contrast_over": "contrast_over", "z": "z",
    "budget": "budget", "verify": "verify",
    "verify_ratio": "verify_ratio", "verify_tests": "verify_tests",
    "verify_mode": "verify_mode", "rounds": "rounds", "search_passes": "search_passes",
    "max_texts": "identify_max_texts", "max_tokens": "token_budget", "max_length": "max_length",
    "batch_size": "batch_size", "batch_tokens": "batch_tokens", "shard_texts": "shard_texts",
    "gradient_checkpointing": "gradient_checkpointing", "dtype": "dtype", "device": "device",
    "trust_remote_code": "trust_remote_code", "revision": "revision",
    "attn_implementation": "attn_implementation",
}
"""Each option of ``crane identify`` → its key in a study configuration (``--config``)."""
FILE_ONLY_KEYS = ("verify_methods", "search_methods", "reference_budget", "seed")
"""Identification keys of a configuration file that have no option of their own."""
NOT_SHAPING = ("model", "methods", "sweep_budgets", "sweep_methods", "random_control")
"""Identification keys that do not shape the files a run directory holds: the model is
checked by its identity (weights hash, dtype), each method writes its own file, and the rest
belong to ``crane run``."""


def identify_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Run directory (created; reused to resume).")],
    model: Annotated[
        str | None,
        typer.Option(help="Hub id, model directory, .gguf file or gemma-3-270m (or the "
                     "config's model)."),
    ] = None,
    langs: Annotated[
        str | None,
        typer.Option(help="Languages to compare, e.g. en,zh,vi (or the config's languages)."),
    ] = None,
    config: ConfigOpt = None,
    corpus: Annotated[
        str, typer.Option(help="auto (gettext, else udhr), a built-in name, or a corpus path.")
    ] = "auto",
    lang: CorpusLangOpt = None,
    text_field: TextFieldOpt = "text",
    lang_field: LangFieldOpt = "lang",
    method: Annotated[
        str,
        typer.Option(
            help="crane (AttnLRP relevance), gradxact (gradient × activation), an activation "
            "baseline (lape, kojima, plnd, actmean, random), several comma-separated, or all."
        ),
    ] = "crane",
    site: Annotated[str, typer.Option(help="Neuron site: down_in | act.")] = "down_in",
    target: Annotated[str, typer.Option(help="Explained quantity: logprob | logit.")] = "logprob",
    score: Annotated[
        str,
        typer.Option(help="CRANE score: contrast | effect | fisher (v2), margin | entropy (v1)."),
    ] = "contrast",
    quantile: Annotated[float, typer.Option(help="Relevance quantile a neuron must reach.")] = 0.95,
    profile: Annotated[str, typer.Option(help="Relevance profile: signed | positive | absolute | exposure.")] = "signed",
    normalize: Annotated[
        str, typer.Option(help="z-scores over all neurons (global) or within each layer (layer).")
    ] = "global",
    lam: Annotated[float, typer.Option(help="v2 scores: weight of the others' exposure.")] = 1.0,
    contrast_over: Annotated[str, typer.Option(help="v2 scores: others' max | mean.")] = "max",
    z: Annotated[float, typer.Option(help="effect: eligible above z standard errors.")] = 2.0,
    budget: Annotated[
        str,
        typer.Option(
            help="Neurons per language: a count, a fraction (0.5%), match:SET.json, "
            "match:METHOD (another method of this run), or own (LAPE's and PLND's own sizes)."
        ),
    ] = "0.5%",
    verify: Annotated[
        bool, typer.Option(help="Confirm candidates by masking (--verify-mode).")
    ] = True,
    verify_ratio: Annotated[
        float, typer.Option(help="A group passes when its own rise exceeds this × the others' mean.")
    ] = 1.0,
    verify_tests: Annotated[int, typer.Option(help="Most group tests per language.")] = 24,
    verify_mode: Annotated[
        str, typer.Option(help="search (v3: measured swaps) | rounds (v2) | groups (v1).")
    ] = "search",
    rounds: Annotated[
        int, typer.Option(help="Rounds of the construction (the search's start; 1: the top-k).")
    ] = 1,
    search_passes: Annotated[
        int, typer.Option(help="Most estimation passes per language of the set search.")
    ] = 8,
    max_texts: Annotated[int | None, typer.Option(help="Most texts per language.")] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Token budget: most tokens per language (config key "
                                 "token_budget).")
    ] = None,
    max_length: int = 128,
    batch_size: BatchSizeOpt = 16,
    batch_tokens: BatchTokensOpt = 1024,
    shard_texts: Annotated[
        int, typer.Option(help="Texts per saved statistics shard (unit of resumption and of "
                          "data-parallel work).")
    ] = 64,
    gradient_checkpointing: Annotated[
        bool,
        typer.Option(
            help="Recompute each layer's forward in the backward pass of relevance collection: "
            "less memory for long texts, about one more forward of time, the same statistics."
        ),
    ] = False,
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "cpu",
    trust_remote_code: TrustOpt = False,
    revision: RevisionOpt = None,
    attn_implementation: AttnOpt = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace the run already in --out when it was made with other options or "
            "another model (its manifest and neuron sets are removed first; saved statistics "
            "are reused only where they match)."
        ),
    ] = False,
) -> None:
    """Find each language's neurons by relevance (CRANE), confirmed by masking; resumable.

    Several methods at once (``--method crane,lape,kojima`` or ``all``) share one activation
    pass; ``--budget match:METHOD`` sizes every other method like METHOD's set from this run.
    ``--config FILE`` reads the identification keys of a study configuration (options typed
    on the command line win). Under ``torchrun``/``accelerate launch`` the shards are split
    between the processes and rank 0 writes the results (docs/scale.md).
    """
    values = {name: value for name, value in locals().items() if name in OPTION_KEYS}
    import dataclasses

    from crane.data.builtin import load_corpus, resolve_identification_corpus
    from crane.data.languages import parse_language_list
    from crane.distributed import Distributed, RankDone
    from crane.identification import budget_plan, identify_methods
    from crane.methods import parse_methods
    from crane.models.loading import load_model
    from crane.progress import NullProgress
    from crane.study.config import StudyConfig

    values["langs"] = _listed(langs)
    values["method"] = _listed(method)
    chosen, given = config_values(ctx, config, values, OPTION_KEYS)
    if not chosen["model"]:
        raise ConfigError("Give the model to identify on: --model, or model in --config.")
    if not chosen["languages"]:
        raise ConfigError("Give the languages to compare: --langs, or languages in --config.")
    settings = dataclasses.replace(
        StudyConfig(), **chosen, **{k: given[k] for k in FILE_ONLY_KEYS if k in given}
    )
    flags = {key: f"{key} (--{name.replace('_', '-')})" for name, key in OPTION_KEYS.items()}
    check_options(finite={flags.get(k, k): v for k, v in dataclasses.asdict(settings).items()})
    settings.validate_identification()
    verify_methods = settings.verify_methods if "verify_methods" in given else None
    methods = parse_methods(",".join(settings.methods))
    budget_plan(methods, settings.budget, settings.reference_budget)  # fails before loading
    options = settings.identify_options()
    languages = parse_language_list(settings.languages)
    if len(languages) < 2:
        raise ConfigError("Identification compares languages: give at least two (e.g. en,zh).")
    _check_matched_file(settings.budget, methods, languages)
    shaping = _shaping_options(settings, languages)
    _check_run_dir(out, shaping, overwrite)
    dist = Distributed.from_env()  # torchrun / accelerate launch: this process's rank
    device = dist.device_for(settings.device)
    spec, fallback = resolve_identification_corpus(settings.identify_corpus)
    if fallback is not None and dist.is_main:
        note(fallback)
    texts = load_corpus(
        spec, part="identify", languages=languages, lang=settings.corpus_lang,
        text_field=settings.text_field, lang_field=settings.lang_field,
    ).select(languages)
    check_output_dir(out)  # fail before the model loads, not at the first shard
    if overwrite and dist.is_main and (out / "manifest.json").is_file():
        clear_run(out)  # only a directory that holds a run (its manifest) is cleared
    before = _listing(out)
    with progress_bars(disable=not dist.is_main) as bar, _recording(out, shaping, before, dist):
        reporter = RichReporter(bar) if dist.is_main else NullProgress()
        # with several processes: join the group, and stop every rank when one cannot load
        # the model; identify_methods then lets each rank save its share of the shards and
        # rank 0 alone merges, scores, verifies and writes (crane.distributed)
        try:
            with dist.session(device):
                with dist.all_or_none():
                    loaded = load_model(
                        settings.model, dtype=settings.dtype, device=device,
                        trust_remote_code=settings.trust_remote_code, progress=reporter.message,
                        revision=settings.revision,
                        attn_implementation=settings.attn_implementation,
                    )
                result = identify_methods(
                    loaded, texts, methods, budget=settings.budget, options=options,
                    out_dir=out, progress=reporter, verify_methods=verify_methods,
                    reference_budget=settings.reference_budget, seed=settings.seed,
                    search_methods=settings.search_methods,
                )
        except RankDone:
            return
    _print_result(result, spec, out)


def _check_matched_file(budget: str, methods: list[str], languages: list[str]) -> None:
    """A budget matching a neuron-set *file* must give every language of the run neurons;
    checked before the model loads (``match:METHOD`` of this run is sized in the run)."""
    from crane.scoring import parse_budget

    if budget.startswith("match:") and budget[len("match:") :] not in methods:
        parse_budget(budget).check_languages(languages)


def _shaping_options(settings: Any, languages: list[str]) -> dict[str, Any]:
    """The options that shape what a run directory holds (recorded in its manifest)."""
    from crane.study.config import IDENTIFY_KEYS

    shaping = {k: getattr(settings, k) for k in IDENTIFY_KEYS if k not in NOT_SHAPING}
    shaping["languages"] = list(languages)
    return shaping


def _check_run_dir(out: Path, shaping: dict[str, Any], overwrite: bool) -> None:
    """Refuse, before any work, a run directory that holds a run made with other options
    (unless ``--overwrite``): their files would mix with this run's."""
    from crane.manifest import Manifest

    if (out / "manifest.json").is_file():
        manifest = Manifest(out)  # an incompatible version is refused here too
        if not overwrite:
            manifest.check_options(
                shaping, fix="give a new output directory (--out), or pass --overwrite to "
                "replace that run",
            )


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folder`` → (size, modification time): tells whether a run wrote."""
    if not folder.is_dir():
        return {}
    listing = {}
    for path in folder.rglob("*"):
        try:
            stat = path.stat()
        except OSError:
            continue
        if path.is_file():
            listing[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return listing


@contextlib.contextmanager
def _recording(
    out: Path, shaping: dict[str, Any], before: dict[str, tuple[int, int]], dist: Any
) -> Iterator[None]:
    """Record the run's options in its manifest once it has written anything, also when it
    stops early (an interrupt, an error after the first shard): a later run with other
    options is then refused instead of mixing its files with these."""
    from crane.manifest import Manifest

    try:
        yield
    except BaseException:
        if dist.is_main and _listing(out) != before:
            with contextlib.suppress(Exception):  # the run's own error is the one to show
                Manifest(out).record_options(shaping)
        raise
    if dist.is_main and _listing(out) != before:
        Manifest(out).record_options(shaping)


def _listed(value: str | None) -> list[str] | None:
    """A comma-separated option as the configuration's list (``None`` stays ``None``)."""
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _report_line(report: Any) -> str:
    """One line of what a set's verification did: group tests (v1), the causal construction
    (v2) or the reference optimum's search."""
    if hasattr(report, "tests"):
        return (
            f"{report.tests} group tests, {report.forward_passes} forward passes (one by one: "
            f"{report.one_by_one_forward_passes}), dropped {report.dropped}, refilled "
            f"{report.refilled}, untested {report.untested}"
        )
    if hasattr(report, "accepted"):
        return (
            f"set search from the {report.start}: {report.passes} pass(es), {report.accepted} "
            f"of {report.trials} trials accepted ({report.swaps_kept} swaps, {report.changed} "
            f"neurons changed), validated Sel {report.start_sel:+.3f} -> "
            f"{report.measured_sel:+.3f}, stopped: {report.stopped}; {report.backward_passes} "
            f"backward and {report.forward_passes} forward passes, {report.seconds:.0f} s"
        )
    if hasattr(report, "rounds"):
        return (
            f"{report.rounds} round(s), exactly {report.budget} neurons, swaps kept "
            f"{report.swaps_kept} of {report.swaps_tried}, validated Sel "
            f"{report.measured_sel:+.3f} (before swaps {report.sel_before_swaps:+.3f}), "
            f"{report.relevance_passes} masked re-collections, {report.forward_passes} forward "
            f"and {report.backward_passes} backward passes on validation"
        )
    return (
        f"{report.steps} optimisation steps, kept the {report.kept} set ({report.changed} "
        f"neurons changed), fit Sel {report.fit_sel_init:+.3f} -> {report.fit_sel_final:+.3f}, "
        f"validated Sel {report.measured_sel:+.3f}"
    )


def _print_result(result: Any, spec: str, out: Path) -> None:
    """Each method's set, its verification counts, the overlaps, and the files written."""
    for name, neuron_set in result.sets.items():
        print_neuron_set(neuron_set, escape(f"{name} neurons ({spec})"))
    for name, reports in result.reports.items():
        for lang, report in reports.items():
            console.print(escape(f"{name} verification {lang}: {_report_line(report)}"))
    if len(result.sets) > 1:
        print_overlaps(result.sets)
    for name in result.sets:
        console.print(
            escape(f"wrote {out / f'neurons-{name}.json'} ({result.seconds[name]:.0f} s)")
        )
