"""Kojima et al. (NAACL 2024): expertise = average precision of a unit's per-text mean
response at separating the target language's texts (positives) from every other language's
(negatives); top-N (fires for the language) and bottom-N (suppressed for it).

AP follows ``sklearn.metrics.average_precision_score``: AP = Σ_n (R_n − R_{n−1}) P_n over
distinct score thresholds (tied scores form one threshold).
"""

from __future__ import annotations

import torch

from crane.errors import ConfigError
from crane.scoring.base import Scores
from crane.stats import Stats

DIRECTIONS = ("top", "bottom")


def average_precision(
    y_true: torch.Tensor, scores: torch.Tensor, chunk: int = 4096
) -> torch.Tensor:
    """AP of ``scores [N, M]`` (M units) against binary labels ``y_true [N]``: ``[M]`` float64."""
    y = y_true.bool()
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.numel():
        raise ConfigError("Average precision needs both positive and negative texts.")
    n = scores.shape[0]
    rank = torch.arange(1, n + 1, dtype=torch.float64)[:, None]
    out = []
    for lo in range(0, scores.shape[1], chunk):
        s = scores[:, lo : lo + chunk].double()
        order = torch.sort(-s, dim=0, stable=True)
        v = -order.values
        tp = y[order.indices].double().cumsum(0)
        end = torch.ones_like(v, dtype=torch.bool)
        end[:-1] = v[:-1] != v[1:]
        tp_end = torch.where(end, tp, torch.zeros_like(tp))
        prev = torch.cat([torch.zeros_like(tp[:1]), tp_end.cummax(0).values[:-1]])
        out.append((end * (tp - prev) * tp / rank).sum(0) / n_pos)
    return torch.cat(out)


def kojima_scores(stats: Stats, *, direction: str = "top", key: str = "text_mean") -> Scores:
    """Per-language AP of per-text mean responses (needs :class:`ActivationStats`).

    ``direction="top"``: score = AP (highest first); ``"bottom"``: score = −AP (lowest AP
    first: units suppressed for the language). Kojima's "both" = union of a top-N and a
    bottom-N selection.
    """
    texts = getattr(stats, "texts", None)
    if not texts:
        raise ConfigError("Kojima scores need per-text responses: run the activation pass.")
    if direction not in DIRECTIONS:
        raise ConfigError(f"Unknown direction '{direction}'; use one of: {', '.join(DIRECTIONS)}.")
    languages = list(texts)
    if len(languages) < 2:
        raise ConfigError("Kojima scores compare languages: identify with at least two languages.")
    responses = torch.cat([texts[lang][key] for lang in languages])
    shape = responses.shape[1:]
    labels = torch.cat(
        [torch.full((texts[lang][key].shape[0],), i) for i, lang in enumerate(languages)]
    )
    flat = responses.flatten(1)
    values = {}
    for i, lang in enumerate(languages):
        ap = average_precision(labels == i, flat).view(shape)
        values[lang] = ap if direction == "top" else -ap
    return Scores(values, "kojima", {"direction": direction, "key": key})
