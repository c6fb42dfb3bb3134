"""Selection v2 (docs/method.md): the chunked log-probability target, the accumulators D, U, W in
bits per byte, and the ``contrast`` and ``effect`` scores, against hand computations."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import crane.collect as collect
from crane.collect import RelevanceOptions, collect_relevance
from crane.data.corpus import Corpus
from crane.errors import ConfigError
from crane.evaluation.bpb import bits_per_byte
from crane.intervene import mask_neurons
from crane.methods import get_method
from crane.models.loading import load_model
from crane.scoring.crane_score import per_byte, standard_error
from crane.stats import LanguageStats, Stats

TEXTS = {
    "en": [
        "All human beings are born free and equal in dignity and rights.",
        "Everyone has the right to life, liberty and security of person.",
        "No one shall be held in slavery or servitude.",
    ],
    "vi": [
        "Tất cả mọi người sinh ra đều được tự do và bình đẳng.",
        "Không ai bị bắt làm nô lệ.",
    ],
}
LOGPROB = RelevanceOptions(method="gradxact", target="logprob", batch_size=2)


def hand_contributions(model, tokenizer, text: str) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[no-untyped-def]
    """Oracle: one unbatched forward/backward of Σ log-softmax at the gold tokens through the
    model's own full logits; e = a·grad at each down_proj input. Returns (Σ_t e, Σ_t |e|)."""
    ids = torch.tensor(
        [[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]]
    )
    acts: dict[int, torch.Tensor] = {}
    handles = []
    for i, layer in enumerate(model.model.layers):

        def keep(_m, args, i=i):  # type: ignore[no-untyped-def]
            args[0].retain_grad()
            acts[i] = args[0]

        handles.append(layer.mlp.down_proj.register_forward_pre_hook(keep))
    try:
        with torch.enable_grad():
            embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
            logits = model(inputs_embeds=embeds).logits[0, :-1].double()
            logp = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None]).sum()
            logp.backward()
    finally:
        for h in handles:
            h.remove()
    e = torch.stack([(acts[i] * acts[i].grad)[0].double() for i in sorted(acts)])  # [L, T, F]
    return e.sum(1), e.abs().sum(1)


def test_logprob_accumulators_match_a_hand_computation(
    tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_model(tiny_llama_dir)
    monkeypatch.setattr(collect, "LOGPROB_CHUNK", 5)  # several chunks per batch
    stats = collect_relevance(loaded.model, loaded.tokenizer, Corpus(TEXTS), options=LOGPROB)
    for lang, texts in TEXTS.items():
        parts = [hand_contributions(loaded.model, loaded.tokenizer, t) for t in texts]
        n_bytes = sum(len(t.encode("utf-8")) for t in texts)
        assert stats[lang].counts["n_bytes"] == n_bytes
        d = sum(p[0] for p in parts) / (math.log(2) * n_bytes)
        u = sum(p[1] for p in parts) / (math.log(2) * n_bytes)
        w = sum(p[0] ** 2 for p in parts)
        i = stats.language_codes.index(lang)
        torch.testing.assert_close(per_byte(stats, "rel_sum")[i], d, rtol=1e-4, atol=1e-9)
        torch.testing.assert_close(per_byte(stats, "exp_sum")[i], u, rtol=1e-4, atol=1e-9)
        torch.testing.assert_close(stats[lang].tensors["rel_sq_sum"], w, rtol=1e-4, atol=1e-12)
        assert bool((per_byte(stats, "exp_sum")[i] >= per_byte(stats, "rel_sum")[i].abs()).all())


def test_expected_damage_predicts_a_small_scaling_to_first_order(tiny_llama_dir: Path) -> None:
    """D_L(n) is the first-order change in bits per byte when n is scaled by (1 − ε), per ε."""
    loaded = load_model(tiny_llama_dir)
    loaded.model.double()
    texts = TEXTS["en"]
    stats = collect_relevance(
        loaded.model, loaded.tokenizer, Corpus({"en": texts, "vi": TEXTS["vi"]}), options=LOGPROB
    )
    d = per_byte(stats, "rel_sum")[stats.language_codes.index("en")]
    base = bits_per_byte(loaded.model, loaded.tokenizer, texts).value
    eps = 1e-2  # small enough for first order, large enough for the float32 head
    strongest = torch.topk(d.abs().flatten(), 4).indices.tolist()
    d_ff = d.shape[1]
    for flat in strongest:
        layer, j = divmod(flat, d_ff)
        with mask_neurons(
            loaded.model, {layer: [j]}, mode="scale", alpha=1 - eps, adapter=loaded.adapter
        ):
            scaled = bits_per_byte(loaded.model, loaded.tokenizer, texts).value
        assert (scaled - base) / eps == pytest.approx(float(d[layer, j]), rel=0.03)


def _v2_stats() -> Stats:
    """Two languages, three neurons, sums chosen by hand (nats), 100 bytes each."""

    def lang(rel: list[float], exp: list[float], sq: list[float], n: int) -> LanguageStats:
        t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
        return LanguageStats(
            {"rel_sum": t(rel), "exp_sum": t(exp), "rel_sq_sum": t(sq)},
            {"n_bytes": 100, "n_sequences": n},
        )

    return Stats(
        {
            "en": lang([4.0, 0.5, -1.0], [10.0, 2.0, 6.0], [4.0, 1.0, 1.0], 4),
            "zh": lang([1.0, 0.1, 3.0], [3.0, 1.0, 8.0], [1.0, 1.0, 9.0], 4),
        }
    )


def test_contrast_and_effect_scores_by_hand() -> None:
    stats = _v2_stats()
    unit = math.log(2) * 100
    contrast = get_method("crane").score(stats, score="contrast", lam=1.0)
    expected = torch.tensor([[10 - 3, 2 - 1, 6 - 8]], dtype=torch.float64) / unit
    torch.testing.assert_close(contrast.values["en"], expected)
    half = get_method("crane").score(stats, score="contrast", lam=0.5)
    torch.testing.assert_close(
        half.values["zh"], torch.tensor([[3 - 5, 1 - 1, 8 - 3]], dtype=torch.float64) / unit
    )
    # effect: D_en − max U_others, eligible when D > z·SE; SE of the sum over n=4 sequences
    se = standard_error(stats)[0]
    var = torch.tensor([4 / 4 - 1.0, 1 / 4 - (0.5 / 4) ** 2, 1 / 4 - (1 / 4) ** 2])
    torch.testing.assert_close(se[0], (var * 4).sqrt().double() / unit)
    effect = get_method("crane").score(stats, score="effect", lam=1.0, z=2.0).values["en"][0]
    assert effect[0] == pytest.approx((4 - 3) / unit)  # 4 > 2·0
    assert effect[1] == float("-inf")  # 0.5 < 2·sqrt(4·0.234)
    assert effect[2] == float("-inf")  # negative damage is never eligible


def test_fisher_score_by_hand() -> None:
    """Q = ½ Σ_x (Σ_t e)² per byte (bits/byte), minus the largest other language's Q."""
    stats = _v2_stats()
    unit = math.log(2) * 100
    fisher = get_method("crane").score(stats, score="fisher", lam=1.0)
    torch.testing.assert_close(
        fisher.values["en"], torch.tensor([[4 - 1, 1 - 1, 1 - 9]], dtype=torch.float64) / (2 * unit)
    )
    torch.testing.assert_close(
        fisher.values["zh"], torch.tensor([[1 - 4, 1 - 1, 9 - 1]], dtype=torch.float64) / (2 * unit)
    )
    assert fisher.options["score"] == "fisher"


def test_v2_scores_need_v2_statistics() -> None:
    old = Stats(
        {
            lang: LanguageStats(
                {"rel_sum": torch.ones(1, 2, dtype=torch.float64)}, {"n_sequences": 1}
            )
            for lang in ("en", "zh")
        }
    )
    with pytest.raises(ConfigError, match="collect them again"):
        get_method("crane").score(old, score="contrast")
    with pytest.raises(ConfigError, match="contrast"):
        get_method("crane").score(_v2_stats(), score="contrast", contrast_over="median")


def test_causal_construction_gives_exactly_k_with_a_measured_report(tiny_llama_dir: Path) -> None:
    from crane.identification import IdentifyOptions, identify_methods

    loaded = load_model(tiny_llama_dir)
    texts = {lang: items * 3 for lang, items in TEXTS.items()}  # enough to hold out validation
    options = IdentifyOptions(
        relevance=RelevanceOptions(method="gradxact", target="logprob", batch_size=4),
        score="effect", z=50.0,  # few eligible neurons: the rest must come from exposure
        verify_mode="rounds", rounds=2,
    )
    found = identify_methods(loaded, Corpus(texts), ["gradxact"], budget="7", options=options)
    neurons, reports = found.sets["gradxact"], found.reports["gradxact"]
    for lang in TEXTS:
        report = reports[lang]
        assert neurons.size(lang) == 7 == report.budget  # exactly k, whatever was eligible
        assert report.rounds == 2 and sum(report.per_round) + report.filled_from_exposure == 7
        assert report.relevance_passes == 1  # round two re-collected with round one masked
        assert set(report.measured_delta) == set(TEXTS) and report.measured_delta[lang] != 0
        assert math.isfinite(report.measured_sel) and set(report.predicted_delta) == set(TEXTS)
    assert any(r.filled_from_exposure > 0 for r in reports.values())  # the fill path ran
    assert neurons.meta["verified"] and neurons.meta["texts"]["validation"] is not None
    assert "reconstruction of CRANE" in neurons.meta["reconstruction"]


@pytest.mark.parametrize("mode", ["groups", "rounds"])
def test_an_activation_method_is_verified_like_crane_when_asked(
    tiny_llama_dir: Path, mode: str
) -> None:
    from crane.identification import IdentifyOptions, identify_methods

    loaded = load_model(tiny_llama_dir)
    texts = {lang: items * 3 for lang, items in TEXTS.items()}
    options = IdentifyOptions(verify_mode=mode, rounds=2, verification=_few_tests())
    found = identify_methods(
        loaded, Corpus(texts), ["actmean", "kojima"], budget="5", options=options,
        verify_methods=["actmean"],
    )
    assert set(found.reports) == {"actmean"}  # kojima is not named: unverified
    assert found.sets["actmean"].meta["verified"] and not found.sets["kojima"].meta["verified"]
    for lang in TEXTS:
        report = found.reports["actmean"][lang]
        assert report.budget == 5
        if mode == "rounds":
            assert found.sets["actmean"].size(lang) == 5 and report.relevance_passes == 1
            assert report.measured_delta and not report.predicted_delta  # no relevance here
        else:
            assert report.tests >= 1
    # both fitted on the same texts: the validation split is held out for both
    assert found.sets["actmean"].meta["texts"] == found.sets["kojima"].meta["texts"]


def _few_tests():  # type: ignore[no-untyped-def]
    from crane.verify import VerifyOptions

    return VerifyOptions(max_tests=3)


def test_integrated_gradient_shares_sum_to_the_sets_change(tiny_llama_dir: Path) -> None:
    from crane.construction import integrated_gradient_shares
    from crane.masked_loss import LanguageTexts

    loaded = load_model(tiny_llama_dir)
    texts = {lang: LanguageTexts(loaded, items, LOGPROB) for lang, items in TEXTS.items()}
    d_ff = loaded.shape.d_ff
    chosen = [3, 17, 40, d_ff + 5, 2 * d_ff - 1]  # two layers
    coarse, delta = integrated_gradient_shares(loaded, chosen, texts, "down_in", 2)
    fine, again = integrated_gradient_shares(loaded, chosen, texts, "down_in", 32)
    assert delta == again
    for lang in TEXTS:
        assert fine[lang].shape == (len(chosen),)
        gap_fine = abs(float(fine[lang].sum()) - delta[lang])
        gap_coarse = abs(float(coarse[lang].sum()) - delta[lang])
        assert gap_fine <= 1e-3 * max(1.0, abs(delta[lang]))  # completeness
        assert gap_coarse <= 1e-2 * max(1.0, abs(delta[lang]))
        assert len(set(fine[lang].tolist())) == len(chosen)  # one share per member
        assert delta[lang] != 0


def test_construction_swaps_keep_exactly_k_and_never_lower_validated_sel(
    tiny_llama_dir: Path,
) -> None:
    from crane.identification import IdentifyOptions, identify_methods

    loaded = load_model(tiny_llama_dir)
    texts = {lang: items * 3 for lang, items in TEXTS.items()}
    options = IdentifyOptions(
        relevance=RelevanceOptions(method="gradxact", target="logprob", batch_size=4),
        score="contrast", verify_mode="rounds", rounds=2, ig_steps=4,
    )
    found = identify_methods(loaded, Corpus(texts), ["gradxact"], budget="9", options=options)
    for lang in TEXTS:
        report = found.reports["gradxact"][lang]
        assert found.sets["gradxact"].size(lang) == 9
        assert report.ig_steps == 4 and report.backward_passes == 4 * len(TEXTS)
        assert set(report.share_sum) == set(TEXTS) and math.isfinite(report.share_gap)
        assert report.swaps_kept in (0, report.swaps_tried)
        assert report.swaps_tried in (0, report.nonpositive_shares)
        assert report.measured_sel >= report.sel_before_swaps  # a swap never lowers it
    assert any(r.swaps_tried for r in found.reports["gradxact"].values())  # the path ran
