"""``crane transfer``: apply the neuron sets of model A to model B of the same shape."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from crane.cli.evaluate import evaluation_texts
from crane.cli.neurons import neuron_file
from crane.cli.options import (
    AttnOpt,
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    RevisionOpt,
    TrustOpt,
    check_options,
    note_deprecated_out,
)
from crane.cli.render import RichReporter, console, progress_bars, signed, write_json
from crane.errors import ConfigError
from crane.io import check_output_file


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
    revision: RevisionOpt = None,
    attn_implementation: AttnOpt = None,
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
    out: JsonOpt = None,
) -> None:
    """Apply neuron sets found on model A to model B of the same shape: transfer ratio
    T_L = Δ^B_L(L) / Δ^A_L(L), selectivity in both, Jaccard with B's own sets."""
    from crane.data.builtin import PARTS
    from crane.models.loading import load_model
    from crane.neurons import NeuronSet
    from crane.transfer_analysis import CHAT_TEMPLATE_CHOICES, transfer

    check_options(  # every option before any work (0 texts was read as "all")
        at_least={"--max-texts": (max_texts, 1)}, choices={"--part": (part, PARTS)}
    )
    if chat_template not in CHAT_TEMPLATE_CHOICES:
        raise ConfigError(
            f"--chat-template {chat_template!r} is not one of {', '.join(CHAT_TEMPLATE_CHOICES)}; "
            "use b to read texts in model B's chat template."
        )
    if out is not None:
        note_deprecated_out()
        check_output_file(out)
    found = NeuronSet.load(neuron_file(neurons, method))
    base_spec = base or (found.meta.get("model") or {}).get("spec")
    if not base_spec:
        raise ConfigError(
            "The neuron set does not record the model it was found on; give it with --base."
        )
    own = NeuronSet.load(neuron_file(other_run, method)) if other_run is not None else None
    texts = evaluation_texts(corpus, part, langs, max_texts, default_languages=found.languages)
    options = dict(
        dtype=dtype, device=device, trust_remote_code=trust_remote_code,
        attn_implementation=attn_implementation,
    )
    with progress_bars() as bar:
        reporter = RichReporter(bar)
        loaded_a = load_model(base_spec, progress=reporter.message, **options)
        loaded_b = load_model(model, progress=reporter.message, revision=revision, **options)
        result = transfer(
            found, loaded_a, loaded_b, texts, own_set_b=own, chat_template=chat_template,
            chat_prompt=chat_prompt, progress=reporter,
        )
    title = escape(f"transfer of {method} sets: {base_spec} → {model}")
    _print_transfer(result, title, found.languages)
    if out is not None:
        write_json(out, result.to_dict())


def _print_transfer(result: Any, title: str, set_languages: list[str]) -> None:
    """Per language: own-language damage in A and B, their ratio, selectivity, Jaccard."""
    table = Table(title=title)
    for column in ("language", "Δ own (A)", "Δ own (B)", "T = B/A", "Sel A", "Sel B", "Jaccard"):
        table.add_column(column, justify="right" if column != "language" else "left")
    for lang in result.languages:
        row = "set" if len(set_languages) == 1 else f"set:{lang}"
        table.add_row(
            lang,
            signed(float(result.matrix_a.delta().loc[row, lang])),
            signed(float(result.matrix_b.delta().loc[row, lang])),
            f"{result.ratio[lang]:.3f}",
            signed(result.sel_a[lang]),
            signed(result.sel_b[lang]),
            f"{result.jaccard[lang]:.3f}" if lang in result.jaccard else "—",
        )
    console.print(table)
