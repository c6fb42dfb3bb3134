"""Group testing: with a synthetic masking oracle, bad candidates are found, dropped and refilled."""

from __future__ import annotations

import pytest
import torch

from crane.data.corpus import Corpus
from crane.scoring import Budget, Scores
from crane.verify import VerifyOptions, _Evaluator, verify_candidates

BAD = {3, 4, 17, 30}  # candidates whose masking hurts the other language more


def fake_delta(self, flat, language, first=False):  # type: ignore[no-untyped-def]
    good = [i for i in flat if i not in BAD]
    bad = [i for i in flat if i in BAD]
    mine = language
    other = "zh" if mine == "en" else "en"
    own = 1.0 * len(good) - 20.0 * len(bad)  # one bad neuron sinks any group it is in
    out = {mine: own}
    if not first or own > 0:
        out[other] = 0.1 * len(good) + 2.0 * len(bad)
    return out


def test_group_testing_drops_bad_neurons(monkeypatch, tiny_llama_dir) -> None:  # type: ignore[no-untyped-def]
    from crane.models.loading import load_model

    loaded = load_model(tiny_llama_dir)
    monkeypatch.setattr(_Evaluator, "delta", fake_delta)
    ranking = torch.zeros(2, 96, dtype=torch.float64)
    ranking.view(-1)[:60] = torch.arange(60, 0, -1, dtype=torch.float64)  # candidates 0..59 in order
    ranking.view(-1)[60:] = float("-inf")
    scores = Scores({"en": ranking, "zh": ranking.clone()}, "crane")
    corpus = Corpus({"en": ["All human beings are born free."], "zh": ["人人生而自由。"]})
    options = VerifyOptions(groups=4, min_group=1, max_tests=200)
    neurons, reports = verify_candidates(
        loaded.model, loaded.tokenizer, scores,
        Budget(count=32), corpus, options=options,
    )
    kept = {layer * 96 + j for layer, ix in neurons.layers("en").items() for j in ix}
    assert not kept & BAD
    assert len(kept) == 32 and kept == set(range(36)) - BAD
    report = reports["en"]
    assert report.dropped == 4 and report.refilled == 4 and report.untested == 0
    assert report.tests < 36  # fewer tests than neurons tested one by one
    assert report.forward_passes < report.one_by_one_forward_passes


def test_test_budget_keeps_untested_candidates_flagged(monkeypatch, tiny_llama_dir) -> None:  # type: ignore[no-untyped-def]
    from crane.models.loading import load_model

    loaded = load_model(tiny_llama_dir)
    monkeypatch.setattr(_Evaluator, "delta", fake_delta)
    ranking = torch.arange(192, 0, -1, dtype=torch.float64).view(2, 96)
    scores = Scores({"en": ranking, "zh": ranking.clone()}, "crane")
    corpus = Corpus({"en": ["All human beings are born free."], "zh": ["人人生而自由。"]})
    neurons, reports = verify_candidates(
        loaded.model, loaded.tokenizer, scores, Budget(count=32), corpus,
        options=VerifyOptions(groups=4, min_group=1, max_tests=3),
    )
    assert reports["en"].tests == 3 and reports["en"].untested > 0
    assert neurons.meta["verification"]["languages"]["en"]["untested"] == reports["en"].untested


def test_verification_masks_at_the_sets_site(tiny_llama_dir) -> None:  # type: ignore[no-untyped-def]
    """A group is masked at the site of the set being verified (not always down_in)."""
    from crane.data.corpus import Corpus
    from crane.evaluation.bpb import bits_per_byte
    from crane.intervene import mask_neurons
    from crane.models.loading import load_model

    loaded = load_model(tiny_llama_dir)
    texts = {"en": ["All human beings are born free."], "zh": ["人人生而自由。"]}
    shape = (loaded.shape.n_layers, loaded.shape.d_ff)
    flat = list(range(0, loaded.shape.d_ff, 3))  # layer 0, every third neuron
    for site in ("act", "down_in"):
        ev = _Evaluator(
            loaded.model, loaded.tokenizer, Corpus(texts), VerifyOptions(), loaded.adapter,
            site, shape,
        )
        got = ev.delta(flat, "en")
        with mask_neurons(loaded.model, {0: flat}, site=site, adapter=loaded.adapter):
            masked = bits_per_byte(loaded.model, loaded.tokenizer, texts["en"]).value
        plain = bits_per_byte(loaded.model, loaded.tokenizer, texts["en"]).value
        assert got["en"] == pytest.approx(masked - plain, abs=1e-9)
        assert got["en"] != 0.0
