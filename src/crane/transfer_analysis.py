"""Base→chat transfer: apply the neuron sets found on model A to model B of the same shape.

For each language L of the set, with ``Δ^M_L(E)`` the change in bits per byte of language E
when L's neurons are masked in model M (docs/method.md):

- transfer ratio ``T_L = Δ^B_L(L) / Δ^A_L(L)`` (1: the set is exactly as necessary in B);
- selectivity ``Sel_L = Δ_L(L) − mean_{E≠L} Δ_L(E)`` in A and in B;
- when B has its own identification run: Jaccard overlap of L's set on A and on B, overall
  and per layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from crane.data.corpus import Corpus
from crane.errors import ConfigError
from crane.evaluation.bpb import MaskingMatrix, masking_matrix
from crane.evaluation.chat import DEFAULT_CHAT_PROMPT, chat_prefix_ids
from crane.evaluation.metrics import row_metrics
from crane.models.loading import LoadedModel
from crane.neurons import NeuronSet
from crane.progress import Progress

CHAT_TEMPLATE_CHOICES = ("none", "b", "both")
"""Which models read each evaluated text inside their chat template."""


@dataclass
class TransferResult:
    """Masking matrices on both models and the transfer metrics derived from them."""

    languages: list[str]
    matrix_a: MaskingMatrix
    matrix_b: MaskingMatrix
    ratio: dict[str, float]
    sel_a: dict[str, float]
    sel_b: dict[str, float]
    jaccard: dict[str, float] = field(default_factory=dict)
    jaccard_per_layer: dict[str, list[float]] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "languages": self.languages,
            "models": self.models,
            "transfer_ratio": {k: finite(v) for k, v in self.ratio.items()},
            "sel_a": self.sel_a,
            "sel_b": self.sel_b,
            "jaccard": self.jaccard,
            "jaccard_per_layer": self.jaccard_per_layer,
            "delta_a": self.matrix_a.delta().to_dict(orient="index"),
            "delta_b": self.matrix_b.delta().to_dict(orient="index"),
            "bits_per_byte_a": self.matrix_a.bpb().to_dict(orient="index"),
            "bits_per_byte_b": self.matrix_b.bpb().to_dict(orient="index"),
        }


def layer_jaccard(a: NeuronSet, b: NeuronSet, language: str, n_layers: int) -> list[float]:
    """Jaccard index of ``language``'s neurons in ``a`` and ``b``, layer by layer (1.0 where
    both are empty)."""
    out = []
    la, lb = a.layers(language), b.layers(language)
    for layer in range(n_layers):
        x, y = set(la.get(layer, [])), set(lb.get(layer, []))
        union = len(x | y)
        out.append(len(x & y) / union if union else 1.0)
    return out


def transfer(
    neurons: NeuronSet,
    model_a: LoadedModel,
    model_b: LoadedModel,
    corpus: Corpus,
    *,
    own_set_b: NeuronSet | None = None,
    batch_size: int = 64,
    max_tokens: int | None = 1024,
    max_length: int = 128,
    chat_template: str = "none",
    chat_prompt: str = DEFAULT_CHAT_PROMPT,
    progress: Progress | None = None,
) -> TransferResult:
    """Evaluate ``neurons`` (found on A) on A and on B over ``corpus``; see the module doc.

    ``chat_template``: ``none`` (plain text in both models), ``b`` (B reads each text as its
    reply to ``chat_prompt`` in B's chat template; A reads plain text) or ``both``.

    Raises :class:`crane.errors.NeuronSetError` when the set does not fit B (different layer
    count or MLP width), :class:`crane.errors.ConfigError` for an unknown ``chat_template`` or a
    tokenizer without a template."""
    if chat_template not in CHAT_TEMPLATE_CHOICES:
        raise ConfigError(
            f"Unknown chat-template choice {chat_template!r}; use one of "
            f"{', '.join(CHAT_TEMPLATE_CHOICES)}."
        )
    prefix_a = chat_prefix_ids(model_a.tokenizer, chat_prompt) if chat_template == "both" else None
    prefix_b = chat_prefix_ids(model_b.tokenizer, chat_prompt) if chat_template != "none" else None
    neurons.check_fits(model_a.shape)
    neurons.check_fits(model_b.shape)
    if own_set_b is not None:
        own_set_b.check_fits(model_b.shape)
    languages = [lang for lang in corpus.languages]
    masks = {"set": neurons}
    options = dict(
        random_controls=False, batch_size=batch_size, max_tokens=max_tokens,
        max_length=max_length, progress=progress,
    )
    matrix_a = masking_matrix(model_a.model, model_a.tokenizer, corpus, masks,
                              adapter=model_a.adapter, prefix_ids=prefix_a, **options)
    matrix_b = masking_matrix(model_b.model, model_b.tokenizer, corpus, masks,
                              adapter=model_b.adapter, prefix_ids=prefix_b, **options)
    delta_a, delta_b = matrix_a.delta(), matrix_b.delta()
    ratio, sel_a, sel_b = {}, {}, {}
    jaccard: dict[str, float] = {}
    per_layer: dict[str, list[float]] = {}
    for lang in neurons.languages:
        if lang not in languages:
            continue
        row = "set" if len(neurons.languages) == 1 else f"set:{lang}"
        a, b = float(delta_a.loc[row, lang]), float(delta_b.loc[row, lang])
        ratio[lang] = b / a if a != 0 else math.nan
        sel_a[lang] = row_metrics(delta_a.loc[row, languages].to_dict(), lang)["sel"]
        sel_b[lang] = row_metrics(delta_b.loc[row, languages].to_dict(), lang)["sel"]
        if own_set_b is not None and lang in own_set_b.languages:
            jaccard[lang] = neurons.overlap(own_set_b, lang)["jaccard"]
            per_layer[lang] = layer_jaccard(neurons, own_set_b, lang, model_b.shape.n_layers)
    return TransferResult(
        [lang for lang in neurons.languages if lang in languages],
        matrix_a, matrix_b, ratio, sel_a, sel_b, jaccard, per_layer,
        {"a": model_a.source, "b": model_b.source, "chat_template": chat_template,
         "chat_prompt": chat_prompt if chat_template != "none" else None},
    )
