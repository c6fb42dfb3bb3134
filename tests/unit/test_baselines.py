"""Baseline scorers on synthetic statistics, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from crane.activations import ActivationStats
from crane.errors import ConfigError
from crane.methods import get_method
from crane.scoring import Budget, select_top
from crane.scoring.kojima import average_precision
from crane.scoring.lape import lape_set
from crane.scoring.plnd import plnd_set
from crane.stats import LanguageStats, Stats

P_EN = torch.tensor([[0.9, 0.1, 0.5, 0.2, 0.0], [0.3, 0.8, 0.05, 0.6, 0.4]], dtype=torch.float64)
P_ZH = torch.tensor([[0.1, 0.1, 0.5, 0.9, 0.0], [0.3, 0.05, 0.7, 0.6, 0.35]], dtype=torch.float64)


def lape_stats() -> Stats:
    def lang(p: torch.Tensor, n: int) -> LanguageStats:
        return LanguageStats({"act_pos_count": p * n}, {"n_tokens": n})

    return Stats({"en": lang(P_EN, 100), "zh": lang(P_ZH, 200)})


def test_lape_golden() -> None:
    # 20 probabilities sorted: 0 0 .05 .05 .1 .1 .1 .2 .3 .3 .35 .4 .5 .5 .6 .6 .7 .8 .9 .9
    # filter_rate .5 → 10th smallest = .3: neurons (0,1), (0,4), (1,0) have no p > .3 (filtered).
    # Entropies of the rest (shares): (1,1) .8/.85, (1,2) .7/.75, (0,0) .9/1.0, (0,3) .9/1.1, ...
    # top_rate .3 → 3 kept: (1,1), (1,2), (0,0). activation_bar_ratio .75 → 15th smallest = .6.
    # en: (0,0) .9 and (1,1) .8 exceed .6; zh: (1,2) .7.
    def h(a: float, b: float) -> float:
        return -sum(x / (a + b) * math.log(x / (a + b)) for x in (a, b) if x > 0)

    assert h(0.8, 0.05) < h(0.05, 0.7) < h(0.9, 0.1) < h(0.2, 0.9) < h(0.4, 0.35)
    found = lape_set(lape_stats(), filter_rate=0.5, top_rate=0.3, activation_bar_ratio=0.75)
    assert found.neurons == {"en": {0: [0], 1: [1]}, "zh": {1: [2]}}
    assert found.meta["tau_f"] == pytest.approx(0.3) and found.meta["tau_a"] == pytest.approx(0.6)
    # a neuron can belong to several languages: lower the bar to the 10th value (.3)
    both = lape_set(lape_stats(), filter_rate=0.5, top_rate=0.3, activation_bar_ratio=0.5)
    assert both.neurons == {"en": {0: [0], 1: [1]}, "zh": {1: [2]}}  # partners all ≤ .3
    wide = lape_set(lape_stats(), filter_rate=0.5, top_rate=0.7, activation_bar_ratio=0.5)
    # 7 kept = all unfiltered; (0,2) .5/.5 and (1,3) .6/.6 and (1,4) .4/.35 go to both
    assert wide.neurons["en"] == {0: [0, 2], 1: [1, 3, 4]}
    assert wide.neurons["zh"] == {0: [2, 3], 1: [2, 3, 4]}


def test_lape_scores_view_and_matched_budget() -> None:
    scores = get_method("lape").score(lape_stats(), filter_rate=0.5, activation_bar_ratio=0.75)
    en = scores.values["en"]
    assert torch.isfinite(en).nonzero().tolist() == [[0, 0], [1, 1]]
    assert en[1, 1] == pytest.approx(
        -(lambda a, b: -(a * math.log(a) + b * math.log(b)))(0.8 / 0.85, 0.05 / 0.85)
    )
    picked = select_top(scores, Budget(count=1), site="act")
    assert picked.neurons == {"en": {1: [1]}, "zh": {1: [2]}}
    reference = lape_set(lape_stats(), filter_rate=0.5, top_rate=0.3, activation_bar_ratio=0.75)
    matched = select_top(
        scores, Budget(match={k: reference.size(k) for k in reference.languages}), site="act"
    )
    assert matched.neurons == reference.neurons
    with pytest.raises(ConfigError):
        get_method("lape").score(lape_stats(), top_rate=0)


def test_average_precision_by_hand() -> None:
    y = torch.tensor([1, 0, 1, 0])
    s = torch.tensor([[0.9, 0.5], [0.8, 0.5], [0.7, 0.2], [0.1, 0.1]])
    ap = average_precision(y, s)
    # column 0: hits at ranks 1 and 3 → (1/1 + 2/3) / 2; column 1: a tie at the top →
    # thresholds .5 (tp 1 of 2: P=.5, ΔR=.5) and .2 (tp 2 of 3: P=2/3, ΔR=.5)
    assert ap.tolist() == pytest.approx([(1 + 2 / 3) / 2, 0.5 * 0.5 + 0.5 * 2 / 3])


def text_stats(key: str, per_lang: dict[str, list[list[float]]]) -> ActivationStats:
    texts = {
        lang: {key: torch.tensor(rows, dtype=torch.float32)[:, None, :]}
        for lang, rows in per_lang.items()
    }
    languages = {lang: LanguageStats() for lang in per_lang}
    return ActivationStats(languages, {}, texts)


def test_kojima_scores() -> None:
    stats = text_stats(
        "text_mean",
        {
            "en": [[1.0, 0.0, 0.3], [0.9, 0.2, 0.1]],
            "zh": [[0.1, 0.9, 0.2], [0.0, 1.0, 0.4]],
        },
    )
    top = get_method("kojima").score(stats)
    # en neuron 1 ranks zh, zh, en, en → hits at ranks 3 and 4; neuron 2: zh .4, en .3, zh .2, en .1
    assert top.values["en"][0].tolist() == pytest.approx(
        [1.0, (1 / 3 + 2 / 4) / 2, (1 / 2 + 2 / 4) / 2]
    )
    assert top.values["zh"][0].tolist() == pytest.approx(
        [(1 / 3 + 2 / 4) / 2, 1.0, (1 + 2 / 3) / 2]
    )
    assert select_top(top, Budget(count=1), site="down_in").neurons == {
        "en": {0: [0]},
        "zh": {0: [1]},
    }
    bottom = get_method("kojima").score(stats, direction="bottom")
    assert select_top(bottom, Budget(count=1), site="down_in").neurons == {
        "en": {0: [1]},
        "zh": {0: [0]},
    }
    with pytest.raises(ConfigError):
        get_method("kojima").score(Stats({"en": LanguageStats(), "zh": LanguageStats()}))


def test_plnd_set_and_scores() -> None:
    stats = text_stats(
        "text_plnd",
        {
            "en": [[4, 3, 1, 0], [3, 4, 0, 1]],  # top-2 sets {0,1}, {0,1} → en {0,1}
            "zh": [[4, 0, 3, 1], [4, 1, 3, 0]],  # {0,2}, {0,2} → zh {0,2}
        },
    )
    found = plnd_set(stats, top_number=2)
    assert found.neurons == {"en": {0: [1]}, "zh": {0: [2]}}
    scores = get_method("plnd").score(stats, top_number=2)
    assert torch.isfinite(scores.values["en"]).nonzero().tolist() == [[0, 1]]
    assert scores.values["en"][0, 1] == pytest.approx(1.0, abs=1e-3)
    soft = get_method("plnd").score(stats, top_number=2, strict=False)
    # en frac: [1, 1, 0, 0], zh frac: [1, 0, 1, 0] → en: 0, 1, -inf, -inf (+ tie-breaks)
    assert soft.values["en"][0, 0] == pytest.approx(0.0, abs=1e-3)
    assert not torch.isfinite(soft.values["en"][0, 2:]).any()


def test_actmean_scores() -> None:
    def lang(m: list[float], n: int) -> LanguageStats:
        return LanguageStats(
            {"site_abs_sum": torch.tensor([m], dtype=torch.float64) * n}, {"n_tokens": n}
        )

    stats = Stats({"en": lang([3, 1, 2], 10), "zh": lang([1, 2, 2], 20), "vi": lang([2, 0, 5], 5)})
    s = get_method("actmean").score(stats)
    assert s.values["en"][0].tolist() == pytest.approx([1, -1, -3])
    mean = get_method("actmean").score(stats, contrast="mean")
    assert mean.values["vi"][0].tolist() == pytest.approx([0, -1.5, 3])
    rel = get_method("actmean").score(stats, relative=True)
    assert rel.values["en"][0, 0] == pytest.approx(1 / 5)


def test_random_control_is_layer_matched_and_seeded() -> None:
    reference = lape_set(lape_stats(), filter_rate=0.5, top_rate=0.7, activation_bar_ratio=0.5)
    control = reference.random_like(seed=1)
    assert control.neurons == reference.random_like(seed=1).neurons
    for lang in reference.languages:
        assert control.layer_counts(lang) == reference.layer_counts(lang)
    with pytest.raises(ConfigError, match="control"):
        get_method("random").score(lape_stats())
