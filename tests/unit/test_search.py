"""The set search (selection v3, docs/method.md): exactly k, only validated rises accepted,
the candidates' gains are the gradient of Sel, every trial checkpointed and resumed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import crane.search as search
from crane.collect import RelevanceOptions
from crane.data.corpus import Corpus
from crane.errors import ConfigError
from crane.identification import IdentifyOptions, identify_methods
from crane.masked_loss import bits_per_byte, scaled_site
from crane.models.loading import load_model
from crane.neurons import NeuronSet
from crane.search import SearchOptions, SearchReport, search_sets

TEXTS = {
    "en": [
        "All human beings are born free and equal in dignity and rights.",
        "Everyone has the right to life, liberty and security of person.",
        "No one shall be held in slavery or servitude.",
        "Everyone has the right to recognition everywhere as a person before the law.",
    ],
    "vi": [
        "Tất cả mọi người sinh ra đều được tự do và bình đẳng.",
        "Không ai bị bắt làm nô lệ.",
        "Mọi người đều có quyền sống, quyền tự do và an toàn cá nhân.",
        "Không ai bị tra tấn hay bị đối xử tàn bạo.",
    ],
}
BATCHING = RelevanceOptions(method="gradxact", target="logprob", batch_size=4)


def corpus(copies: int = 3) -> Corpus:
    return Corpus({lang: items * copies for lang, items in TEXTS.items()})


def sel(delta: dict[str, float], lang: str) -> float:
    others = [v for e, v in delta.items() if e != lang]
    return delta[lang] - sum(others) / len(others)


@pytest.fixture(scope="module")
def loaded(tiny_llama_dir: Path):  # type: ignore[no-untyped-def]
    return load_model(tiny_llama_dir)


def test_search_keeps_exactly_k_and_accepts_only_a_rising_validated_sel(
    loaded, tmp_path: Path
) -> None:
    options = IdentifyOptions(relevance=BATCHING, search_passes=4, search_swaps=0.5)
    found = identify_methods(
        loaded, corpus(), ["gradxact"], budget="9", options=options, out_dir=tmp_path
    )
    neurons, reports = found.sets["gradxact"], found.reports["gradxact"]
    validation = found.validation
    assert validation is not None
    texts = search._Texts(loaded, found.fit, validation, BATCHING)
    top = get_top(found, "gradxact", 9)
    for lang in TEXTS:
        report = reports[lang]
        assert isinstance(report, SearchReport) and report.start == "top-k"
        assert neurons.size(lang) == 9 == report.budget
        # the report's Δ and Sel are those of the returned set, measured again here
        final = sorted(neurons.flat(lang, loaded.shape.d_ff))
        delta = search.validation_delta(loaded, texts, final, "down_in")
        assert delta == pytest.approx(report.measured_delta, abs=1e-9)
        assert sel(delta, lang) == pytest.approx(report.measured_sel, abs=1e-9)
        # a trial is accepted exactly when it beats the best validated Sel so far
        best = report.start_sel
        for trial in report.history:
            assert trial["accepted"] == (trial["validation_sel"] > best)
            best = max(best, trial["validation_sel"]) if trial["accepted"] else best
        assert best == pytest.approx(report.measured_sel)
        assert report.changed == len(set(final) - set(top[lang]))
        assert report.swaps_kept >= report.changed
        assert report.backward_passes == report.passes * len(TEXTS) * (options.ig_steps + 1)
        # a rejected trial halves m; a stop at 'converged' comes after a rejected single swap
        if report.stopped == "converged":
            assert report.history[-1]["swaps"] == 1 and not report.history[-1]["accepted"]
    assert any(r.trials for r in reports.values())
    assert neurons.meta["search"]["passes"] == 4
    assert sorted(p.name for p in (tmp_path / "search").iterdir()) == [
        "gradxact-en.json", "gradxact-vi.json"
    ]


def get_top(found, method: str, k: int) -> dict[str, list[int]]:  # type: ignore[no-untyped-def]
    """The method's unsearched top-k (the search's start), flat indices."""
    from crane.methods import get_method

    scores = get_method(method).score(found.stats[method], **IdentifyOptions().score_options())
    return {lang: scores.ranking(lang)[:k].tolist() for lang in TEXTS}


def test_candidate_gains_are_the_gradient_of_sel_at_the_set(loaded) -> None:
    """The one backward pass that scores every candidate: gain_c = −∂Sel/∂scale_c at the
    current set, checked against a central finite difference of the measured Sel."""
    fit = validation = corpus(1)
    texts = search._Texts(loaded, fit, validation, BATCHING)
    d_ff, n_layers = loaded.shape.d_ff, loaded.shape.n_layers
    members = [1, 5, d_ff + 2, d_ff + 30]
    pool = [7, 11, d_ff + 9]
    chosen = {e: texts.fit[e].texts for e in texts.languages}
    report = SearchReport(budget=len(members))
    own, gain, fit_sel = search._estimate(
        loaded, "vi", members, pool, texts, chosen, "down_in", 2, report
    )
    assert own.shape == (4,) and gain.shape == (3,)
    eps = 1e-2
    for i, candidate in enumerate(pool):
        measured = {}
        for sign in (1, -1):
            factor = search._zeroed(loaded, members)
            factor[candidate] = 1.0 + sign * eps
            with torch.no_grad(), scaled_site(loaded, "down_in", factor.view(n_layers, d_ff)):
                measured[sign] = {e: float(bits_per_byte(loaded, t)) for e, t in texts.fit.items()}
        slope = (sel(measured[1], "vi") - sel(measured[-1], "vi")) / (2 * eps)
        assert float(gain[i]) == pytest.approx(-slope, rel=0.05, abs=1e-4)
    # the set's fit Sel is the measured one on the same texts
    zeroed = search._zeroed(loaded, members).view(n_layers, d_ff)
    with torch.no_grad():
        base = {e: float(bits_per_byte(loaded, t)) for e, t in texts.fit.items()}
        with scaled_site(loaded, "down_in", zeroed):
            masked = {e: float(bits_per_byte(loaded, t)) for e, t in texts.fit.items()}
    assert fit_sel == pytest.approx(sel({e: masked[e] - base[e] for e in base}, "vi"), abs=1e-6)
    assert report.backward_passes == 2 * 3 and report.forward_passes == 2


def test_an_interrupted_search_resumes_to_the_same_set(
    loaded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fit, validation = corpus(2), corpus(1)
    d_ff = loaded.shape.d_ff
    ranking = torch.arange(loaded.shape.n_layers * d_ff).flip(0)  # a fixed candidate order
    starts = {lang: list(range(i, 60 + i, 6)) for i, lang in enumerate(TEXTS)}
    rankings = dict.fromkeys(TEXTS, ranking)
    options = SearchOptions(passes=3, swap_fraction=0.5, ig_steps=2, ig_texts=3)
    kwargs = {"site": "down_in", "batching": BATCHING, "options": options, "method": "m"}
    whole, whole_reports = search_sets(loaded, starts, rankings, fit, validation, **kwargs)
    assert any(r.trials >= 2 for r in whole_reports.values())

    measured = search.validation_delta
    calls = {"n": 0}

    def interrupted(*args, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return measured(*args, **kw)

    monkeypatch.setattr(search, "validation_delta", interrupted)
    with pytest.raises(KeyboardInterrupt):
        search_sets(loaded, starts, rankings, fit, validation, state_dir=tmp_path, **kwargs)
    monkeypatch.setattr(search, "validation_delta", measured)
    assert list(tmp_path.iterdir())  # something was checkpointed before the interrupt
    again, reports = search_sets(
        loaded, starts, rankings, fit, validation, state_dir=tmp_path, **kwargs
    )
    assert {lang: sorted(v) for lang, v in again.items()} == {
        lang: sorted(v) for lang, v in whole.items()
    }
    for lang in TEXTS:
        assert reports[lang].history == whole_reports[lang].history
        assert reports[lang].measured_sel == whole_reports[lang].measured_sel
    # a finished search is read back without measuring anything
    monkeypatch.setattr(search, "validation_delta", None)
    read, _ = search_sets(loaded, starts, rankings, fit, validation, state_dir=tmp_path, **kwargs)
    assert read == again


def test_an_activation_method_goes_through_the_same_search(loaded) -> None:
    found = identify_methods(
        loaded, corpus(), ["actmean", "lape"], budget="6",
        options=IdentifyOptions(relevance=BATCHING, search_passes=2),
        verify_methods=["actmean", "lape"],
    )
    for method, site in (("actmean", "down_in"), ("lape", "act")):
        neurons = found.sets[method]
        assert neurons.site == site and neurons.meta["verified"]
        for lang in TEXTS:
            report = found.reports[method][lang]
            assert isinstance(report, SearchReport) and neurons.size(lang) == 6
            assert report.measured_sel >= report.start_sel and report.passes <= 2


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"passes": -1}, "search passes must be 0 or more"),
        ({"pool": -1.0}, "search pool must be 0"),
        ({"swap_fraction": 1.5}, "search swap fraction must be in (0, 1]"),
        ({"ig_steps": -1}, "search ig_steps must be 0 or more"),
    ],
)
def test_bad_search_options_are_clear_errors(options: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        SearchOptions(**options).validate()


@pytest.mark.parametrize("candidates", ["ranking", "masked"])
def test_candidates_from_the_ranking_or_collected_again_under_the_mask(
    loaded, candidates: str
) -> None:
    found = identify_methods(
        loaded, corpus(), ["gradxact", "actmean"], budget="6",
        options=IdentifyOptions(
            relevance=BATCHING, search_passes=2, search_candidates=candidates
        ),
        verify_methods=["gradxact", "actmean"],
    )
    for method in ("gradxact", "actmean"):
        assert found.sets[method].meta["search"]["candidates"] == candidates
        for lang in TEXTS:
            report = found.reports[method][lang]
            assert found.sets[method].size(lang) == 6 and report.passes >= 1
            assert report.measured_sel >= report.start_sel


def test_masked_candidates_come_from_the_rescored_ranking(loaded) -> None:
    """With ``masked`` candidates a pass asks ``rescore`` for the ranking at the current set
    and swaps in that ranking's first neurons outside the set."""
    fit = validation = corpus(1)
    d_ff = loaded.shape.d_ff
    asked: list[tuple[str, list[int], dict[str, int]]] = []
    fresh = [3 * d_ff // 2 + i for i in range(10)]  # neurons no start or ranking holds

    def rescore(lang, members, texts):  # type: ignore[no-untyped-def]
        asked.append((lang, sorted(members), {e: len(t) for e, t in texts.items()}))
        return torch.tensor(fresh + members, dtype=torch.long)

    starts = {"vi": list(range(8))}
    options = SearchOptions(passes=1, swap_fraction=0.5, ig_steps=1, ig_texts=2,
                            candidates="masked")
    members, reports = search_sets(
        loaded, starts, {"vi": torch.arange(20)}, fit, validation, site="down_in",
        batching=BATCHING, options=options, rescore=rescore,
    )
    assert asked[0] == ("vi", list(range(8)), {"en": 2, "vi": 2})
    swapped_in = set(members["vi"]) - set(range(8))
    assert swapped_in <= set(fresh[:4])  # the first m = 4 of the rescored ranking
    assert len(members["vi"]) == 8
    with pytest.raises(ConfigError, match="masked needs"):
        search_sets(loaded, starts, {"vi": torch.arange(20)}, fit, validation, site="down_in",
                    batching=BATCHING, options=options)


def test_crane_identify_reads_search_methods_from_its_config(
    tiny_llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import run_cli

    config = tmp_path / "c.toml"
    config.write_text('search_methods = ["actmean"]\nverify_methods = []\nsearch_passes = 1\n')
    out = tmp_path / "run"
    code, printed, err = run_cli(
        ["identify", "--model", str(tiny_llama_dir), "--langs", "en,vi", "--corpus", "udhr",
         "--method", "gradxact,actmean", "--budget", "5", "--config", str(config),
         "--out", str(out)],
        capsys,
    )
    assert code == 0, err
    searched = NeuronSet.load(out / "neurons-actmean+search.json")
    assert searched.meta["searched_from"] == "actmean" and searched.size("vi") == 5
    assert "actmean+search verification vi: set search from the published" in printed
    assert (out / "search" / "actmean+search-vi.json").is_file()
