"""Activation magnitude: mean |a| per token at the site, contrasted with the other languages.

``contrast="max"`` (default): m_L − max_{L'≠L} m_L'; ``"mean"``: m_L − mean_{L'≠L} m_L'.
``relative=True`` divides the difference by m_L + the compared value (scale-free across layers).
"""

from __future__ import annotations

import torch

from crane.errors import ConfigError
from crane.scoring.base import Scores
from crane.stats import Stats

CONTRASTS = ("max", "mean")


def actmean_scores(stats: Stats, *, contrast: str = "max", relative: bool = False) -> Scores:
    if contrast not in CONTRASTS:
        raise ConfigError(f"Unknown contrast '{contrast}'; use one of: {', '.join(CONTRASTS)}.")
    languages = stats.language_codes
    if len(languages) < 2:
        raise ConfigError("Activation contrasts compare languages: use at least two languages.")
    m = stats.stack("site_abs_sum", "n_tokens")
    values = {}
    for i, lang in enumerate(languages):
        rest = torch.cat([m[:i], m[i + 1 :]])
        other = rest.max(0).values if contrast == "max" else rest.mean(0)
        diff = m[i] - other
        values[lang] = diff / (m[i] + other).clamp_min(1e-300) if relative else diff
    return Scores(values, "actmean", {"contrast": contrast, "relative": relative})
