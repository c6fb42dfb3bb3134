"""CRANE scores and budgets on synthetic statistics, checked against hand computations."""

from __future__ import annotations

import pytest
import torch

from crane.errors import ConfigError
from crane.methods import get_method
from crane.scoring import Budget, parse_budget, select_top
from crane.stats import LanguageStats, Stats


def make_stats(profiles: dict[str, torch.Tensor]) -> Stats:
    """Stats whose signed profile (prof_sum / n_sequences) is ``profiles[lang]`` exactly."""
    langs = {}
    for lang, p in profiles.items():
        ls = LanguageStats()
        ls.add("prof_sum", p * 4)
        ls.add("prof_pos_sum", p.clamp_min(0) * 4)
        ls.count("n_sequences", 4)
        langs[lang] = ls
    return Stats(langs)


def test_margin_matches_hand_computation() -> None:
    torch.manual_seed(0)
    p = {lang: torch.rand(3, 40, dtype=torch.float64) for lang in ("en", "zh", "vi")}
    p["en"][1, 7] = 5.0  # strongly English
    p["zh"][2, 3] = 5.0
    p["zh"][0, 0] = 5.0
    p["en"][0, 0] = 5.0  # shared by en and zh: margin ~ 0 for both
    scores = get_method("crane").score(make_stats(p), quantile=0.9)
    # hand computation for en
    z = {k: (v.flatten() - v.flatten().mean()) / v.flatten().std() for k, v in p.items()}
    s_en = z["en"] - torch.maximum(z["zh"], z["vi"])
    eligible = z["en"] >= torch.quantile(z["en"], 0.9)
    ranked = scores.ranking("en")
    expected = sorted(
        (int(i) for i in torch.nonzero(eligible).flatten()), key=lambda i: (-float(s_en[i]), i)
    )
    assert ranked.tolist() == expected
    assert ranked[0] == 1 * 40 + 7
    assert 0 not in ranked[:3].tolist()
    chosen = select_top(scores, Budget(count=2), site="down_in")
    assert chosen.size("en") == chosen.size("zh") == 2
    assert 7 in chosen.layers("en")[1] and 3 in chosen.layers("zh")[2]
    flat = [layer * 40 + j for layer, ix in chosen.layers("en").items() for j in ix]
    assert sorted(flat) == sorted(expected[:2])
    assert chosen.meta["method"] == "crane" and chosen.meta["options"]["quantile"] == 0.9


def test_entropy_prefers_exclusive_neurons() -> None:
    base = torch.full((2, 10), 1.0, dtype=torch.float64)
    p = {"en": base.clone(), "zh": base.clone(), "vi": base.clone()}
    p["en"][0, 1] = 3.0  # en-only-ish
    p["zh"][0, 1] = 0.0
    p["vi"][0, 1] = 0.0
    p["en"][1, 2] = 3.0  # en-leaning but shared
    scores = get_method("crane").score(make_stats(p), score="entropy", quantile=0.5)
    assert scores.ranking("en")[:2].tolist() == [1, 12]
    assert 1 not in scores.ranking("zh").tolist()


def test_selection_is_deterministic_with_ties() -> None:
    p = {"en": torch.ones(2, 8, dtype=torch.float64), "zh": torch.zeros(2, 8, dtype=torch.float64)}
    p["en"][1, 5] = 2.0
    a = select_top(get_method("crane").score(make_stats(p), quantile=0.0), Budget(count=3), site="down_in")
    b = select_top(get_method("crane").score(make_stats(p), quantile=0.0), Budget(count=3), site="down_in")
    assert a.neurons == b.neurons
    assert a.layers("en") == {0: [0, 1], 1: [5]}  # the top one, then ties by ascending index


def test_budgets() -> None:
    assert parse_budget(None).for_language("en", 36864) == 184
    assert parse_budget("0.5%").for_language("en", 36864) == 184
    assert parse_budget("0.005").for_language("en", 36864) == 184
    assert parse_budget("41").for_language("en", 36864) == 41
    for bad in ("0", "-3", "abc", "150%"):
        with pytest.raises(ConfigError):
            parse_budget(bad)
    with pytest.raises(ConfigError, match="only 100"):
        parse_budget("500").for_language("en", 100)
    matched = Budget(match={"en": 41, "zh": 135}, source="lape.json")
    assert matched.for_language("zh", 1000) == 135
    with pytest.raises(ConfigError, match="no language 'vi'"):
        matched.for_language("vi", 1000)


def test_match_budget_from_file(tmp_path) -> None:
    from crane.neurons import NeuronSet

    NeuronSet({"en": {0: [1, 2]}, "zh": {1: [3]}}).save(tmp_path / "s.json")
    budget = parse_budget(f"match:{tmp_path / 's.json'}")
    assert budget.for_language("en", 100) == 2 and budget.for_language("zh", 100) == 1


def test_scoring_needs_two_languages() -> None:
    with pytest.raises(ConfigError, match="at least two languages"):
        get_method("crane").score(make_stats({"en": torch.rand(2, 4, dtype=torch.float64)}))


def test_layer_normalisation_compares_within_layers() -> None:
    """A late layer with 100× larger relevance dominates global z-scores but not per-layer ones."""
    torch.manual_seed(1)
    p = {lang: torch.rand(2, 50, dtype=torch.float64) for lang in ("en", "zh")}
    for lang in p:
        p[lang][1] *= 100
    p["en"][0, 9] = 3.0  # exclusive to en, but in the quiet layer
    p["zh"][0, 9] = 0.0
    global_rank = get_method("crane").score(make_stats(p), quantile=0.5).ranking("en")
    layer_rank = get_method("crane").score(make_stats(p), quantile=0.5, normalize="layer").ranking("en")
    assert global_rank[0] != 9 and global_rank.tolist().index(9) > 10  # drowned by layer 1
    assert layer_rank[0] == 9
    with pytest.raises(ConfigError, match="normalisation"):
        get_method("crane").score(make_stats(p), normalize="bogus")
