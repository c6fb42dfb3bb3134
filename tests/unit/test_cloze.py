"""The parallel cloze test built from any parallel corpus (crane.evaluation.cloze), and option
scoring with the shared-prefix cache on its items (equal to one sequence per option, masked or
not)."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from crane.data.builtin import GettextUnavailable, load_corpus
from crane.data.choice_items import ChoiceSet
from crane.data.continuation import split_half
from crane.data.corpus import Corpus
from crane.errors import ConfigError, CorpusError, LanguageError
from crane.evaluation.choice import choice_scores
from crane.evaluation.cloze import cloze_set, udhr_paragraphs
from crane.intervene import mask_neurons
from crane.neurons import NeuronSet

EN_WORDS = "the quick brown fox jumps over lazy dog all human beings are born free equal".split()
VI_WORDS = "tất cả mọi người sinh ra đều được tự do và bình đẳng".split()
ZH_CHARS = "人人生而自由在尊严和权利上一律平等"


def synthetic(n: int, seed: int = 0, languages: tuple[str, ...] = ("en", "zh", "vi")) -> Corpus:
    """A parallel corpus of ``n`` texts of 4-28 words (zh: characters), lengths correlated
    across languages as translations' are; every text distinct."""
    rng = random.Random(seed)
    texts: dict[str, list[str]] = {lang: [] for lang in languages}
    for i in range(n):
        k = rng.randrange(4, 29)
        for lang in languages:
            m = max(4, k + rng.randrange(-2, 3))
            if lang == "zh":
                texts[lang].append("".join(rng.choice(ZH_CHARS) for _ in range(m + 2)) + f"{i}")
            else:
                words = EN_WORDS if lang == "en" else VI_WORDS
                texts[lang].append(" ".join(rng.choice(words) for _ in range(m)) + f" n{i}")
    return Corpus(texts, {"source": "synthetic", "part": "test"})


def _mean_log_bytes(corpus: Corpus, index: int) -> float:
    logs = [
        math.log(len(split_half(corpus[lang][index], lang)[1].encode("utf-8")))  # type: ignore[index]
        for lang in corpus.languages
    ]
    return sum(logs) / len(logs)


def check_parallel(choice_set: ChoiceSet, corpus: Corpus, n_choices: int) -> None:
    """Same items, sources and answers in every language; prompts and choices are the halves
    of the texts the provenance names; every choice from the item's length class."""
    records = choice_set.provenance["items"]
    ratio = choice_set.provenance["length_ratio"]
    width = math.log(ratio)
    assert {len(choice_set[lang]) for lang in choice_set.languages} == {len(records)}
    for n, record in enumerate(records):
        items = [choice_set[lang][n] for lang in choice_set.languages]
        assert {it.id for it in items} == {f"{corpus.provenance['source']}:{record['source_index']}"}
        assert {it.answer for it in items} == {record["answer"]}
        sources = record["choice_sources"]
        assert sources[record["answer"]] == record["source_index"]
        assert len(set(sources)) == n_choices
        for lang, item in zip(choice_set.languages, items, strict=True):
            assert item.prompt == split_half(corpus[lang][record["source_index"]], lang)[0]
            assert len(set(item.choices)) == n_choices  # distinct endings
            for choice, source in zip(item.choices, sources, strict=True):
                assert choice == split_half(corpus[lang][source], lang)[1]
        # the length band: all choices from one class, mean lengths within the class width
        means = [_mean_log_bytes(corpus, s) for s in sources]
        assert {math.floor(m / width) for m in means} == {record["length_class"]}
        assert max(means) - min(means) < width


# ---- building ---------------------------------------------------------------------------------


def test_unaligned_corpus_is_refused() -> None:
    corpus = Corpus({"en": ["a b c d e f", "g h i j k l", "m n o p q r"], "vi": ["a b c d e f"]})
    with pytest.raises(ConfigError, match="parallel corpus"):
        cloze_set(corpus, n_items=2)


def test_parallel_and_in_band() -> None:
    corpus = synthetic(300)
    choice_set = cloze_set(corpus, n_items=120, seed=1)
    assert choice_set.style == "continuation"
    assert choice_set.languages == ["en", "zh", "vi"]
    prov = choice_set.provenance
    assert prov["n_items"] == 120 and prov["n_items_requested"] == 120
    assert prov["builder"] == "cloze_set" and prov["corpus_sha256"] == corpus.sha256
    check_parallel(choice_set, corpus, 4)
    three = cloze_set(corpus, n_items=30, n_choices=3, length_ratio=1.5, seed=2)
    check_parallel(three, corpus, 3)


def test_deterministic_and_independent_of_languages_asked() -> None:
    corpus = synthetic(200)
    first = cloze_set(corpus, n_items=50, seed=3)
    assert cloze_set(corpus, n_items=50, seed=3).items == first.items
    assert cloze_set(corpus, n_items=50, seed=3).provenance == first.provenance
    assert cloze_set(corpus, n_items=50, seed=4).items["en"] != first.items["en"]
    only_zh = cloze_set(corpus, n_items=50, seed=3, languages=["zh"])
    assert only_zh.languages == ["zh"] and only_zh.items["zh"] == first.items["zh"]
    with pytest.raises(LanguageError):
        cloze_set(corpus, n_items=5, languages=["fr"])


def test_length_alone_scores_chance() -> None:
    """The real ending's length rank among the options is uniform (classes are a property of
    the text, not of its role). A band around the real ending's length would put it in the
    middle: ranks 1-4 with probabilities 1/8, 3/8, 3/8, 1/8."""
    corpus = synthetic(900, seed=5)
    choice_set = cloze_set(corpus, n_items=800, seed=0)
    for lang in choice_set.languages:
        ranks = np.zeros(4)
        for item in choice_set[lang]:
            lengths = np.array([len(c.encode("utf-8")) for c in item.choices], dtype=float)
            lengths += np.arange(4) * 1e-3  # ties broken by position, which is uniform
            ranks[int((lengths < lengths[item.answer]).sum())] += 1
        share = ranks / ranks.sum()
        assert np.abs(share - 0.25).max() < 0.06, (lang, share)
        baseline = choice_set.provenance["length_baseline"][lang]
        assert abs(baseline["shortest"] - 0.25) < 0.06 and abs(baseline["longest"] - 0.25) < 0.06


def test_bad_options_and_too_few_texts() -> None:
    corpus = synthetic(40)
    with pytest.raises(ConfigError, match="n_items"):
        cloze_set(corpus, n_items=0)
    with pytest.raises(ConfigError, match="n_choices"):
        cloze_set(corpus, n_items=5, n_choices=1)
    with pytest.raises(ConfigError, match="length_ratio"):
        cloze_set(corpus, n_items=5, length_ratio=1.0)
    with pytest.raises(ConfigError, match="min_words"):
        cloze_set(corpus, n_items=5, min_words=2)
    tiny = Corpus({"en": ["one two three four five six"] * 3, "vi": ["a b c d e f"] * 3})
    with pytest.raises(CorpusError, match="fewer choices"):
        cloze_set(tiny, n_items=5)


def test_min_words_filters_short_texts() -> None:
    corpus = synthetic(300)
    choice_set = cloze_set(corpus, n_items=300, min_words=12, min_chars=14)
    for record in choice_set.provenance["items"]:
        for source in record["choice_sources"]:
            assert len(corpus["en"][source].split()) >= 12
            assert len(corpus["zh"][source]) >= 14
    assert choice_set.provenance["n_eligible"] < cloze_set(corpus, n_items=1).provenance[
        "n_eligible"
    ]


def test_gettext_heldout_gives_200_items() -> None:
    try:
        corpus = load_corpus("gettext", part="heldout")
    except GettextUnavailable as exc:
        pytest.skip(f"this machine has no gettext catalogs: {exc}")
    choice_set = cloze_set(corpus, n_items=1000)
    assert choice_set.provenance["part"] == "heldout"
    assert all(len(choice_set[lang]) >= 200 for lang in ("en", "zh", "vi"))
    check_parallel(choice_set, corpus, 4)


def test_udhr_paragraphs() -> None:
    """UDHR has about 50 paragraphs in all (preamble joined): every one of a class with ≥ 4
    members becomes an item. It cannot give 200 items; gettext's held-out part does."""
    corpus = udhr_paragraphs("all")
    n = len(corpus["en"])
    assert {len(corpus[lang]) for lang in ("en", "zh", "vi")} == {n}
    assert corpus.provenance["texts"][0] == [0, None]  # the preamble, paragraphed differently
    assert corpus.provenance["texts"][1] == [1, 0]
    choice_set = cloze_set(corpus, n_items=1000)
    assert choice_set.provenance["n_items"] == choice_set.provenance["n_eligible"] >= 40
    check_parallel(choice_set, corpus, 4)
    heldout = udhr_paragraphs("heldout")
    assert {t[0] for t in heldout.provenance["texts"]} == set(range(16, 31))
    with pytest.raises(ConfigError):
        udhr_paragraphs("train")


# ---- scoring with the shared-prefix cache -----------------------------------------------------


def _cloze_items() -> ChoiceSet:
    return cloze_set(synthetic(80, seed=7), n_items=12, seed=0)


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "gemma3"])
def test_cached_scores_equal_uncached(
    tiny_model: Any, tiny_tokenizer: Any, model_type: str
) -> None:
    """Same log-likelihoods with and without the cache, unmasked and under a mask (the hooks
    act on the context pass and the options pass alike). The Gemma configs have a sliding
    window of 16 tokens, shorter than the longest contexts here."""
    model = tiny_model(model_type)
    choice_set = _cloze_items()
    config = getattr(model.config, "text_config", None) or model.config
    n_layers, d_ff = config.num_hidden_layers, config.intermediate_size
    neurons = NeuronSet(
        {"en": {0: list(range(0, d_ff, 2)), n_layers - 1: list(range(1, d_ff, 3))}},
        n_layers=n_layers,
        d_ff=d_ff,
    )
    longest = 0
    for lang in choice_set.languages:
        items = choice_set[lang]
        kwargs = dict(style="continuation", language=lang, batch_size=16, max_tokens=400)
        plain = choice_scores(model, tiny_tokenizer, items, prefix_cache=False, **kwargs)
        cached = choice_scores(model, tiny_tokenizer, items, **kwargs)
        np.testing.assert_allclose(cached.loglik, plain.loglik, rtol=0, atol=1e-4)
        with mask_neurons(model, neurons):
            masked_plain = choice_scores(model, tiny_tokenizer, items, prefix_cache=False, **kwargs)
            masked = choice_scores(model, tiny_tokenizer, items, **kwargs)
        np.testing.assert_allclose(masked.loglik, masked_plain.loglik, rtol=0, atol=1e-4)
        assert np.abs(masked.loglik - cached.loglik).max() > 1e-3  # the mask did something
        longest = max(longest, *(len(tiny_tokenizer(it.prompt)["input_ids"]) for it in items))
    assert longest > 16  # some contexts exceed the Gemma configs' sliding window
