"""PLND (Zhao et al., NeurIPS 2024), released-code form for MLP neurons.

Importance of neuron j on a text: mean over its tokens of |a_j| · ‖W_down[:, j]‖ (the change
of the layer output when the neuron is removed; the per-text mean ranks like the released
code's per-text sum). For each text, the ``top_number`` most important neurons *of each layer*
are its top set. Language L's set = neurons in the top set of **every** L text; the
language-specific set = L's set minus the union of the other languages' sets.

:func:`plnd_set` returns that NeuronSet. The registered scorer ``plnd`` gives
``frac_L − max_{L'≠L} frac_L'`` (frac = share of a language's texts whose top set holds the
neuron) plus a tie-break below 10⁻³ by L's mean importance (normalised to [0, 1]);
``strict=True`` (default) keeps only the published set eligible (frac_L = 1, every other
frac < 1), ``strict=False`` every neuron with frac_L > 0.
"""

from __future__ import annotations

import torch

from crane.errors import ConfigError
from crane.neurons import NeuronSet
from crane.scoring.base import Scores, to_layer_indices
from crane.stats import Stats


def _texts(stats: Stats) -> dict[str, torch.Tensor]:
    texts = getattr(stats, "texts", None)
    if not texts:
        raise ConfigError("PLND needs per-text importances: run the activation pass.")
    if len(texts) < 2:
        raise ConfigError("PLND compares languages: identify with at least two languages.")
    return {lang: t["text_plnd"] for lang, t in texts.items()}


def top_fraction(importance: torch.Tensor, top_number: int) -> torch.Tensor:
    """Share of texts (``importance [n, L, F]``) whose per-layer top-``top_number`` holds each
    neuron: ``[L, F]`` float64 (ties: lower index first)."""
    if top_number < 1:
        raise ConfigError(f"PLND top_number must be at least 1, got {top_number}.")
    n, n_layers, d_ff = importance.shape
    k = min(top_number, d_ff)
    hits = torch.zeros(n_layers, d_ff, dtype=torch.float64)
    for text in importance:
        order = torch.sort(-text.double(), dim=1, stable=True).indices[:, :k]
        hits.scatter_add_(1, order, torch.ones_like(order, dtype=torch.float64))
    return hits / max(n, 1)


def plnd_set(stats: Stats, *, top_number: int = 2000, site: str = "down_in") -> NeuronSet:
    """The published PLND language-specific sets."""
    imp = _texts(stats)
    frac = {lang: top_fraction(t, top_number) for lang, t in imp.items()}
    n_layers, d_ff = next(iter(frac.values())).shape
    neurons = {}
    for lang, f in frac.items():
        mine = f >= 1
        others = torch.zeros_like(mine)
        for other, g in frac.items():
            if other != lang:
                others |= g >= 1
        neurons[lang] = to_layer_indices(torch.nonzero((mine & ~others).flatten())[:, 0], d_ff)
    meta = {"method": "plnd", "options": {"top_number": top_number}}
    return NeuronSet(neurons, site, n_layers, d_ff, meta)


def plnd_scores(stats: Stats, *, top_number: int = 2000, strict: bool = True) -> Scores:
    imp = _texts(stats)
    frac = {lang: top_fraction(t, top_number) for lang, t in imp.items()}
    values = {}
    for lang, f in frac.items():
        rest = torch.stack([g for other, g in frac.items() if other != lang]).max(0).values
        mean = imp[lang].double().mean(0)
        tie = 1e-3 * mean / mean.max().clamp_min(1e-300) * 0.999
        s = f - rest + tie
        eligible = (f >= 1) & (rest < 1) if strict else f > 0
        s[~eligible] = float("-inf")
        values[lang] = s
    return Scores(values, "plnd", {"top_number": top_number, "strict": strict})
