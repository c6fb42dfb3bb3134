"""Multiple choice: MMLU-style readers, the built-in parallel continuation test, scoring that
equals a hand computation, and the masking matrix."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TINY_CONFIGS

import crane.data.continuation as continuation
from crane.data.builtin import GettextUnavailable
from crane.data.choice_files import (
    ChoiceItem,
    ChoiceSet,
    builtin_continuation_set,
    load_choice_set,
    read_choice_file,
    split_half,
)
from crane.errors import ConfigError, CorpusError, LanguageError
from crane.evaluation import ChoiceScores, choice_matrix, choice_scores
from crane.evaluation import choice as choice_module
from crane.evaluation.bpb import NONE
from crane.evaluation.choice import item_texts
from crane.evaluation.metrics import matrix_metrics
from crane.neurons import NeuronSet

FIXTURES = Path(__file__).parents[1] / "fixtures" / "choice"


# ---- readers ---------------------------------------------------------------------------------


def test_mmlu_raw_headerless_csv() -> None:
    items = read_choice_file(FIXTURES / "en_mmlu.csv")
    assert len(items) == 6
    assert [it.answer for it in items] == [1, 2, 1, 3, 0, 2]
    assert items[0].prompt == "How many days are there in a leap year?"
    assert items[0].choices == ("365", "366", "364", "360")
    assert items[2].prompt.endswith("at sea level, in degrees Celsius?")  # quoted comma
    assert items[5].choices[2] == "Carbon dioxide"
    assert items[0].id == "en_mmlu:0"


def test_cmmlu_csv_with_id_column() -> None:
    items = read_choice_file(FIXTURES / "zh_cmmlu.csv")
    assert [it.id for it in items] == [str(i) for i in range(6)]
    assert [it.answer for it in items] == [2, 2, 1, 2, 2, 0]
    assert items[3].prompt == "中国的首都是哪座城市？"
    assert items[3].choices[items[3].answer] == "北京"


def test_vmlu_jsonl_strips_labels() -> None:
    items = read_choice_file(FIXTURES / "vi_vmlu.jsonl")
    assert [it.id for it in items] == [f"vi-00{i}" for i in range(1, 7)]
    assert [it.answer for it in items] == [2, 1, 3, 0, 1, 2]
    assert items[0].choices == ("Hồ Chí Minh", "Đà Nẵng", "Hà Nội", "Huế")


def test_ceval_layout_index_answers_and_nfc(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "Hà Nội")
    rows = [
        {"ID": 7, "Question": "q1", "a": decomposed, "b": "x", "c": "y", "d": "z", "Answer": 0},
        {"ID": 8, "Question": "q2", "a": "u", "b": "v", "c": "w", "d": "t", "Answer": "3"},
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", "utf-8")
    items = read_choice_file(path)
    assert [it.answer for it in items] == [0, 3]
    assert [it.id for it in items] == ["7", "8"]
    assert items[0].choices[0] == unicodedata.normalize("NFC", "Hà Nội")
    tsv = tmp_path / "ceval.tsv"
    tsv.write_text("id\tquestion\tA\tB\tC\tD\tanswer\n1\tq\ta\tb\tc\td\td\n", "utf-8")
    (item,) = read_choice_file(tsv)
    assert (item.id, item.answer, item.choices) == ("1", 3, ("a", "b", "c", "d"))
    named = tmp_path / "named.csv"
    named.write_text("stem,opt1,opt2,gold\nq,yes,no,B\n", "utf-8")
    (item,) = read_choice_file(
        named, question_field="stem", choice_fields=["opt1", "opt2"], answer_field="gold"
    )
    assert (item.prompt, item.choices, item.answer) == ("q", ("yes", "no"), 1)


ERROR_CASES: dict[str, tuple[str, bytes, str]] = {
    "empty": ("empty.csv", b"  \n", "empty"),
    "not_utf8": ("latin.csv", "Qu'est-ce?,é,è,ê,ë,A\n".encode("latin-1"), "UTF-8"),
    "missing_column": ("cols.csv", b"prompt,A,B,answer\nq,a,b,A\n", "'prompt'"),
    "bad_letter": ("letter.csv", b"question,A,B,C,D,answer\nq,a,b,c,d,E\n", "Row 2"),
    "bad_index": ("index.jsonl", b'{"question":"q","choices":["a","b"],"answer":2}\n', "Line 1"),
    "one_choice": ("one.jsonl", b'{"question":"q","choices":["a"],"answer":0}\n', "1 choice"),
    "empty_question": ("blank.csv", b"question,A,B,answer\n ,a,b,A\n", "empty question"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_reader_errors_name_the_file(case: str, tmp_path: Path) -> None:
    name, data, needle = ERROR_CASES[case]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(CorpusError) as err:
        read_choice_file(path)
    message = str(err.value)
    assert name in message and needle in message
    assert message.count("\n") == 0


def test_missing_column_lists_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "cols.csv"
    path.write_text("prompt,A,B,answer\nq,a,b,A\n", "utf-8")
    with pytest.raises(CorpusError, match=r"found: 'prompt', 'A', 'B', 'answer'"):
        read_choice_file(path)


def test_load_choice_set_select_take() -> None:
    files = {
        "eng": FIXTURES / "en_mmlu.csv",
        "zh": FIXTURES / "zh_cmmlu.csv",
        "vie": FIXTURES / "vi_vmlu.jsonl",
    }
    choice_set = load_choice_set(files)
    assert choice_set.languages == ["en", "zh", "vi"]
    assert choice_set.style == "question"
    record = choice_set.provenance["files"]["vi"]
    assert record["n_items"] == 6
    assert record["sha256"] == hashlib.sha256(files["vie"].read_bytes()).hexdigest()
    assert choice_set.select(["vi", "en"]).languages == ["vi", "en"]
    with pytest.raises(LanguageError, match="no items in 'fr'"):
        choice_set.select(["fr"])
    assert [len(v) for v in choice_set.take(2).items.values()] == [2, 2, 2]


# ---- built-in parallel continuation test ----------------------------------------------------


def test_split_half() -> None:
    assert split_half("one two three four five", "en") == ("one two three", "four five")
    assert split_half("one two three", "en") is None
    assert split_half("一二三四五六七八", "zh") == ("一二三四", "五六七八")
    assert split_half("一二三四五", "zh") is None
    assert split_half("命令行或其他shell引用文本", "zh") == ("命令行或其他", "shell引用文本")


def _check_parallel(choice_set: ChoiceSet, n_choices: int) -> None:
    langs = choice_set.languages
    records = choice_set.provenance["items"]
    messages, _ = continuation._parallel_source(list(continuation.BUILTIN_LANGUAGES))
    counts = {len(choice_set[lang]) for lang in langs}
    assert counts == {len(records)}
    for n, record in enumerate(records):
        items = [choice_set[lang][n] for lang in langs]
        source = choice_set.provenance["source"]
        assert {it.id for it in items} == {f"{source}:{record['source_index']}"}
        assert {it.answer for it in items} == {record["answer"]}
        assert record["choice_sources"][record["answer"]] == record["source_index"]
        for lang, item in zip(langs, items, strict=True):
            k = continuation.BUILTIN_LANGUAGES.index(lang)
            assert len(item.choices) == n_choices
            assert len(set(item.choices)) == n_choices  # distinct continuations
            prompt, _ = split_half(messages[record["source_index"]][k], lang)
            assert item.prompt == prompt
            for choice, source in zip(item.choices, record["choice_sources"], strict=True):
                assert choice == split_half(messages[source][k], lang)[1]


def test_builtin_set_is_parallel_and_seeded() -> None:
    first = builtin_continuation_set(n_items=20, seed=3)
    assert first.languages == ["en", "zh", "vi"]
    assert first.style == "continuation"
    assert first.provenance["seed"] == 3 and first.provenance["n_items"] == 20
    _check_parallel(first, 4)
    again = builtin_continuation_set(n_items=20, seed=3)
    assert again.items == first.items
    other = builtin_continuation_set(n_items=20, seed=4)
    assert other.items["en"] != first.items["en"]
    # the languages asked for do not change the items
    assert builtin_continuation_set(["zh"], n_items=20, seed=3).items["zh"] == first.items["zh"]
    assert first.take(5).provenance["items"] == first.provenance["items"][:5]
    with pytest.raises(LanguageError):
        builtin_continuation_set(["fr"])


def test_builtin_set_falls_back_to_udhr(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise GettextUnavailable("no catalogs here")

    monkeypatch.setattr(continuation, "gettext_corpus", unavailable)
    choice_set = builtin_continuation_set(n_items=10, n_choices=3, seed=1)
    assert choice_set.provenance["source"] == "udhr"
    assert choice_set.provenance["n_items"] == 10
    _check_parallel(choice_set, 3)


# ---- scoring ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(tiny_model: Any) -> Any:
    return tiny_model("llama")


ITEMS_EN = [
    ChoiceItem("q0", "Which planet is closest to the Sun?", ("Venus", "Mercury", "Mars"), 1),
    ChoiceItem("q1", "All human beings are born", ("free and equal", "in a box"), 0),
]
ITEMS_ZH = [ChoiceItem("z0", "人人生而自由，", ("在尊严和权利上一律平等。", "自由"), 0)]


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def hand_logliks(
    model: Any, tokenizer: Any, items: list[ChoiceItem], style: str, lang: str, window: int = 10**6
) -> np.ndarray:
    """Reference: one unpadded full-logits forward per (item, choice)."""
    out = np.full((len(items), max(len(it.choices) for it in items)), -np.inf)
    for i, item in enumerate(items):
        context = f"{item.prompt}\nAnswer:" if style == "question" else item.prompt
        sep = " " if lang != "zh" else ""
        for j, choice in enumerate(item.choices):
            ctx = _encode(tokenizer, context)
            cont = _encode(tokenizer, context + sep + choice)[len(ctx) :]
            ctx = ctx[max(0, len(ctx) - (window - 1 - len(cont))) :]
            ids = torch.tensor([[tokenizer.bos_token_id, *ctx, *cont]])
            with torch.no_grad():
                logp = model(input_ids=ids).logits.double().log_softmax(-1)[0]
            start = 1 + len(ctx)
            targets = ids[0, start:]
            out[i, j] = float(logp[start - 1 : -1].gather(1, targets[:, None]).sum())
    return out


@pytest.mark.parametrize(
    ("items", "style", "lang"), [(ITEMS_EN, "question", "en"), (ITEMS_ZH, "continuation", "zh")]
)
def test_scores_equal_hand_computation(
    model: Any, tiny_tokenizer: Any, items: list[ChoiceItem], style: str, lang: str
) -> None:
    scores = choice_scores(model, tiny_tokenizer, items, style=style, language=lang, batch_size=4)
    expected = hand_logliks(model, tiny_tokenizer, items, style, lang)
    np.testing.assert_allclose(scores.loglik, expected, rtol=0, atol=1e-5)
    sep = "" if lang == "zh" else " "
    for i, item in enumerate(items):
        for j, choice in enumerate(item.choices):
            assert scores.n_bytes[i, j] == len((sep + choice).encode("utf-8"))
    assert list(scores.answer) == [it.answer for it in items]
    assert scores.n_truncated == 0


def test_item_texts_separator() -> None:
    assert item_texts(ITEMS_EN[0], "question", "en") == (
        "Which planet is closest to the Sun?\nAnswer:",
        [" Venus", " Mercury", " Mars"],
    )
    assert item_texts(ITEMS_ZH[0], "continuation", "zh")[1][0] == "在尊严和权利上一律平等。"


def test_left_truncation(model: Any, tiny_tokenizer: Any) -> None:
    prompt = "the quick brown fox " * 20 + "jumps over"
    long = [ChoiceItem("l", prompt, ("the lazy dog", "a cat"), 0)]
    scores = choice_scores(model, tiny_tokenizer, long, style="continuation", max_length=24)
    assert scores.n_truncated == 1
    expected = hand_logliks(model, tiny_tokenizer, long, "continuation", "en", window=24)
    np.testing.assert_allclose(scores.loglik, expected, rtol=0, atol=1e-5)
    with pytest.raises(ConfigError, match="raise max_length"):
        choice_scores(model, tiny_tokenizer, long, style="continuation", max_length=3)


def test_correct_and_accuracy() -> None:
    scores = ChoiceScores(
        loglik=np.array([[-2.0, -3.0], [-4.0, -6.0], [-1.0, -np.inf]]),
        n_bytes=np.array([[1, 6], [2, 6], [3, 0]]),
        answer=np.array([1, 0, 0]),
    )
    assert scores.correct(norm=False).tolist() == [False, True, True]
    assert scores.correct(norm=True).tolist() == [True, False, True]  # per byte: -2 < -0.5; -2 < -1
    assert scores.accuracy(norm=False) == pytest.approx(2 / 3)


# ---- masking matrix ---------------------------------------------------------------------------


def _small_set() -> ChoiceSet:
    return ChoiceSet(
        {
            "en": ITEMS_EN + [ChoiceItem("q2", "Water boils at", ("100 degrees", "5 degrees"), 0)],
            "zh": ITEMS_ZH * 2,
        },
        style="question",
    )


def test_choice_matrix(model: Any, tiny_tokenizer: Any) -> None:
    choice_set = _small_set()
    many = list(range(0, 96, 2))
    neuron_set = NeuronSet({"en": {0: many, 1: many}, "zh": {1: many}}, n_layers=2, d_ff=96)
    matrix = choice_matrix(
        model, tiny_tokenizer, choice_set, {"toy": neuron_set}, seed=1, batch_size=8
    )
    assert matrix.conditions == [NONE, "toy:en", "toy:zh", "random~toy:en", "random~toy:zh"]
    assert matrix.sizes["toy:en"] == matrix.sizes["random~toy:en"] == 96
    for lang in ("en", "zh"):
        plain = choice_scores(model, tiny_tokenizer, choice_set[lang], language=lang)
        np.testing.assert_allclose(matrix.results[(NONE, lang)].loglik, plain.loglik, atol=1e-9)
        masked = matrix.results[("toy:en", lang)].loglik
        finite = np.isfinite(plain.loglik)
        assert np.array_equal(finite, np.isfinite(masked))
        assert np.abs(masked[finite] - plain.loglik[finite]).max() > 1e-3
    for norm in (True, False):
        acc = matrix.accuracy(norm)
        assert ((acc >= 0) & (acc <= 1)).all().all()
        assert (matrix.delta(norm).loc[NONE] == 0).all()
    assert list(matrix.accuracy().columns) == ["en", "zh"]
    assert matrix.correct("toy:zh", "en").shape == (3,)
    one = choice_matrix(
        model, tiny_tokenizer, choice_set, {"toy": neuron_set}, seed=1, batch_size=1
    )
    for key, scores in matrix.results.items():
        np.testing.assert_allclose(one.results[key].loglik, scores.loglik, rtol=0, atol=1e-5)
    data = json.loads(json.dumps(matrix.to_dict()))
    assert data["n_items"] == {"en": 3, "zh": 2}
    assert len(data["correct"]["acc_norm"]["random~toy:zh"]["en"]) == 3
    assert data["meta"]["choice_set"]["style"] == "question"
    rows = {"toy": {"en": "toy:en", "zh": "toy:zh"}}
    metrics = matrix_metrics(
        matrix.units(), rows, matrix.languages, higher_is_better=True, n_boot=20
    )
    assert set(metrics["metrics"]["toy"]) == {"en", "zh"}


# ---- the shared-prefix cache ------------------------------------------------------------------

CACHE_ITEMS = [
    *ITEMS_EN,
    ChoiceItem("q2", "the quick brown fox " * 6 + "jumps", ("over the lazy dog", "a"), 0),
    ChoiceItem("q3", "Water boils at", ("100 degrees", "5 degrees", "free", "the sun"), 0),
]


@pytest.mark.parametrize("model_type", sorted(TINY_CONFIGS))
def test_prefix_cache_equals_one_sequence_per_choice(
    tiny_model: Any, tiny_tokenizer: Any, model_type: str
) -> None:
    """Every supported family: the cached path (contexts padded together, options at their
    true positions) gives the uncached scores, also when a long context is truncated
    (max_length 20) and when batches are small."""
    model = tiny_model(model_type)
    assert choice_module.prefix_cache_support(model) is None
    for max_length, batch_size in ((None, 64), (20, 3)):
        kwargs = dict(style="question", batch_size=batch_size, max_length=max_length)
        plain = choice_scores(model, tiny_tokenizer, CACHE_ITEMS, prefix_cache=False, **kwargs)
        cached = choice_scores(model, tiny_tokenizer, CACHE_ITEMS, **kwargs)
        np.testing.assert_allclose(cached.loglik, plain.loglik, rtol=0, atol=1e-4)
        assert cached.n_truncated == plain.n_truncated
    assert plain.n_truncated >= 1


def _embedded_tokens(model: Any, run: Any) -> int:
    """Tokens the model body embeds while ``run()`` runs."""
    seen = []
    handle = model.get_input_embeddings().register_forward_hook(
        lambda _m, args, _out: seen.append(args[0].numel())
    )
    try:
        run()
    finally:
        handle.remove()
    return sum(seen)


def test_prefix_cache_runs_the_context_once(model: Any, tiny_tokenizer: Any) -> None:
    prompt = "All human beings are born free and equal in dignity and rights. " * 2
    item = [ChoiceItem("c", prompt, ("free", "equal", "born", "dignity"), 0)]
    ctx = len(_encode(tiny_tokenizer, prompt + "\nAnswer:"))
    options = [len(_encode(tiny_tokenizer, " " + c)) for c in item[0].choices]
    cached = _embedded_tokens(model, lambda: choice_scores(model, tiny_tokenizer, item))
    plain = _embedded_tokens(
        model, lambda: choice_scores(model, tiny_tokenizer, item, prefix_cache=False)
    )
    assert cached == 1 + ctx + 4 * max(options)  # BOS + context once, options padded
    assert plain == 4 * (1 + ctx + max(options))


def test_models_without_cache_support_take_the_uncached_path(
    model: Any, tiny_tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = choice_scores(model, tiny_tokenizer, CACHE_ITEMS, prefix_cache=False)
    monkeypatch.setattr(choice_module, "_cache_argument", lambda _model: None)
    assert choice_module.prefix_cache_support(model) == "its forward takes no key/value cache"

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the cached path ran")

    monkeypatch.setattr(choice_module, "_cached_nats", never)
    scores = choice_scores(model, tiny_tokenizer, CACHE_ITEMS)
    np.testing.assert_array_equal(scores.loglik, expected.loglik)
    matrix = choice_matrix(model, tiny_tokenizer, _small_set(), {}, random_controls=False)
    assert matrix.meta["prefix_cache"] is False


def test_a_model_that_returns_no_cache_falls_back(
    model: Any, tiny_tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = choice_scores(model, tiny_tokenizer, CACHE_ITEMS, prefix_cache=False)
    monkeypatch.setattr(choice_module, "_returned_cache", lambda _out: None)
    scores = choice_scores(model, tiny_tokenizer, CACHE_ITEMS)
    np.testing.assert_array_equal(scores.loglik, expected.loglik)


def test_plan_limits() -> None:
    group = choice_module._Group
    groups = [
        group([1] * n_ctx, list(range(k)), [[5] * (n_opt + k % 2 * j) for j in range(k)])
        for n_ctx, n_opt, k in [(3, 2, 4), (10, 1, 2), (6, 4, 3), (2, 2, 4), (9, 3, 1)]
    ]

    def check(plan: list[Any], batch_size: int, max_tokens: int | None, window: Any) -> None:
        assert sorted(g for p in plan for g in p.groups) == list(range(len(groups)))  # each once
        for p in plan:
            members = [groups[g] for g in p.groups]
            width = max(len(m.context) for m in members)
            longest = max(len(o) for m in members for o in m.options)
            lengths = [len(m.context) for m in members]
            assert lengths == sorted(lengths, reverse=True)  # longest context first
            if len(members) > 1:
                assert len(members) <= batch_size
                assert max_tokens is None or len(members) * width <= max_tokens
                assert window is None or width + longest <= window
            rows = [row for chunk in p.chunks for row in chunk]
            every = [(b, k) for b, m in enumerate(members) for k in range(len(m.options))]
            assert sorted(rows) == every
            sizes = [len(members[b].options[k]) for b, k in rows]
            assert sizes == sorted(sizes, reverse=True)  # longest option first, across items
            for chunk in p.chunks:
                long = max(len(members[b].options[k]) for b, k in chunk)
                if len(chunk) > 1:
                    assert len(chunk) <= batch_size
                    assert max_tokens is None or len(chunk) * (width + long) <= max_tokens

    cases = [(64, None, None), (5, None, None), (64, 40, None), (64, None, 9), (1, 10, 4)]
    for batch_size, max_tokens, window in cases:
        plan = choice_module._plan(groups, batch_size, max_tokens, window)
        check(plan, batch_size, max_tokens, window)
    one = choice_module._plan(groups, 64, None, None)
    assert len(one) == 1 and len(one[0].chunks) == 1
    assert len(choice_module._plan(groups, 1, None, None)) == len(groups)
    with pytest.raises(ConfigError, match="batch_size"):
        choice_module._plan(groups, 0, None, None)


def test_progress_counts_the_cached_batches(model: Any, tiny_tokenizer: Any) -> None:
    class Count:
        started = advanced = 0

        def start(self, _label: str, total: int) -> None:
            self.started = total

        def advance(self, n: int = 1) -> None:
            self.advanced += n

        def message(self, _text: str) -> None:
            pass

    for prefix_cache in (True, False):
        progress = Count()
        choice_scores(
            model, tiny_tokenizer, CACHE_ITEMS, batch_size=3, prefix_cache=prefix_cache,
            progress=progress,  # type: ignore[arg-type]
        )
        assert progress.started == progress.advanced > 1
