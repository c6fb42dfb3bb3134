"""The CRANE scores (METHOD.md "Language specificity and selection").

``margin`` (default): z-normalise each language's relevance profile over all neurons, then
S_L(n) = z_L(n) − max_{L'≠L} z_{L'}(n), restricted to neurons whose z_L(n) is at or above a
high quantile (default 0.95) of z_L.

``entropy``: LAPE's pipeline with activation probability replaced by positive relevance: the
profile's distribution over languages; a neuron is eligible for the language holding the
largest share when its positive relevance is at or above the quantile of that language's
values; lower entropy ranks first.
"""

from __future__ import annotations

import torch

from crane.errors import ConfigError
from crane.scoring.base import Scores
from crane.stats import Stats

PROFILES = {"signed": "prof_sum", "positive": "prof_pos_sum", "absolute": "prof_abs_sum"}
SCORES = ("margin", "entropy")


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


def crane_scores(
    stats: Stats,
    *,
    score: str = "margin",
    quantile: float = 0.95,
    profile: str = "signed",
    normalize: str = "global",
) -> Scores:
    """CRANE language-specificity scores from relevance statistics."""
    languages = stats.language_codes
    if len(languages) < 2:
        raise ConfigError(
            "CRANE scores compare languages: identify with at least two languages (e.g. en,zh)."
        )
    if not 0 <= quantile < 1:
        raise ConfigError(f"The quantile must be in [0, 1), got {quantile}.")
    if score not in SCORES:
        raise ConfigError(f"Unknown CRANE score '{score}'; use one of: {', '.join(SCORES)}.")
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
