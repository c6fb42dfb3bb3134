"""The ``crane`` command line: a thin layer over the library, rendered with rich."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from crane.errors import ConfigError, CraneError
from crane.io import check_output_dir, check_output_file

app = typer.Typer(
    name="crane",
    help="Find the neurons a multilingual language model needs for each language (CRANE).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Load and inspect models.", no_args_is_help=True)
data_app = typer.Typer(help="Inspect corpora.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)


class RichReporter:
    """Renders library progress events as rich progress bars and status lines."""

    def __init__(self, progress: RichProgress) -> None:
        self.progress = progress
        self.task: Any = None

    def start(self, description: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(description, total=total)

    def advance(self, steps: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, steps)

    def message(self, text: str) -> None:
        self.progress.console.print(f"[dim]{text}[/dim]")


def _progress(disable: bool = False) -> RichProgress:
    return RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=disable,
    )


# ---- models -----------------------------------------------------------------------------
ModelArg = Annotated[str, typer.Argument(help="Hub id, local model directory, .gguf file, or gemma-3-270m.")]
DtypeOpt = Annotated[str, typer.Option(help="float32 | bfloat16 | float16 | auto.")]
DeviceOpt = Annotated[str, typer.Option(help="cpu | cuda | cuda:N | mps | auto (accelerate device_map).")]
TrustOpt = Annotated[bool, typer.Option(help="Allow a model's own Python code (only for sources you trust).")]


@models_app.command("check")
def models_check(
    model: ModelArg,
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "cpu",
    trust_remote_code: TrustOpt = False,
) -> None:
    """Load a model, check its neuron sites, and print its family, layers and MLP width."""
    from crane.models.loading import describe, load_model

    with _progress() as bar:
        reporter = RichReporter(bar)
        loaded = load_model(
            model, dtype=dtype, device=device, trust_remote_code=trust_remote_code,
            progress=reporter.message,
        )
    info = describe(loaded)
    table = Table(title=f"model check: {model}", show_header=False)
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
        elif isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value))
        table.add_row(str(key), str(value))
    console.print(table)
    console.print("[green]ok[/green]: every neuron site fires once per layer with width d_ff.")


@models_app.command("list")
def models_list() -> None:
    """List the supported architecture families and their model types."""
    from crane.models.adapters import _REGISTRY

    table = Table("family", "model types", "layers", "down projection", "activation", "gated")
    by_family: dict[str, Any] = {}
    for model_type, adapter in sorted(_REGISTRY.items()):
        by_family.setdefault(adapter.family, (adapter, []))[1].append(model_type)
    for family, (adapter, types) in sorted(by_family.items()):
        table.add_row(
            family, ", ".join(types), " | ".join(adapter.layers),
            f"{adapter.mlp}.{adapter.down_proj}", f"{adapter.mlp}.{adapter.act}",
            "yes" if adapter.gated else "no",
        )
    console.print(table)


# ---- data -------------------------------------------------------------------------------
@data_app.command("show")
def data_show(
    corpus: Annotated[
        list[Path] | None, typer.Option(help="Corpus file or directory to describe (repeatable).")
    ] = None,
    lang: Annotated[str | None, typer.Option(help="Language of plain-text files.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto | text | jsonl | csv | parquet.")] = "auto",
    text_field: Annotated[str, typer.Option(help="Text field/column (JSONL, CSV, Parquet).")] = "text",
    lang_field: Annotated[str, typer.Option(help="Language field/column.")] = "lang",
    unit: Annotated[str, typer.Option(help="Plain text: one text per 'line' or 'paragraph'.")] = "line",
) -> None:
    """Show the built-in corpora (and any corpus files given) with sizes per language."""
    from crane.data.builtin import describe_builtin
    from crane.data.corpus import read_corpus

    table = Table("corpus", "language", "texts", "characters", "bytes", "note")
    for entry in describe_builtin():
        if not entry.get("available"):
            table.add_row(entry["name"], "-", "-", "-", "-", str(entry.get("reason", "")))
            continue
        for row in entry.get("summary", []):
            table.add_row(
                entry["name"], row["language"], str(row["texts"]), str(row["chars"]),
                str(row["bytes"]), str(entry.get("note", "")),
            )
    for path in corpus or []:
        found = read_corpus(
            path, lang=lang, fmt=fmt, text_field=text_field, lang_field=lang_field, unit=unit
        )
        for row in found.summary():
            table.add_row(
                str(path), row["language"], str(row["texts"]), str(row["chars"]),
                str(row["bytes"]), f"sha256 {found.provenance['sha256'][:12]}",
            )
    console.print(table)


# ---- evaluate ---------------------------------------------------------------------------
def _print_matrix(title: str, matrix: Any) -> None:
    bpb, delta = matrix.bpb(), matrix.delta()
    table = Table(title=title)
    table.add_column("masked \\ evaluated", no_wrap=True, overflow="fold")
    table.add_column("neurons", justify="right")
    for lang in bpb.columns:
        table.add_column(f"{lang} bits/byte", justify="right")
    for row in bpb.index:
        cells = [
            f"{bpb.loc[row, lang]:.3f}" if row == "none"
            else f"{bpb.loc[row, lang]:.3f} ({delta.loc[row, lang]:+.3f})"
            for lang in bpb.columns
        ]
        table.add_row(row, str(matrix.sizes.get(row, 0)), *cells)
    console.print(table)


@app.command("evaluate")
def evaluate(
    model: Annotated[str, typer.Option(help="Hub id, model directory, .gguf file or gemma-3-270m.")],
    neurons: Annotated[
        list[Path] | None, typer.Option(help="Neuron set JSON file to mask (repeatable).")
    ] = None,
    corpus: Annotated[str, typer.Option(help="Built-in corpus name (udhr, gettext) or a path.")] = "udhr",
    part: Annotated[str, typer.Option(help="Built-in corpus part: identify | heldout | all.")] = "heldout",
    langs: Annotated[str | None, typer.Option(help="Languages to evaluate, e.g. en,zh,vi.")] = None,
    lang: Annotated[str | None, typer.Option(help="Language of plain-text corpus files.")] = None,
    max_texts: Annotated[
        int | None, typer.Option(min=1, help="Evaluate at most this many texts per language.")
    ] = None,
    random_controls: Annotated[bool, typer.Option(help="Add a layer-matched random set per row.")] = True,
    mode: Annotated[str, typer.Option(help="Masking mode: zero | scale.")] = "zero",
    alpha: Annotated[float, typer.Option(help="Factor for --mode scale.")] = 0.0,
    seed: int = 0,
    batch_size: Annotated[int, typer.Option(help="Most windows per batch.")] = 64,
    batch_tokens: Annotated[int, typer.Option(help="Most padded tokens per batch.")] = 1024,
    max_length: int = 128,
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "cpu",
    trust_remote_code: TrustOpt = False,
    out: Annotated[Path | None, typer.Option(help="Write the matrix as JSON here.")] = None,
) -> None:
    """Bits per byte per language, unmasked and with each neuron set masked."""
    from crane.data.builtin import load_corpus
    from crane.data.languages import parse_language_list
    from crane.evaluation.bpb import masking_matrix
    from crane.io import atomic_write_text
    from crane.models.loading import load_model
    from crane.neurons import NeuronSet

    if out is not None:
        check_output_file(out)  # fail now, not after the evaluation
    sets = {path.stem: NeuronSet.load(path) for path in neurons or []}
    loaded_corpus = load_corpus(corpus, part=part, lang=lang)
    if langs:
        loaded_corpus = loaded_corpus.select(parse_language_list(langs))
    if max_texts:
        loaded_corpus = loaded_corpus.take(max_texts)
    with _progress() as bar:
        reporter = RichReporter(bar)
        loaded = load_model(
            model, dtype=dtype, device=device, trust_remote_code=trust_remote_code,
            progress=reporter.message,
        )
        for neuron_set in sets.values():
            neuron_set.check_fits(loaded.shape)
        matrix = masking_matrix(
            loaded.model, loaded.tokenizer, loaded_corpus, sets,
            random_controls=random_controls, seed=seed, mode=mode, alpha=alpha,
            batch_size=batch_size, max_tokens=batch_tokens, max_length=max_length, adapter=loaded.adapter,
            progress=reporter,
        )
    _print_matrix(f"bits per byte on {corpus} ({part}); change vs unmasked in brackets", matrix)
    if out is not None:
        atomic_write_text(out, json.dumps(matrix.to_dict(), indent=1, default=str) + "\n")
        console.print(f"wrote {out}")


# ---- identify ---------------------------------------------------------------------------
def default_identification_corpus(quiet: bool = False) -> str:
    """gettext (identification part) where the machine has the catalogs, else UDHR."""
    from crane.data.builtin import GettextUnavailable, gettext_corpus

    try:
        gettext_corpus("identify")
        return "gettext"
    except GettextUnavailable as exc:
        if not quiet:
            err_console.print(f"[yellow]note[/yellow]: {exc} Using the UDHR corpus instead.")
        return "udhr"


@app.command("identify")
def identify_cmd(
    model: Annotated[str, typer.Option(help="Hub id, model directory, .gguf file or gemma-3-270m.")],
    langs: Annotated[str, typer.Option(help="Languages to compare, e.g. en,zh,vi.")],
    out: Annotated[Path, typer.Option(help="Run directory (created; reused to resume).")],
    corpus: Annotated[
        str, typer.Option(help="auto (gettext, else udhr), a built-in name, or a corpus path.")
    ] = "auto",
    lang: Annotated[str | None, typer.Option(help="Language of plain-text corpus files.")] = None,
    text_field: Annotated[str, typer.Option(help="Text field/column (JSONL, CSV, Parquet).")] = "text",
    lang_field: Annotated[str, typer.Option(help="Language field/column.")] = "lang",
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
    batch_size: Annotated[int, typer.Option(help="Most windows per batch.")] = 16,
    batch_tokens: Annotated[int, typer.Option(help="Most padded tokens per batch.")] = 1024,
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
    from crane.data.builtin import load_corpus
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
    spec = default_identification_corpus(quiet=not dist.is_main) if corpus == "auto" else corpus
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
    with _progress(disable=not dist.is_main) as bar:
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
    for name, neuron_set in result.sets.items():
        _print_neuron_set(neuron_set, f"{name} neurons ({spec})")
    for name, reports in result.reports.items():
        for lang, report in reports.items():
            console.print(
                f"{name} verification {lang}: {report.tests} group tests, "
                f"{report.forward_passes} forward passes (one by one: "
                f"{report.one_by_one_forward_passes}), dropped {report.dropped}, refilled "
                f"{report.refilled}, untested {report.untested}"
            )
    if len(result.sets) > 1:
        _print_overlaps(result.sets)
    for name in result.sets:
        console.print(f"wrote {out / f'neurons-{name}.json'} ({result.seconds[name]:.0f} s)")


def _print_overlaps(found: dict[str, Any]) -> None:
    """Jaccard overlap between the methods' sets, per language."""
    names = list(found)
    languages = [
        lang for lang in found[names[0]].languages if all(lang in s.languages for s in found.values())
    ]
    table = Table(title=f"overlap between methods (Jaccard per language: {', '.join(languages)})")
    table.add_column("method")
    for name in names:
        table.add_column(name, justify="right")
    for a in names:
        cells = []
        for b in names:
            values = [found[a].overlap(found[b], lang)["jaccard"] for lang in languages]
            cells.append(" ".join(f"{v:.2f}" for v in values))
        table.add_row(a, *cells)
    console.print(table)


# ---- neurons ------------------------------------------------------------------------------
neurons_app = typer.Typer(help="Inspect neuron sets.", no_args_is_help=True)
app.add_typer(neurons_app, name="neurons")


def _print_neuron_set(neuron_set: Any, title: str) -> None:
    n_layers = neuron_set.n_layers or 1 + max(
        (max(layers, default=0) for layers in neuron_set.neurons.values()), default=0
    )
    table = Table(title=title)
    table.add_column("language")
    table.add_column("neurons", justify="right")
    table.add_column(f"per layer (0 → {n_layers - 1})")
    for lang in neuron_set.languages:
        counts = neuron_set.layer_counts(lang, n_layers)
        table.add_row(lang, str(neuron_set.size(lang)), " ".join(str(c) for c in counts))
    console.print(table)


@neurons_app.command("show")
def neurons_show(
    path: Annotated[Path, typer.Argument(help="A neuron set file (neurons-*.json) or run directory.")],
) -> None:
    """Per-language counts and per-layer distribution of a neuron set."""
    from crane.neurons import NeuronSet

    files = sorted(path.glob("neurons-*.json")) if path.is_dir() else [path]
    if not files:
        raise ConfigError(f"{path} holds no neurons-*.json file; run crane identify first.")
    for file in files:
        neuron_set = NeuronSet.load(file)
        meta = neuron_set.meta
        _print_neuron_set(neuron_set, f"{file.name}: {meta.get('method', '?')}, site {neuron_set.site}")
        model = meta.get("model") or {}
        if model:
            console.print(f"model: {model.get('spec')} ({model.get('kind')}); budget {meta.get('budget')}")


@neurons_app.command("import-lape")
def neurons_import_lape(
    path: Annotated[Path, typer.Argument(help="A LAPE .neuron.pth file (list over languages of lists over layers).")],
    langs: Annotated[str, typer.Option(help="The file's language order, e.g. en,zh,fr,es,vi,id,ja.")],
    out: Annotated[Path, typer.Option(help="Where to write the crane neuron set (.json or .safetensors).")],
    d_ff: Annotated[int | None, typer.Option(help="MLP width of the model (checked against indices).")] = None,
) -> None:
    """Convert a published LAPE neuron file into a crane neuron set (tensors only; never unpickles objects)."""
    from crane.data.languages import parse_language_list
    from crane.lape_format import import_lape

    neuron_set = import_lape(path, parse_language_list(langs), d_ff=d_ff)
    neuron_set.save(out)
    _print_neuron_set(neuron_set, f"imported from {path.name}")
    console.print(f"wrote {out}")


# ---- transfer ---------------------------------------------------------------------------------
def _neuron_file(path: Path, method: str) -> Path:
    """A neuron set file, or ``neurons-<method>.json`` inside a run directory."""
    if path.is_dir():
        file = path / f"neurons-{method}.json"
        if not file.is_file():
            raise ConfigError(
                f"{path} holds no neurons-{method}.json; run crane identify there or pick "
                "another --method."
            )
        return file
    return path


@app.command("transfer")
def transfer_cmd(
    neurons: Annotated[Path, typer.Option(help="Run directory (or neuron set file) from model A.")],
    model: Annotated[str, typer.Option(help="Model B, e.g. the chat/instruct version of A.")],
    base: Annotated[
        str | None, typer.Option(help="Model A (default: the model recorded in the neuron set).")
    ] = None,
    method: Annotated[str, typer.Option(help="Which set of a run directory.")] = "crane",
    other_run: Annotated[
        Path | None, typer.Option(help="B's own run directory (or set), for the Jaccard overlap.")
    ] = None,
    corpus: Annotated[str, typer.Option(help="Evaluation corpus (built-in name or path).")] = "udhr",
    part: Annotated[str, typer.Option(help="Built-in corpus part.")] = "heldout",
    langs: Annotated[str | None, typer.Option(help="Languages to evaluate.")] = None,
    max_texts: Annotated[int | None, typer.Option(help="Most evaluation texts per language.")] = None,
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "cpu",
    trust_remote_code: TrustOpt = False,
    chat_template: Annotated[
        str,
        typer.Option(
            help="Read each text as the model's reply in its chat template: none, b (model B "
            "only, the usual base→chat case) or both."
        ),
    ] = "none",
    chat_prompt: Annotated[
        str, typer.Option(help="The user turn before each text when a chat template is used.")
    ] = "Write a short text.",
    out: Annotated[Path | None, typer.Option(help="Write the numbers as JSON here.")] = None,
) -> None:
    """Apply neuron sets found on model A to model B of the same shape: transfer ratio
    T_L = Δ^B_L(L) / Δ^A_L(L), selectivity in both, Jaccard with B's own sets."""
    from crane.data.builtin import load_corpus
    from crane.data.languages import parse_language_list
    from crane.io import atomic_write_text
    from crane.models.loading import load_model
    from crane.neurons import NeuronSet
    from crane.transfer_analysis import CHAT_TEMPLATE_CHOICES, transfer

    if chat_template not in CHAT_TEMPLATE_CHOICES:
        raise ConfigError(
            f"--chat-template {chat_template!r} is not one of {', '.join(CHAT_TEMPLATE_CHOICES)}; "
            "use b to read texts in model B's chat template."
        )
    if out is not None:
        check_output_file(out)
    found = NeuronSet.load(_neuron_file(neurons, method))
    base_spec = base or (found.meta.get("model") or {}).get("spec")
    if not base_spec:
        raise ConfigError(
            "The neuron set does not record the model it was found on; give it with --base."
        )
    own = NeuronSet.load(_neuron_file(other_run, method)) if other_run is not None else None
    texts = load_corpus(corpus, part=part)
    texts = texts.select(parse_language_list(langs) if langs else found.languages)
    if max_texts:
        texts = texts.take(max_texts)
    options = dict(dtype=dtype, device=device, trust_remote_code=trust_remote_code)
    with _progress() as bar:
        reporter = RichReporter(bar)
        loaded_a = load_model(base_spec, progress=reporter.message, **options)
        loaded_b = load_model(model, progress=reporter.message, **options)
        result = transfer(
            found, loaded_a, loaded_b, texts, own_set_b=own, chat_template=chat_template,
            chat_prompt=chat_prompt, progress=reporter,
        )
    table = Table(title=f"transfer of {method} sets: {base_spec} → {model}")
    for column in ("language", "Δ own (A)", "Δ own (B)", "T = B/A", "Sel A", "Sel B", "Jaccard"):
        table.add_column(column, justify="right" if column != "language" else "left")
    for lang in result.languages:
        row = "set" if len(found.languages) == 1 else f"set:{lang}"
        table.add_row(
            lang,
            _signed(float(result.matrix_a.delta().loc[row, lang])),
            _signed(float(result.matrix_b.delta().loc[row, lang])),
            f"{result.ratio[lang]:.3f}",
            _signed(result.sel_a[lang]),
            _signed(result.sel_b[lang]),
            f"{result.jaccard[lang]:.3f}" if lang in result.jaccard else "—",
        )
    console.print(table)
    if out is not None:
        atomic_write_text(out, json.dumps(result.to_dict(), indent=1, default=str) + "\n")
        console.print(f"wrote {out}")


# ---- lm-evaluation-harness ------------------------------------------------------------------
@app.command("lm-eval")
def lm_eval_cmd(
    model: Annotated[str, typer.Option(help="Model directory, hub id or gemma-3-270m.")],
    tasks: Annotated[str, typer.Option(help="lm-eval task names (comma-separated, globs allowed).")],
    neurons: Annotated[Path | None, typer.Option(help="Neuron set to mask (none: unmasked).")] = None,
    languages: Annotated[str, typer.Option(help="Languages of the set to mask: all, or en+zh.")] = "all",
    task_dir: Annotated[Path | None, typer.Option(help="Folder of your own task YAMLs.")] = None,
    limit: Annotated[float | None, typer.Option(help="Most documents per task.")] = None,
    mode: Annotated[str, typer.Option(help="zero | scale.")] = "zero",
    alpha: Annotated[float | None, typer.Option(help="Factor for --mode scale.")] = None,
    batch_size: int = 8,
    device: Annotated[str | None, typer.Option(help="cpu | cuda | cuda:N (default: cuda if present).")] = None,
    defaults: Annotated[bool, typer.Option(help="Also index lm-eval's built-in tasks.")] = True,
    out: Annotated[Path | None, typer.Option(help="Write lm-eval's results JSON here.")] = None,
) -> None:
    """Run lm-evaluation-harness tasks with a neuron set masked (needs the eval extra)."""
    from crane.io import atomic_write_text
    from crane.lm_eval_bridge import evaluate as lm_evaluate

    if out is not None:
        check_output_file(out)
    results = lm_evaluate(
        model, neurons, languages, tasks, task_dir=task_dir,
        limit=int(limit) if limit is not None and limit >= 1 else limit, mode=mode, alpha=alpha,
        device=device, batch_size=batch_size, include_default_tasks=defaults,
    )
    table = Table(title=f"lm-eval on {model}" + (f", masked: {neurons} ({languages})" if neurons else ""))
    for column in ("task", "metric", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for task, metrics in results.get("results", {}).items():
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not name.endswith("_stderr,none") and name != "alias":
                table.add_row(task, name, f"{value:.4f}")
    console.print(table)
    if out is not None:
        from lm_eval.utils import handle_non_serializable

        atomic_write_text(out, json.dumps(results, indent=1, default=handle_non_serializable) + "\n")
        console.print(f"wrote {out}")


# ---- studies: demo, run, report --------------------------------------------------------------
def _signed(value: Any) -> str:
    return f"{value:+.3f}" if isinstance(value, (int, float)) else "n/a"


def _print_study(results: dict[str, Any]) -> None:
    """One table per benchmark: each method's own-language damage and diagonal dominance."""
    languages = results["languages"]
    for name, bench in results.get("benchmarks", {}).items():
        metrics = results.get("metrics", {}).get(name, {})
        table = Table(title=f"{bench['title']}: change on the masked language (diagonal dominance ×)")
        table.add_column("method")
        for lang in languages:
            table.add_column(lang, justify="right")
        table.add_row(
            "unmasked", *(_signed(bench["none"][lang]).lstrip("+") for lang in languages)
        )
        for method, per_lang in metrics.items():
            cells = []
            for lang in languages:
                m = per_lang.get(lang)
                if m is None:
                    cells.append("")
                    continue
                delta, dd = bench["delta"][method][lang][lang], m.get("dd")
                ratio = f"{dd:.1f}×" if isinstance(dd, (int, float)) else "n/a"
                cells.append(f"{_signed(delta)} ({ratio})")
            table.add_row(method, *cells)
        console.print(table)


def _run_study(config: Any, out: Path) -> None:
    from crane.pipeline import run_study

    check_output_dir(out)
    with _progress() as bar:
        result = run_study(config, out, progress=RichReporter(bar))
    _print_study(result.results)
    for note in result.results.get("notes", []):
        console.print(f"[yellow]note[/yellow]: {note}")
    console.print(f"study: {out / 'study.json'} ({result.seconds:.0f} s)")
    if result.report is not None:
        console.print(f"report: {result.report}")


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(help="Run directory (reused to resume).")] = Path("runs/demo"),
    model: Annotated[str, typer.Option(help="Model to run the demo on.")] = "gemma-3-270m",
    seed: int = 0,
) -> None:
    """The full study on the packaged Gemma 3 270M: CRANE, gradient × activation and the
    activation baselines at equal budget, masked evaluation per language, metrics, report."""
    from crane.demo import demo_config

    _run_study(demo_config(model=model, seed=seed), out)


@app.command("run")
def run_cmd(
    config: Annotated[Path, typer.Argument(help="Study configuration (.toml or .yaml).")],
    out: Annotated[Path, typer.Option(help="Run directory (reused to resume).")],
    model: Annotated[
        str | None, typer.Option(help="Use this model instead of the config's model.")
    ] = None,
) -> None:
    """Run (or resume) a study from a configuration file on any model, languages and corpora."""
    import dataclasses

    from crane.pipeline import load_config

    study = load_config(config)
    if model is not None:
        study = dataclasses.replace(study, model=model)
    _run_study(study, out)


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A study's run directory (holds study.json).")],
) -> None:
    """Rebuild the figures and the HTML report from a study's saved results (no recomputation)."""
    from crane.report import build_report

    path = build_report(run_dir)
    results = json.loads((run_dir / "study.json").read_text(encoding="utf-8"))
    _print_study(results)
    console.print(f"report: {path}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; user errors print one sentence and exit with code 2."""
    try:
        app(args=argv, standalone_mode=False)
    except CraneError as exc:
        from rich.markup import escape

        message = escape(" ".join(str(exc).splitlines()))  # one line; [brackets] kept
        err_console.print(f"[bold red]error[/bold red]: {message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors carry their own exit code
        if isinstance(exc, _click_exceptions()):
            exc.show()
            sys.exit(exc.exit_code)
        raise


def _click_exceptions() -> tuple[type[BaseException], ...]:
    """Usage-error classes: click's, and those of the click copy that recent typer vendors."""
    import click

    classes: list[type[BaseException]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as VendoredClickException
    except ImportError:  # typer on plain click
        pass
    else:
        classes.append(VendoredClickException)
    return tuple(classes)


if __name__ == "__main__":
    main()
