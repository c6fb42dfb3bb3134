"""Masking-matrix metrics (Sel, DD, damage) with paired bootstrap intervals; relevance capture."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from crane.evaluation.metrics import (
    Units,
    accuracy_units,
    bpb_units,
    matrix_metrics,
    relevance_capture,
)
from crane.neurons import NeuronSet
from crane.stats import LanguageStats, Stats

LANGS = ["en", "zh", "vi"]


def _cells(shift: dict[tuple[str, str], float], n: int = 12) -> dict[tuple[str, str], Units]:
    """Bits-per-byte cells where condition c on language e adds ``shift`` bits per byte to
    every text (so the change is exactly ``shift`` in every bootstrap replicate)."""
    rng = np.random.default_rng(1)
    base = {
        lang: (rng.uniform(50, 100, n), rng.integers(20, 60, n).astype(float)) for lang in LANGS
    }
    cells = {}
    for (condition, lang), s in shift.items():
        bits, n_bytes = base[lang]
        cells[(condition, lang)] = Units(bits + s * n_bytes, n_bytes)
    return cells


def test_paired_changes_and_metrics_by_hand() -> None:
    effect = {("none", e): 0.0 for e in LANGS}
    own = {"en": 0.6, "zh": 1.2, "vi": 0.9}
    for masked in LANGS:
        for e in LANGS:
            effect[(f"m:{masked}", e)] = (
                own[masked] if e == masked else 0.1 * own[masked] + (0.02 if e == "vi" else 0)
            )
    rows = {"m": {lang: f"m:{lang}" for lang in LANGS}}
    out = matrix_metrics(_cells(effect), rows, LANGS, n_boot=200, seed=3)
    for masked in LANGS:
        others = [effect[(f"m:{masked}", e)] for e in LANGS if e != masked]
        m = out["metrics"]["m"][masked]
        assert m["damage"] == pytest.approx(own[masked])
        assert m["sel"] == pytest.approx(own[masked] - np.mean(others))
        assert m["dd"] == pytest.approx(own[masked] / np.mean(others))
        # paired resampling: a constant per-byte shift gives a zero-width interval
        assert m["damage_ci"] == pytest.approx([own[masked]] * 2)
        assert m["dd_ci"] == pytest.approx([m["dd"]] * 2)
        for e in LANGS:
            assert out["delta"]["m"][masked][e] == pytest.approx(effect[(f"m:{masked}", e)])
            assert out["delta_ci"]["m"][masked][e] == pytest.approx(
                [effect[(f"m:{masked}", e)]] * 2
            )


def test_noisy_changes_get_intervals_around_the_estimate() -> None:
    rng = np.random.default_rng(0)
    n = 40
    cells = {}
    for e in LANGS:
        bits, n_bytes = rng.uniform(50, 100, n), np.full(n, 50.0)
        cells[("none", e)] = Units(bits, n_bytes)
        noise = rng.normal(0, 10, n)
        cells[("m:en", e)] = Units(bits + (25 if e == "en" else 5) + noise, n_bytes)
    rows = {"m": {"en": "m:en"}}
    a = matrix_metrics(cells, rows, LANGS, n_boot=300, seed=0)
    b = matrix_metrics(cells, rows, LANGS, n_boot=300, seed=0)
    assert a == b  # deterministic for a seed
    m = a["metrics"]["m"]["en"]
    assert m["damage_ci"][0] < m["damage"] < m["damage_ci"][1]
    assert m["damage_ci"][1] - m["damage_ci"][0] > 0.01
    assert (
        matrix_metrics(cells, rows, LANGS, n_boot=300, seed=1)["metrics"]["m"]["en"]["damage_ci"]
        != m["damage_ci"]
    )


def test_the_unmasked_value_has_a_binomial_sized_interval() -> None:
    """``none_ci``: the unmasked accuracy's bootstrap interval, about ±1.96·sqrt(p(1−p)/n)
    (200 items at p = 0.6: ±0.068); exactly the value when every resample agrees."""
    rng = np.random.default_rng(5)
    correct = rng.random(200) < 0.6
    cells = {("none", e): accuracy_units(correct) for e in ("en", "zh")}
    cells[("s:en", "en")] = cells[("s:en", "zh")] = accuracy_units(correct)
    out = matrix_metrics(cells, {"s": {"en": "s:en"}}, ["en", "zh"], higher_is_better=True,
                         n_boot=2000, seed=0)
    p = correct.mean()
    low, high = out["none_ci"]["en"]
    assert low < p < high
    half = 1.96 * math.sqrt(p * (1 - p) / 200)
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    same = {("none", e): accuracy_units(np.ones(30, dtype=bool)) for e in ("en", "zh")}
    same[("s:en", "en")] = same[("s:en", "zh")] = same[("none", "en")]
    assert matrix_metrics(same, {"s": {"en": "s:en"}}, ["en", "zh"], n_boot=50)["none_ci"][
        "zh"
    ] == [1.0, 1.0]


def test_accuracy_damage_is_a_fall() -> None:
    none = np.array([1, 1, 1, 0, 1, 1, 0, 1], dtype=bool)
    masked = np.array([0, 1, 0, 0, 1, 0, 0, 1], dtype=bool)
    cells = {("none", e): accuracy_units(none) for e in ("en", "zh")}
    cells[("s:en", "en")] = accuracy_units(masked)
    cells[("s:en", "zh")] = accuracy_units(none)
    out = matrix_metrics(
        cells, {"s": {"en": "s:en"}}, ["en", "zh"], higher_is_better=True, n_boot=0
    )
    assert out["delta"]["s"]["en"]["en"] == pytest.approx(3 / 8 - 6 / 8)
    assert out["metrics"]["s"]["en"]["damage"] == pytest.approx(3 / 8)
    assert math.isnan(out["metrics"]["s"]["en"]["dd"])  # no damage elsewhere: DD undefined
    assert out["none"] == {"en": 0.75, "zh": 0.75}


def test_units_must_be_paired() -> None:
    cells = {
        ("none", "en"): bpb_units(np.ones(3), np.ones(3)),
        ("x", "en"): bpb_units(np.ones(2), np.ones(2)),
    }
    with pytest.raises(ValueError, match="other units"):
        matrix_metrics(cells, {"m": {"en": "x"}}, ["en"], n_boot=10)


def test_relevance_capture_by_hand() -> None:
    n_layers, d_ff = 2, 4
    prof = {
        "en": torch.tensor([[4.0, 0, 0, 0], [0, 0, 0, 4.0]]),
        "zh": torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 1]]),
    }
    stats = Stats(
        {
            lang: LanguageStats({"prof_pos_sum": p.double() * 2}, {"n_sequences": 2})
            for lang, p in prof.items()
        }
    )
    neurons = NeuronSet({"en": {0: [0]}, "zh": {1: [1, 2]}}, "down_in", n_layers, d_ff)
    rc = relevance_capture(stats, neurons)
    assert rc["en"]["rc"] == {"en": pytest.approx(0.5), "zh": pytest.approx(1 / 8)}
    assert rc["en"]["rs"] == pytest.approx(4.0)
    assert rc["zh"]["rc"] == {"en": pytest.approx(0.0), "zh": pytest.approx(2 / 8)}
    assert math.isnan(rc["zh"]["rs"])  # RC_zh(en) = 0: the ratio is undefined


def test_paired_difference_uses_the_same_resamples() -> None:
    import numpy as np

    from crane.evaluation.metrics import Units, matrix_metrics, paired_difference

    rng = np.random.default_rng(1)
    den = np.full(40, 10.0)
    base = {lang: rng.uniform(5, 15, 40) for lang in ("en", "zh")}
    cells = {("none", lang): Units(base[lang], den) for lang in base}
    for method, own_shift in (("a", 3.0), ("b", 1.0)):
        for masked in base:
            for lang in base:
                shift = own_shift if lang == masked else 0.1
                noise = rng.normal(0, 0.5, 40)
                cells[(f"{method}:{masked}", lang)] = Units(base[lang] + shift + noise, den)
    rows = {m: {lang: f"{m}:{lang}" for lang in base} for m in ("a", "b")}
    out = matrix_metrics(cells, rows, ["en", "zh"], n_boot=400, keep_replicates=True)
    reps = out["replicates"]
    paired = paired_difference(reps["a"]["en"], reps["b"]["en"])
    expected = out["metrics"]["a"]["en"]["sel"] - out["metrics"]["b"]["en"]["sel"]
    assert paired["diff"] == pytest.approx(expected)
    low, high = paired["ci"]
    assert 0 < low < paired["diff"] < high  # a clearly more selective, and the CI says so
    # pairing: narrower than the unpaired spread of the two Sel intervals combined
    a_ci, b_ci = out["metrics"]["a"]["en"]["sel_ci"], out["metrics"]["b"]["en"]["sel_ci"]
    assert high - low < (a_ci[1] - a_ci[0]) + (b_ci[1] - b_ci[0])


def test_own_damage_at_a_fixed_off_target_damage_is_read_along_the_sweep() -> None:
    from crane.evaluation.metrics import own_at_off_target

    off, own = [0.02, 0.1, 0.4], [0.5, 1.5, 2.0]
    assert own_at_off_target(off, own, 0.01) == pytest.approx(0.25)  # from the empty set (0, 0)
    assert own_at_off_target(off, own, 0.05) == pytest.approx(0.5 + 1.0 * 0.03 / 0.08)
    assert own_at_off_target(off, own, 0.2) == pytest.approx(1.5 + 0.5 / 3)
    assert own_at_off_target(off, own, 0.5) is None  # never reached: no extrapolation
    assert own_at_off_target([0.1, float("nan")], [1.0, 2.0], 0.2) is None


def test_comparisons_pair_methods_and_judge_sets_against_the_random_control() -> None:
    from crane.study.assemble import comparisons

    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.05, 201)
    replicates = {
        "crane": {"en": 0.02 + noise, "zh": 1.0 + noise},
        "random": {"en": 0.0 + rng.normal(0, 0.05, 201), "zh": 0.0 + noise},
        "optimise": {"en": 0.5 + noise, "zh": 2.0 + noise},
    }
    out = comparisons(replicates, ["en", "zh"])
    zh = out["paired"]["crane"]["random"]["zh"]
    assert zh["diff"] == pytest.approx(1.0) and zh["ci"][0] == pytest.approx(1.0)  # same noise
    assert out["verdict"]["crane"] == {"en": "no selective set at k", "zh": "selective"}
    assert "random" not in out["verdict"]
    assert out["efficiency"]["crane"]["zh"]["value"] == pytest.approx(
        (1.0 + noise[0]) / (2.0 + noise[0])
    )
    assert out["efficiency"]["optimise"]["en"]["value"] == pytest.approx(1.0)


def test_the_verdict_compares_with_the_mean_of_the_random_seeds() -> None:
    from crane.study.assemble import comparisons

    flat = np.zeros(101)
    replicates = {
        "crane": {"zh": flat + 0.3},
        "random": {"zh": flat + 0.0},
        "random-1": {"zh": flat + 0.5},  # one lucky seed: the mean is 0.25 < 0.3
        "random-2": {"zh": flat + 0.25},
    }
    out = comparisons(replicates, ["zh"])
    assert set(out["verdict"]) == {"crane"} and out["verdict"]["crane"]["zh"] == "selective"
    replicates["random-2"] = {"zh": flat + 0.6}  # now the mean is 0.367 > 0.3
    assert comparisons(replicates, ["zh"])["verdict"]["crane"]["zh"] == "no selective set at k"
