"""``crane identify``: each language's neurons by one or several methods; resumable, and
data-parallel under torchrun / accelerate launch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from crane.cli.options import (
    BatchSizeOpt,
    BatchTokensOpt,
    CorpusLangOpt,
    DeviceOpt,
    DtypeOpt,
    LangFieldOpt,
    ModelOpt,
    TextFieldOpt,
    TrustOpt,
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


def identify_cmd(
    model: ModelOpt,
    langs: Annotated[str, typer.Option(help="Languages to compare, e.g. en,zh,vi.")],
    out: Annotated[Path, typer.Option(help="Run directory (created; reused to resume).")],
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
    target: Annotated[str, typer.Option(help="Explained quantity: logit | logprob.")] = "logit",
    score: Annotated[str, typer.Option(help="CRANE score: margin | entropy.")] = "margin",
    quantile: Annotated[float, typer.Option(help="Relevance quantile a neuron must reach.")] = 0.95,
    profile: Annotated[str, typer.Option(help="Relevance profile: signed | positive | absolute.")] = "signed",
    normalize: Annotated[
        str, typer.Option(help="z-scores over all neurons (global) or within each layer (layer).")
    ] = "global",
    budget: Annotated[
        str,
        typer.Option(
            help="Neurons per language: a count, a fraction (0.5%), match:SET.json, "
            "match:METHOD (another method of this run), or own (LAPE's and PLND's own sizes)."
        ),
    ] = "0.5%",
    verify: Annotated[bool, typer.Option(help="Confirm candidates by masking (group testing).")] = True,
    verify_ratio: Annotated[
        float, typer.Option(help="A group passes when its own rise exceeds this × the others' mean.")
    ] = 1.0,
    verify_tests: Annotated[int, typer.Option(help="Most group tests per language.")] = 24,
    max_texts: Annotated[int | None, typer.Option(help="Most texts per language.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Most tokens per language.")] = None,
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
) -> None:
    """Find each language's neurons by relevance (CRANE), confirmed by masking; resumable.

    Several methods at once (``--method crane,lape,kojima`` or ``all``) share one activation
    pass; ``--budget match:METHOD`` sizes every other method like METHOD's set from this run.
    Under ``torchrun``/``accelerate launch`` the shards are split between the processes and
    rank 0 writes the results (docs/scale.md).
    """
    from crane.collect import RelevanceOptions
    from crane.data.builtin import load_corpus, resolve_identification_corpus
    from crane.data.languages import parse_language_list
    from crane.distributed import Distributed
    from crane.identification import IdentifyOptions, budget_plan, collect_shards, identify_methods
    from crane.methods import parse_methods
    from crane.models.loading import load_model
    from crane.progress import NullProgress
    from crane.verify import VerifyOptions

    methods = parse_methods(method)
    budget_plan(methods, budget)  # a bad budget fails before the model loads
    languages = parse_language_list(langs)
    if len(languages) < 2:
        raise ConfigError("Identification compares languages: give at least two (e.g. en,zh).")
    dist = Distributed.from_env()  # torchrun / accelerate launch: this process's rank
    device = dist.device_for(device)
    spec, fallback = resolve_identification_corpus(corpus)
    if fallback is not None and dist.is_main:
        note(fallback)
    texts = load_corpus(
        spec, part="identify", lang=lang, text_field=text_field, lang_field=lang_field
    ).select(languages)
    check_output_dir(out)  # fail before the model loads, not at the first shard
    options = IdentifyOptions(
        relevance=RelevanceOptions(
            site=site, target=target, max_length=max_length, batch_size=batch_size,
            batch_tokens=batch_tokens, shard_texts=shard_texts, checkpoint=gradient_checkpointing,
        ).validate(),
        score=score, quantile=quantile, profile=profile, normalize=normalize,
        verify=verify, max_texts=max_texts, max_tokens=max_tokens,
        verification=VerifyOptions(ratio=verify_ratio, max_tests=verify_tests).validate(),
    )
    with progress_bars(disable=not dist.is_main) as bar:
        reporter = RichReporter(bar) if dist.is_main else NullProgress()
        # with several processes: join the group, let each rank save its share of the shards,
        # wait for all (a failure on any rank stops every rank), and leave the group together
        with dist.session(device), dist.all_or_none():
            loaded = load_model(
                model, dtype=dtype, device=device, trust_remote_code=trust_remote_code,
                progress=reporter.message,
            )
            if dist.part is not None:
                collect_shards(
                    loaded, texts, methods, part=dist.part, options=options, out_dir=out,
                    progress=reporter, budget=budget,
                )
        if not dist.is_main:
            return  # rank 0 alone merges, scores, verifies and writes
        if dist.enabled:
            reporter.message(
                f"all {dist.world_size} processes have saved their shards; rank 0 merges, "
                "scores, verifies and writes"
            )
        result = identify_methods(
            loaded, texts, methods, budget=budget, options=options, out_dir=out,
            progress=reporter,
        )
    _print_result(result, spec, out)


def _print_result(result: Any, spec: str, out: Path) -> None:
    """Each method's set, its verification counts, the overlaps, and the files written."""
    for name, neuron_set in result.sets.items():
        print_neuron_set(neuron_set, f"{name} neurons ({spec})")
    for name, reports in result.reports.items():
        for lang, report in reports.items():
            console.print(
                f"{name} verification {lang}: {report.tests} group tests, "
                f"{report.forward_passes} forward passes (one by one: "
                f"{report.one_by_one_forward_passes}), dropped {report.dropped}, refilled "
                f"{report.refilled}, untested {report.untested}"
            )
    if len(result.sets) > 1:
        print_overlaps(result.sets)
    for name in result.sets:
        console.print(f"wrote {out / f'neurons-{name}.json'} ({result.seconds[name]:.0f} s)")
