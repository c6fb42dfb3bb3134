"""The reference optimum (``optimise``): a hard top-k mask with a straight-through gradient,
exactly k neurons, the loss in the evaluation's unit, wired into the registry."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from crane.collect import RelevanceOptions
from crane.data.corpus import Corpus
from crane.errors import ConfigError
from crane.methods import get_method, parse_methods
from crane.models.loading import load_model
from crane.optimise import OptimiseOptions, _hard_mask, optimise_sets
from crane.scoring.base import Scores
from crane.scoring.budget import Budget

TEXTS = {
    "en": [
        "All human beings are born free and equal in dignity and rights.",
        "Everyone has the right to life, liberty and security of person.",
        "No one shall be held in slavery or servitude.",
    ],
    "vi": [
        "Tất cả mọi người sinh ra đều được tự do và bình đẳng.",
        "Không ai bị bắt làm nô lệ.",
        "Mọi người đều có quyền sống, tự do và an toàn cá nhân.",
    ],
}


def test_hard_mask_is_exactly_top_k_forward_and_a_sigmoid_backward() -> None:
    theta = torch.tensor([0.3, -1.0, 2.0, 0.1, 1.5], requires_grad=True)
    tau = 0.5
    mask = _hard_mask(theta, 2, tau)
    assert mask.tolist() == [0.0, 0.0, 1.0, 0.0, 1.0]  # the hard top-2 in the forward pass
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    (mask * weights).sum().backward()
    threshold = (1.5 + 0.3) / 2  # halfway between the 2nd and the 3rd largest
    s = torch.sigmoid((theta.detach() - threshold) / tau)
    assert torch.allclose(theta.grad, weights * s * (1 - s) / tau)


def test_options_are_checked() -> None:
    for bad in (
        OptimiseOptions(steps=-1), OptimiseOptions(lr=0.0), OptimiseOptions(texts_per_step=0),
        OptimiseOptions(temperature=(1.0, 0.0)), OptimiseOptions(lam=float("nan")),
    ):
        with pytest.raises(ConfigError, match="optimise"):
            bad.validate()
    options = OptimiseOptions(steps=3, temperature=(1.0, 0.01))
    assert [round(options.temperature_at(s), 6) for s in range(3)] == [1.0, 0.1, 0.01]


def _init(loaded, languages, seed: int = 0) -> Scores:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    n_layers, d_ff = loaded.shape.n_layers, loaded.shape.d_ff
    values = {lang: torch.randn(n_layers, d_ff, generator=g, dtype=torch.float64) for lang in languages}
    return Scores(values, "random-init")


def test_optimised_sets_hold_exactly_k_and_the_step_objective_is_the_fit_selectivity(
    tiny_llama_dir: Path,
) -> None:
    loaded = load_model(tiny_llama_dir)
    fit = Corpus(TEXTS)
    batching = RelevanceOptions(batch_size=4)
    # every fit text in every step: step one's objective is the initial set's Sel on the fit
    # texts up to the unmasked constant, so the two code paths must agree
    options = OptimiseOptions(steps=4, texts_per_step=10, lr=0.5)
    neurons, reports = optimise_sets(
        loaded, fit, fit, _init(loaded, TEXTS), budget=Budget(count=6), site="down_in",
        batching=batching, options=options,
    )
    from crane.evaluation.bpb import bits_per_byte

    base = {
        lang: bits_per_byte(loaded.model, loaded.tokenizer, TEXTS[lang], batch_size=4).value
        for lang in TEXTS
    }
    for lang in TEXTS:
        report = reports[lang]
        other = next(e for e in TEXTS if e != lang)
        assert neurons.size(lang) == 6 == report.budget
        assert len(report.objective) == 4 and report.steps == 4
        constant = base[lang] - base[other]
        assert report.objective[0] - constant == pytest.approx(report.fit_sel_init, abs=1e-4)
        assert report.kept in ("optimised", "initial")
        kept_sel = report.fit_sel_final if report.kept == "optimised" else report.fit_sel_init
        assert kept_sel == max(report.fit_sel_init, report.fit_sel_final)
        assert report.backward_passes == 4 * len(TEXTS)
        assert set(report.measured_delta) == set(TEXTS) and math.isfinite(report.measured_sel)
    assert neurons.meta["optimise"]["steps"] == 4 and neurons.meta["optimise"]["init"] == "random-init"


def test_optimise_is_a_registered_method_built_with_the_model(tiny_llama_dir: Path) -> None:
    from crane.identification import IdentifyOptions, identify_methods

    spec = get_method("optimise")
    assert spec.builder is not None and "optimise" not in parse_methods("all")
    with pytest.raises(ConfigError, match="builds its sets with the model"):
        spec.select(None, budget=Budget(count=3), site="down_in")  # type: ignore[arg-type]
    loaded = load_model(tiny_llama_dir)
    texts = {lang: items * 2 for lang, items in TEXTS.items()}
    options = IdentifyOptions(optimise=OptimiseOptions(steps=2, texts_per_step=2))
    # optimise is listed first but runs after the method it starts from
    found = identify_methods(
        loaded, Corpus(texts), ["optimise", "actmean"], budget="5", options=options
    )
    assert set(found.sets) == {"optimise", "actmean"}
    for lang in TEXTS:
        assert found.sets["optimise"].size(lang) == 5
        assert found.reports["optimise"][lang].init == "actmean"
    meta = found.sets["optimise"].meta
    assert meta["method"] == "optimise" and meta["optimise"]["init"] == "actmean"
    with pytest.raises(ConfigError, match="does not compute"):
        identify_methods(
            loaded, Corpus(texts), ["actmean", "optimise"], budget="5",
            options=IdentifyOptions(optimise=OptimiseOptions(steps=1, init="gradxact")),
        )


def test_the_reference_optimum_starts_from_the_best_searched_set_and_beats_every_set_on_fit(
    tiny_llama_dir: Path,
) -> None:
    from crane.identification import IdentifyOptions, identify_methods

    loaded = load_model(tiny_llama_dir)
    texts = {lang: items * 3 for lang, items in TEXTS.items()}
    options = IdentifyOptions(
        relevance=RelevanceOptions(batch_size=4), search_passes=1,
        optimise=OptimiseOptions(steps=12, texts_per_step=2, patience=1, check_every=2),
    )
    found = identify_methods(
        loaded, Corpus(texts), ["actmean", "kojima", "optimise"], budget="5", options=options,
        verify_methods=["actmean"], search_methods=["kojima"],
    )
    d_ff = loaded.shape.d_ff
    for lang in TEXTS:
        report = found.reports["optimise"][lang]
        searched = {m: found.reports[m][lang].measured_sel for m in ("actmean", "kojima+search")}
        best = max(searched, key=lambda m: searched[m])
        assert report.start == best  # warm start: the best validated searched set
        # its first hard mask is that set: the initial fit Sel is that set's
        assert report.fit_sel_init == pytest.approx(report.fit_sel_rivals[best], abs=1e-9)
        assert set(report.fit_sel_rivals) == {"actmean", "kojima", "kojima+search"}
        # by construction no set of the run is more selective on the fit texts
        assert report.fit_sel_kept >= max(report.fit_sel_rivals.values())
        assert report.fit_sel_kept >= max(report.fit_sel_init, report.fit_sel_final)
        assert found.sets["optimise"].size(lang) == 5
        if report.kept.startswith("rival:"):
            rival = found.sets[report.kept.removeprefix("rival:")]
            assert found.sets["optimise"].flat(lang, d_ff) == rival.flat(lang, d_ff)
        # the patience rule: checks every 2 steps, stopped after one without a rise
        assert len(report.validation_checks) == report.steps // 2
        if report.steps < 12:
            assert report.validation_checks[-1] <= max(report.validation_checks[:-1])
