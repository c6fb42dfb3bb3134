"""``crane evaluate``: bits per byte per language, unmasked and with each neuron set masked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from crane.cli.options import (
    AttnOpt,
    BatchSizeOpt,
    BatchTokensOpt,
    CorpusLangOpt,
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelOpt,
    RevisionOpt,
    TrustOpt,
    check_options,
    note_deprecated_out,
)
from crane.cli.render import RichReporter, print_matrix, progress_bars, write_json
from crane.errors import ConfigError
from crane.io import check_output_file

MASK_MODES = ("zero", "scale")
"""Masking modes of ``crane evaluate`` (``mean`` needs per-neuron means it does not compute)."""


def evaluation_texts(
    corpus: str,
    part: str,
    langs: str | None,
    max_texts: int | None,
    *,
    lang: str | None = None,
    default_languages: Sequence[str] | None = None,
) -> Any:
    """The evaluation corpus: ``part`` of ``corpus``, the languages in ``langs`` (else
    ``default_languages``, else all), at most ``max_texts`` texts per language."""
    from crane.data.builtin import load_corpus
    from crane.data.languages import parse_language_list

    texts = load_corpus(corpus, part=part, lang=lang)
    languages = parse_language_list(langs) if langs else default_languages
    if languages:
        texts = texts.select(languages)
    if max_texts:
        texts = texts.take(max_texts)
    return texts


def evaluate_cmd(
    model: ModelOpt,
    neurons: Annotated[
        list[Path] | None, typer.Option(help="Neuron set JSON file to mask (repeatable).")
    ] = None,
    corpus: Annotated[str, typer.Option(help="Built-in corpus name (udhr, gettext) or a path.")] = "udhr",
    part: Annotated[str, typer.Option(help="Built-in corpus part: identify | heldout | all.")] = "heldout",
    langs: Annotated[str | None, typer.Option(help="Languages to evaluate, e.g. en,zh,vi.")] = None,
    lang: CorpusLangOpt = None,
    max_texts: Annotated[
        int | None, typer.Option(min=1, help="Evaluate at most this many texts per language.")
    ] = None,
    random_controls: Annotated[bool, typer.Option(help="Add a layer-matched random set per row.")] = True,
    mode: Annotated[str, typer.Option(help="Masking mode: zero | scale.")] = "zero",
    alpha: Annotated[float, typer.Option(help="Factor for --mode scale.")] = 0.0,
    seed: int = 0,
    batch_size: BatchSizeOpt = 64,
    batch_tokens: BatchTokensOpt = 1024,
    max_length: int = 128,
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "cpu",
    trust_remote_code: TrustOpt = False,
    revision: RevisionOpt = None,
    attn_implementation: AttnOpt = None,
    out: JsonOpt = None,
) -> None:
    """Bits per byte per language, unmasked and with each neuron set masked."""
    from crane.data.builtin import PARTS
    from crane.evaluation.bpb import masking_matrix
    from crane.models.loading import load_model
    from crane.neurons import NeuronSet

    check_options(  # every option before any work, not when the value is first used
        finite={"--alpha": alpha},
        at_least={
            "--seed": (seed, 0), "--batch-size": (batch_size, 1),
            "--batch-tokens": (batch_tokens, 1), "--max-length": (max_length, 2),
            "--max-texts": (max_texts, 1),
        },
        choices={"--mode": (mode, MASK_MODES), "--part": (part, PARTS)},
    )
    if out is not None:
        note_deprecated_out()
        check_output_file(out)  # fail now, not after the evaluation
    sets = {name: NeuronSet.load(path) for name, path in set_labels(neurons or []).items()}
    texts = evaluation_texts(corpus, part, langs, max_texts, lang=lang)
    with progress_bars() as bar:
        reporter = RichReporter(bar)
        loaded = load_model(
            model, dtype=dtype, device=device, trust_remote_code=trust_remote_code,
            progress=reporter.message, revision=revision, attn_implementation=attn_implementation,
        )
        for neuron_set in sets.values():
            neuron_set.check_fits(loaded.shape)
        matrix = masking_matrix(
            loaded.model, loaded.tokenizer, texts, sets,
            random_controls=random_controls, seed=seed, mode=mode, alpha=alpha,
            batch_size=batch_size, max_tokens=batch_tokens, max_length=max_length,
            adapter=loaded.adapter, progress=reporter,
        )
    print_matrix(
        escape(f"bits per byte on {corpus} ({part}); change vs unmasked in brackets"), matrix
    )
    if out is not None:
        write_json(out, matrix.to_dict())


def set_labels(paths: list[Path]) -> dict[str, Path]:
    """A row label per neuron-set file: its stem, or its last folders too when two files share
    a stem (``a/neurons-crane`` and ``b/neurons-crane``), so no set replaces another; the same
    file twice is an error."""
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) < len(resolved):
        raise ConfigError("The same neuron-set file is given twice; give each --neurons once.")
    depth = [0] * len(resolved)

    def label(i: int) -> str:
        parts = resolved[i].parent.parts
        return "/".join([*parts[len(parts) - depth[i] :], resolved[i].stem])

    while True:
        labels = [label(i) for i in range(len(resolved))]
        clashing = [i for i, x in enumerate(labels) if labels.count(x) > 1]
        if not clashing:
            return dict(zip(labels, paths, strict=True))
        for i in clashing:
            depth[i] += 1
