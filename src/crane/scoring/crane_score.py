"""The CRANE scores (docs/method.md "Language specificity and selection").

v2 (in bits per byte, from the ``logprob`` target's accumulators; no z-scores, no quantile):

- ``contrast``: S_L(n) = U_L(n) − λ · max_{E≠L} U_E(n) (``contrast_over="mean"``: the mean of
  the others), U the exposure Σ|e| per byte: how much L's predictions flow through n, minus the
  most any other language does;
- ``effect``: S_L(n) = D_L(n) − λ · max_{E≠L} U_E(n), D the signed expected damage Σe per
  byte, eligible only when D_L(n) > z · SE_L(n) (the standard error over sequences);
- ``fisher``: S_L(n) = Q_L(n) − λ · max_{E≠L} Q_E(n), Q = ½ Σ_x (Σ_t e)² per byte, the
  second-order (empirical-Fisher) estimate of the damage of zeroing n: in a trained model the
  first-order term D is near zero (the loss is near stationary in each neuron's scale), so
  zeroing damage is second order (bench/SELECTIVITY.md, "Why first-order relevance misses").

v1: ``margin``: z-normalise each language's relevance profile over all neurons, then
S_L(n) = z_L(n) − max_{L'≠L} z_{L'}(n), restricted to neurons whose z_L(n) is at or above a
high quantile (default 0.95) of z_L.

``entropy``: LAPE's pipeline with activation probability replaced by positive relevance: the
profile's distribution over languages; a neuron is eligible for the language holding the
largest share when its positive relevance is at or above the quantile of that language's
values; lower entropy ranks first.
"""

from __future__ import annotations

import math

import torch

from crane.errors import ConfigError
from crane.scoring.base import Scores
from crane.stats import Stats

PROFILES = {
    "signed": "prof_sum",
    "positive": "prof_pos_sum",
    "absolute": "prof_abs_sum",
    "exposure": "prof_exp_sum",
}
V2_SCORES = ("contrast", "effect", "fisher")
SCORES = ("margin", "entropy", *V2_SCORES)
CONTRASTS = ("max", "mean")
LN2 = math.log(2)


def profiles(stats: Stats, profile: str) -> torch.Tensor:
    """Per-language mean normalised relevance ``[n_lang, n_layers, d_ff]``."""
    if profile not in PROFILES:
        raise ConfigError(f"Unknown relevance profile '{profile}'; use one of: {', '.join(PROFILES)}.")
    return stats.stack(PROFILES[profile])


def _quantile(x: torch.Tensor, q: float) -> torch.Tensor:
    """Exact quantile of a large float64 vector (torch.quantile has a size limit)."""
    flat = x.flatten().sort().values
    position = q * (flat.numel() - 1)
    lo = int(position)
    hi = min(lo + 1, flat.numel() - 1)
    return flat[lo] + (flat[hi] - flat[lo]) * (position - lo)


NORMALIZATIONS = ("global", "layer")


def zscore(p: torch.Tensor, normalize: str) -> torch.Tensor:
    """z-scores of ``p [n_lang, n_layers, d_ff]`` over all neurons (``global``) or within each
    layer (``layer``: relevance magnitudes differ a lot between layers)."""
    if normalize not in NORMALIZATIONS:
        raise ConfigError(
            f"Unknown normalisation '{normalize}'; use one of: {', '.join(NORMALIZATIONS)}."
        )
    dims = (1, 2) if normalize == "global" else (2,)
    mean = p.mean(dim=dims, keepdim=True)
    std = p.std(dim=dims, keepdim=True).clamp_min(1e-300)
    return (p - mean) / std


def per_byte(stats: Stats, name: str) -> torch.Tensor:
    """``[n_lang, n_layers, d_ff]``: accumulator ``name`` (nats) in bits per byte of each
    language's text."""
    out = []
    for lang in stats.language_codes:
        lang_stats = stats[lang]
        n_bytes = lang_stats.counts.get("n_bytes", 0)
        if name not in lang_stats.tensors or n_bytes <= 0:
            raise ConfigError(
                f"The relevance statistics of '{lang}' lack '{name}' or a byte count (they were "
                "collected before selection v2); collect them again (delete the run's stats "
                "folder or use a new --out)."
            )
        out.append(lang_stats.tensors[name].double() / (LN2 * n_bytes))
    return torch.stack(out)


def standard_error(stats: Stats) -> torch.Tensor:
    """``[n_lang, n_layers, d_ff]`` standard error of D (bits per byte) over sequences."""
    out = []
    for lang in stats.language_codes:
        lang_stats = stats[lang]
        n = max(lang_stats.counts.get("n_sequences", 0), 1)
        mean = lang_stats.tensors["rel_sum"].double() / n
        var = (lang_stats.tensors["rel_sq_sum"].double() / n - mean * mean).clamp_min(0)
        se_sum = (var * n).sqrt()  # of Σ_x r_x, in nats
        out.append(se_sum / (LN2 * lang_stats.counts["n_bytes"]))
    return torch.stack(out)


def _others(u: torch.Tensor, i: int, contrast_over: str) -> torch.Tensor:
    rest = torch.cat([u[:i], u[i + 1 :]])
    return rest.max(0).values if contrast_over == "max" else rest.mean(0)


def v2_scores(
    stats: Stats, score: str, lam: float, contrast_over: str, z: float
) -> dict[str, torch.Tensor]:
    """``contrast``, ``effect`` or ``fisher`` scores per language (module docstring)."""
    if contrast_over not in CONTRASTS:
        raise ConfigError(
            f"Unknown contrast {contrast_over!r}; use one of: {', '.join(CONTRASTS)}."
        )
    if lam < 0 or z < 0:
        raise ConfigError(f"lam and z must not be negative, got lam={lam}, z={z}.")
    if score == "fisher":  # Q = ½ W per byte: the same quantity for L and the others
        own = u = 0.5 * per_byte(stats, "rel_sq_sum")
    else:
        u = per_byte(stats, "exp_sum")
        own = u if score == "contrast" else per_byte(stats, "rel_sum")
    se = standard_error(stats) if score == "effect" else None
    values = {}
    for i, lang in enumerate(stats.language_codes):
        s = own[i] - lam * _others(u, i, contrast_over)
        if se is not None:
            s[~(own[i] > z * se[i])] = float("-inf")
        values[lang] = s
    return values


def crane_scores(
    stats: Stats,
    *,
    score: str = "margin",
    quantile: float = 0.95,
    profile: str = "signed",
    normalize: str = "global",
    lam: float = 1.0,
    contrast_over: str = "max",
    z: float = 2.0,
) -> Scores:
    """CRANE language-specificity scores from relevance statistics (v2 ``contrast``,
    ``effect`` and ``fisher`` use ``lam``, ``contrast_over`` and ``z``; v1 ``margin`` and
    ``entropy`` use ``quantile``, ``profile`` and ``normalize``)."""
    languages = stats.language_codes
    if len(languages) < 2:
        raise ConfigError(
            "CRANE scores compare languages: identify with at least two languages (e.g. en,zh)."
        )
    if not 0 <= quantile < 1:
        raise ConfigError(f"The quantile must be in [0, 1), got {quantile}.")
    if score not in SCORES:
        raise ConfigError(f"Unknown CRANE score '{score}'; use one of: {', '.join(SCORES)}.")
    options: dict[str, object]
    if score in V2_SCORES:
        options = {"score": score, "lam": lam, "contrast_over": contrast_over}
        if score == "effect":
            options["z"] = z
        return Scores(v2_scores(stats, score, lam, contrast_over, z), "crane", options)
    options = {"score": score, "quantile": quantile, "profile": profile, "normalize": normalize}
    if score == "margin":
        p = profiles(stats, profile)
        z = zscore(p, normalize).flatten(1)
        values = {}
        for i, lang in enumerate(languages):
            others = torch.cat([z[:i], z[i + 1 :]]).max(0).values
            s = z[i] - others
            s[z[i] < _quantile(z[i], quantile)] = float("-inf")
            values[lang] = s.view(p.shape[1:])
        return Scores(values, "crane", options)
    positive = profiles(stats, "positive" if profile == "signed" else profile).clamp_min(0)
    flat = positive.flatten(1)
    share = flat / flat.sum(0, keepdim=True).clamp_min(1e-300)
    entropy = -(share * share.clamp_min(1e-300).log()).sum(0)
    owner = share.argmax(0)
    values = {}
    for i, lang in enumerate(languages):
        s = -entropy.clone()
        s[(owner != i) | (flat[i] < _quantile(flat[i], quantile)) | (flat[i] <= 0)] = float("-inf")
        values[lang] = s.view(positive.shape[1:])
    return Scores(values, "crane", options)
