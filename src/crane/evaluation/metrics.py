"""Metrics of a masking matrix with bootstrap confidence intervals, and relevance capture.

Every benchmark reduces to *units* (texts or questions) per evaluated language, each with a
numerator and a denominator: bits per byte is ``Σ bits / Σ bytes`` over a language's texts,
accuracy is ``Σ correct / Σ 1`` over its questions. A bootstrap replicate resamples each
language's units with replacement and reuses the **same** resample for every masking condition
(paired), so a change and the metrics built from it (docs/method.md) get percentile intervals:

- damage ``D_L(E)``: the change when L's neurons are masked, evaluated on E, signed so that a
  larger value is more harm (``Δ`` for bits per byte, ``−Δ`` for accuracy);
- selectivity ``Sel_L = D_L(L) − mean_{E≠L} D_L(E)``;
- diagonal dominance ``DD_L = D_L(L) / mean_{E≠L} D_L(E)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from crane.neurons import NeuronSet
from crane.stats import Stats

CI_LEVEL = 0.95


@dataclass(frozen=True)
class Units:
    """Per-unit numerators and denominators of one (condition, language) cell: ``[n_units]``."""

    num: np.ndarray
    den: np.ndarray

    @property
    def value(self) -> float:
        return float(self.num.sum() / max(float(self.den.sum()), 1e-300))


def bpb_units(nats: np.ndarray, n_bytes: np.ndarray) -> Units:
    """Bits per byte as units: bits per text over bytes per text."""
    bits = np.asarray(nats, dtype=np.float64) / math.log(2)
    return Units(bits, np.asarray(n_bytes, dtype=np.float64))


def accuracy_units(correct: np.ndarray) -> Units:
    """Accuracy as units: 1 per correct answer over 1 per question."""
    values = np.asarray(correct, dtype=np.float64)
    return Units(values, np.ones_like(values))


def interval(samples: np.ndarray) -> list[float]:
    """Percentile interval of finite samples (``[nan, nan]`` when there are none)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return [math.nan, math.nan]
    tail = (1 - CI_LEVEL) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [float(low), float(high)]


RATIO_FLOOR = 1e-9
"""Off-target damage smaller than this (in the benchmark's unit) counts as none: DD is then
undefined (NaN) rather than a huge number made of rounding error."""


def _ratio(own: np.ndarray, others: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(others) > RATIO_FLOOR, own / others, np.nan)


def off_target(others: Sequence[np.ndarray | float]) -> np.ndarray:
    """Mean damage on the other languages (NaN when there are none)."""
    if not len(others):
        return np.asarray(np.nan)
    return np.mean(np.asarray(others, dtype=np.float64), axis=0)


def selectivity(own: np.ndarray | float, off: np.ndarray | float) -> np.ndarray:
    """``Sel_L = D_L(L) − mean_{E≠L} D_L(E)`` (the headline number), elementwise."""
    return np.asarray(own, dtype=np.float64) - np.asarray(off, dtype=np.float64)


def diagonal_dominance(own: np.ndarray | float, off: np.ndarray | float) -> np.ndarray:
    """``DD_L = D_L(L) / mean_{E≠L} D_L(E)``; NaN when the off-target damage is ~0."""
    return _ratio(np.asarray(own, dtype=np.float64), np.asarray(off, dtype=np.float64))


def row_metrics(damage: Mapping[str, float], masked: str) -> dict[str, float]:
    """Own damage, off-target damage, Sel and DD of one row's point estimates
    (``damage``: evaluated language → damage when ``masked``'s neurons are masked)."""
    own = float(damage[masked])
    off = float(off_target([v for lang, v in damage.items() if lang != masked]))
    return {
        "damage": own,
        "off_target": off,
        "sel": float(selectivity(own, off)),
        "dd": float(diagonal_dominance(own, off)),
    }


def matrix_metrics(
    cells: Mapping[tuple[str, str], Units],
    rows: Mapping[str, Mapping[str, str]],
    languages: list[str],
    *,
    none: str = "none",
    higher_is_better: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    keep_replicates: bool = False,
) -> dict[str, Any]:
    """Values, changes and metrics with bootstrap intervals for one benchmark.

    Args:
        cells: ``(condition, evaluated language) → Units``; must hold ``none`` for every
            language and, for every condition, the same units as ``none`` (paired).
        rows: ``method → masked language → condition`` (which row masks L's neurons).
        languages: evaluated languages.
        higher_is_better: ``True`` for accuracy (damage is a fall), ``False`` for bits/byte.
        n_boot: bootstrap replicates (0: no intervals).

    Returns the ``none``/``none_ci``/``value``/``delta``/``delta_ci`` part of a benchmark
    (``none_ci``: the unmasked value's interval over the same resamples) and its
    ``metrics`` (method → L → damage, Sel, DD with ``_ci`` intervals), as in docs/results.md;
    with ``keep_replicates`` also ``replicates`` (method → L → ``[n_boot + 1]`` Sel, replicate
    0 the full data) for :func:`paired_difference`.
    """
    sign = -1.0 if higher_is_better else 1.0
    rng = np.random.default_rng(seed)
    conditions = [none, *dict.fromkeys(c for per in rows.values() for c in per.values())]
    # [n_boot + 1, n_conditions] values per evaluated language; replicate 0 is the full data
    values: dict[str, np.ndarray] = {}
    for lang in languages:
        n = len(cells[(none, lang)].num)
        for condition in conditions:
            if len(cells[(condition, lang)].num) != n:
                raise ValueError(f"Condition {condition!r} has other units than 'none' for {lang}.")
        index = np.concatenate(
            [np.arange(n)[None, :], rng.integers(0, n, size=(n_boot, n))], axis=0
        )
        table = np.empty((n_boot + 1, len(conditions)))
        for j, condition in enumerate(conditions):
            units = cells[(condition, lang)]
            with np.errstate(divide="ignore", invalid="ignore"):
                table[:, j] = units.num[index].sum(1) / units.den[index].sum(1)
        values[lang] = table
    column = {c: j for j, c in enumerate(conditions)}

    def delta(condition: str, lang: str) -> np.ndarray:
        table = values[lang]
        return table[:, column[condition]] - table[:, column[none]]

    out: dict[str, Any] = {
        "none": {lang: float(values[lang][0, 0]) for lang in languages},
        "none_ci": {lang: interval(values[lang][1:, 0]) for lang in languages},
        "value": {},
        "delta": {},
        "delta_ci": {},
    }
    metrics: dict[str, Any] = {}
    replicates: dict[str, dict[str, np.ndarray]] = {}
    for method, per_lang in rows.items():
        out["value"][method], out["delta"][method], out["delta_ci"][method] = {}, {}, {}
        metrics[method] = {}
        for masked, condition in per_lang.items():
            d = {lang: delta(condition, lang) for lang in languages}
            out["value"][method][masked] = {
                lang: float(values[lang][0, column[condition]]) for lang in languages
            }
            out["delta"][method][masked] = {lang: float(d[lang][0]) for lang in languages}
            out["delta_ci"][method][masked] = {lang: interval(d[lang][1:]) for lang in languages}
            if masked not in d:
                continue
            damage = sign * d[masked]
            off = off_target([sign * d[lang] for lang in languages if lang != masked])
            off = np.broadcast_to(off, damage.shape)
            sel, dd = selectivity(damage, off), diagonal_dominance(damage, off)
            replicates.setdefault(method, {})[masked] = sel
            metrics[method][masked] = {
                "damage": float(damage[0]),
                "damage_ci": interval(damage[1:]),
                "off_target": float(off[0]),
                "off_target_ci": interval(off[1:]),
                "sel": float(sel[0]),
                "sel_ci": interval(sel[1:]),
                "dd": float(dd[0]),
                "dd_ci": interval(dd[1:]),
            }
    return {**out, "metrics": metrics, **({"replicates": replicates} if keep_replicates else {})}


def own_at_off_target(
    off_target: Sequence[float], own: Sequence[float], level: float
) -> float | None:
    """Own damage where the off-target damage reaches ``level``, read along a budget sweep.

    The points ``(off_target[i], own[i])`` are taken in budget order, starting from the empty
    set ``(0, 0)``; the value is interpolated linearly on the first segment whose off-target
    damage crosses ``level``. ``None`` when the sweep never reaches it (or a point is
    undefined before it does): the frontier does not extrapolate.
    """
    xs, ys = [0.0], [0.0]
    for x, y in zip(off_target, own, strict=True):
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            return None
        xs.append(float(x))
        ys.append(float(y))
    for i in range(1, len(xs)):
        lo, hi = sorted((xs[i - 1], xs[i]))
        if lo <= level <= hi:
            if xs[i] == xs[i - 1]:
                return ys[i - 1]
            t = (level - xs[i - 1]) / (xs[i] - xs[i - 1])
            return ys[i - 1] + t * (ys[i] - ys[i - 1])
    return None


def paired_difference(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Sel(A) − Sel(B) with its paired percentile interval: both replicate arrays come from
    the same resamples of the same units (:func:`matrix_metrics` ``keep_replicates``)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return {"diff": float(diff[0]), "ci": interval(diff[1:])}


def positive_profiles(stats: Stats) -> dict[str, torch.Tensor]:
    """Mean positive relevance profile ``P⁺_E`` per language: ``[n_layers, d_ff]`` float64."""
    return {lang: stats[lang].mean("prof_pos_sum").double() for lang in stats.language_codes}


def relevance_capture(stats: Stats, neurons: NeuronSet) -> dict[str, dict[str, Any]]:
    """Relevance capture ``RC_L(E) = Σ_{n∈N_L} P⁺_E(n) / Σ_n P⁺_E(n)`` and specificity
    ``RS_L = RC_L(L) / mean_{E≠L} RC_L(E)`` for every language L of ``neurons`` that the
    relevance ``stats`` hold (docs/method.md's relevance-based metric)."""
    profiles = positive_profiles(stats)
    languages = list(profiles)
    out: dict[str, dict[str, Any]] = {}
    for lang in neurons.languages:
        mask = torch.zeros_like(next(iter(profiles.values())), dtype=torch.bool)
        for layer, indices in neurons.layers(lang).items():
            mask[layer, list(indices)] = True
        rc = {
            e: float(p[mask].sum() / p.sum()) if float(p.sum()) > 0 else math.nan
            for e, p in profiles.items()
        }
        others = [rc[e] for e in languages if e != lang]
        mean_others = float(np.mean(others)) if others else math.nan
        rs = rc[lang] / mean_others if lang in rc and mean_others > 0 else math.nan
        out[lang] = {"rc": rc, "rs": rs}
    return out
