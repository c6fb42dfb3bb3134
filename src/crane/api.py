"""The notebook API: a few functions over the library, taking model specs or loaded models.

    import crane
    model = crane.load_model("gemma-3-270m")
    sets = crane.identify(model, ["en", "zh", "vi"], max_texts=100)
    matrix = crane.evaluate(model, sets)          # .delta() is a pandas DataFrame
    with crane.mask(model.model, sets, languages=["vi"]):
        ...                                        # any forward pass here is masked
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crane.data.corpus import Corpus
from crane.evaluation.bpb import MaskingMatrix
from crane.models.loading import LoadedModel
from crane.neurons import NeuronSet
from crane.progress import Progress, default_progress


def _loaded(model: str | Path | LoadedModel, **load_options: Any) -> LoadedModel:
    if isinstance(model, LoadedModel):
        return model
    from crane.models.loading import load_model

    return load_model(str(model), **load_options)


def _corpus(corpus: str | Path | Corpus, part: str, languages: Sequence[str] | None) -> Corpus:
    from crane.data.builtin import load_corpus
    from crane.data.languages import parse_language_list

    loaded = corpus if isinstance(corpus, Corpus) else load_corpus(corpus, part=part)
    return loaded.select(parse_language_list(list(languages))) if languages else loaded


def identify(
    model: str | Path | LoadedModel,
    languages: Sequence[str],
    *,
    corpus: str | Path | Corpus = "auto",
    methods: str | Sequence[str] = "crane",
    budget: str = "0.5%",
    out: str | Path | None = None,
    verify: bool = True,
    max_texts: int | None = None,
    token_budget: int | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> NeuronSet | dict[str, NeuronSet] | None:
    """Each language's neurons by one method (a NeuronSet) or several (``{method: set}``).

    ``corpus``: ``auto`` (gettext where present, else UDHR), a built-in name, a path or a
    :class:`Corpus`; its identification part is used. ``token_budget``: most tokens per
    language. ``options`` are :class:`crane.identification.IdentifyOptions` fields
    (``score``, ``quantile``, ``profile``, ...) or :class:`crane.collect.RelevanceOptions`
    fields (``site``, ``batch_tokens``, ``shard_texts``, ...). ``out`` keeps resumable
    statistics and the sets in a run directory.

    Under ``torchrun``/``accelerate launch`` (a script that calls this on every process) the
    statistics shards are split between the processes, which need a shared ``out``; rank 0
    returns the sets and every other rank ``None``.
    """
    import dataclasses

    from crane.collect import RelevanceOptions
    from crane.distributed import RankDone
    from crane.identification import IdentifyOptions, identify_methods
    from crane.methods import parse_methods

    if "max_tokens" in options:  # the name before token_budget
        token_budget = options.pop("max_tokens")
    relevance_fields = {f.name for f in dataclasses.fields(RelevanceOptions)}
    relevance = {k: options.pop(k) for k in list(options) if k in relevance_fields}

    loaded = _loaded(model)
    spec = corpus
    if isinstance(corpus, str):
        from crane.data.builtin import resolve_identification_corpus

        # the library does not print the fallback note
        spec, _ = resolve_identification_corpus(corpus, languages)
    texts = _corpus(spec, "identify", languages)
    names = parse_methods(methods if isinstance(methods, str) else ",".join(methods))
    chosen = IdentifyOptions(
        relevance=dataclasses.replace(
            options.pop("relevance", RelevanceOptions()), **relevance
        ).validate(),
        verify=verify, max_texts=max_texts,
        token_budget=token_budget, **options,
    )
    try:
        result = identify_methods(
            loaded, texts, names, budget=budget, out_dir=out, progress=progress or default_progress(), options=chosen
        )
    except RankDone:
        return None
    return result.sets[names[0]] if len(names) == 1 else result.sets


def evaluate(
    model: str | Path | LoadedModel,
    neurons: NeuronSet | dict[str, NeuronSet] | None = None,
    *,
    corpus: str | Path | Corpus = "udhr",
    part: str = "heldout",
    languages: Sequence[str] | None = None,
    max_texts: int | None = None,
    random_controls: bool = True,
    progress: Progress | None = None,
    **options: Any,
) -> MaskingMatrix:
    """Bits per byte per language, unmasked and with each language's neurons of each set masked
    (``.bpb()``, ``.delta()``: DataFrames). ``options`` go to
    :func:`crane.evaluation.masking_matrix` (``mode``, ``alpha``, ``seed``, ``batch_size``...)."""
    from crane.evaluation.bpb import masking_matrix

    loaded = _loaded(model)
    texts = _corpus(corpus, part, languages)
    if max_texts:
        texts = texts.take(max_texts)
    sets = {"set": neurons} if isinstance(neurons, NeuronSet) else dict(neurons or {})
    return masking_matrix(
        loaded.model, loaded.tokenizer, texts, sets, random_controls=random_controls,
        adapter=loaded.adapter, progress=progress or default_progress(), **options,
    )


def transfer(
    neurons: NeuronSet,
    model_a: str | Path | LoadedModel,
    model_b: str | Path | LoadedModel,
    *,
    corpus: str | Path | Corpus = "udhr",
    part: str = "heldout",
    languages: Sequence[str] | None = None,
    own_set_b: NeuronSet | None = None,
    max_texts: int | None = None,
    chat_template: str = "none",
    **options: Any,
) -> Any:
    """:func:`crane.transfer_analysis.transfer` with model specs or loaded models.

    ``chat_template="b"`` scores B (a chat model) on each text as its reply inside its chat
    template (``"both"``: A too); further ``options`` go to the transfer function."""
    from crane.transfer_analysis import transfer as run_transfer

    texts = _corpus(corpus, part, languages or neurons.languages)
    if max_texts:
        texts = texts.take(max_texts)
    return run_transfer(
        neurons, _loaded(model_a), _loaded(model_b), texts, own_set_b=own_set_b,
        chat_template=chat_template, **options,
    )
