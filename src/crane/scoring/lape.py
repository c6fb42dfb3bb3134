"""LAPE (Tang et al., ACL 2024), exactly as RUCAIBox/Language-Specific-Neurons ``identify.py``.

p_k(l, j) = act_pos_count_k / n_tokens_k; p̃_k = p_k / Σ_k p_k (NaN → 0);
LAPE = −Σ_k p̃_k log p̃_k (0·log 0 = 0).

1. τ_f = ``kthvalue(round(N · filter_rate))`` of all N = n_lang·n_layers·d_ff probabilities
   (the k-th smallest, 1-based); a neuron with no language ``p_k > τ_f`` gets entropy +∞.
2. keep the ``round(n_layers·d_ff · top_rate)`` neurons of lowest entropy (ties: lower flat
   index first);
3. τ_a = ``kthvalue(round(N · activation_bar_ratio))``; each kept neuron is assigned to every
   language with ``p_k > τ_a`` (a neuron may belong to several languages, or to none).

:func:`lape_set` returns that NeuronSet; the registered scorer ``lape`` returns a Scores view
(−entropy for neurons that pass the filter and have ``p_k > τ_a`` for that language, else
−inf) so that a count / fraction / matched budget can be selected with ``select_top``.
"""

from __future__ import annotations

from typing import Any

import torch

from crane.errors import ConfigError
from crane.neurons import NeuronSet
from crane.scoring.base import Scores, to_layer_indices
from crane.stats import Stats


def activation_probability(stats: Stats) -> torch.Tensor:
    """p ``[n_lang, n_layers, d_ff]`` float64 from ``act_pos_count`` / ``n_tokens``."""
    return stats.stack("act_pos_count", "n_tokens")


def _kth(flat: torch.Tensor, rate: float) -> float:
    k = min(max(round(flat.numel() * rate), 1), flat.numel())
    return float(flat.kthvalue(k).values)


def lape_entropy(p: torch.Tensor) -> torch.Tensor:
    """LAPE entropy over languages ``[n_layers, d_ff]`` of probabilities ``p [K, L, F]``."""
    normed = p / p.sum(0, keepdim=True)
    normed = torch.nan_to_num(normed, nan=0.0)
    logs = torch.where(normed > 0, normed.clamp_min(1e-300).log(), torch.zeros_like(normed))
    return -(normed * logs).sum(0)


def _check(filter_rate: float, top_rate: float, activation_bar_ratio: float) -> None:
    for name, value in (
        ("filter_rate", filter_rate),
        ("top_rate", top_rate),
        ("activation_bar_ratio", activation_bar_ratio),
    ):
        if not 0 < value <= 1:
            raise ConfigError(f"LAPE {name} must be in (0, 1], got {value}.")


def lape_parts(
    stats: Stats,
    filter_rate: float = 0.95,
    top_rate: float = 0.01,
    activation_bar_ratio: float = 0.95,
) -> dict[str, Any]:
    """LAPE intermediates: p, entropy (+inf when filtered), τ_f, τ_a, kept flat indices."""
    _check(filter_rate, top_rate, activation_bar_ratio)
    if len(stats.language_codes) < 2:
        raise ConfigError("LAPE compares languages: identify with at least two languages.")
    p = activation_probability(stats)
    flat_p = p.flatten()
    tau_f = _kth(flat_p, filter_rate)
    entropy = lape_entropy(p)
    entropy[(p > tau_f).sum(0) == 0] = float("inf")
    flat_e = entropy.flatten()
    n_keep = round(flat_e.numel() * top_rate)
    kept = torch.sort(flat_e, stable=True).indices[:n_keep]
    tau_a = _kth(flat_p, activation_bar_ratio)
    return {"p": p, "entropy": entropy, "tau_f": tau_f, "tau_a": tau_a, "kept": kept}


def lape_set(
    stats: Stats,
    *,
    filter_rate: float = 0.95,
    top_rate: float = 0.01,
    activation_bar_ratio: float = 0.95,
    site: str = "act",
) -> NeuronSet:
    """LAPE's own output: the kept neurons assigned to every language with ``p > τ_a``."""
    parts = lape_parts(stats, filter_rate, top_rate, activation_bar_ratio)
    p, kept = parts["p"], parts["kept"]
    n_layers, d_ff = p.shape[1:]
    flat = p.flatten(1)
    neurons = {
        lang: to_layer_indices(kept[flat[i, kept] > parts["tau_a"]], d_ff)
        for i, lang in enumerate(stats.language_codes)
    }
    meta = {
        "method": "lape",
        "options": {
            "filter_rate": filter_rate,
            "top_rate": top_rate,
            "activation_bar_ratio": activation_bar_ratio,
        },
        "tau_f": parts["tau_f"],
        "tau_a": parts["tau_a"],
    }
    return NeuronSet(neurons, site, n_layers, d_ff, meta)


def lape_scores(
    stats: Stats,
    *,
    filter_rate: float = 0.95,
    top_rate: float = 0.01,
    activation_bar_ratio: float = 0.95,
) -> Scores:
    """−LAPE entropy for neurons that pass the filter and exceed τ_a in the language
    (``top_rate`` is not applied: the budget decides the size)."""
    parts = lape_parts(stats, filter_rate, top_rate, activation_bar_ratio)
    p, entropy = parts["p"], parts["entropy"]
    values = {}
    for i, lang in enumerate(stats.language_codes):
        s = -entropy.clone()
        s[~torch.isfinite(entropy) | (p[i] <= parts["tau_a"])] = float("-inf")
        values[lang] = s
    options = {
        "filter_rate": filter_rate,
        "top_rate": top_rate,
        "activation_bar_ratio": activation_bar_ratio,
        "tau_f": parts["tau_f"],
        "tau_a": parts["tau_a"],
    }
    return Scores(values, "lape", options)
