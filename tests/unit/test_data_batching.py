from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_tokenizer import make_tiny_tokenizer

from crane.data.batching import (
    IGNORE_INDEX,
    Batch,
    TokenizedTexts,
    count_batches,
    iter_batches,
    pad_token_id,
    tokenize_texts,
)
from crane.errors import ConfigError

TEXTS = [
    "All human beings are born free and equal in dignity and rights.",
    "人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心。",
    "Tất cả mọi người sinh ra đều được tự do và bình đẳng về nhân phẩm và quyền.",
    "Hi",
    "",
    "Everyone has the right to life, liberty and the security of person. " * 6,
]


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return make_tiny_tokenizer()


@pytest.fixture(scope="module")
def tokenizer_no_bos():  # type: ignore[no-untyped-def]
    return make_tiny_tokenizer(bos=False, pad=False)


def reference_ids(tokenizer, text: str) -> list[int]:  # type: ignore[no-untyped-def]
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def collect(tok: TokenizedTexts, batch_size: int, pad_id: int, sort: bool = True) -> list[Batch]:
    return list(iter_batches(tok, batch_size=batch_size, pad_id=pad_id, sort_by_length=sort))


def expected_windows(ids: list[int], max_length: int, bos: int) -> list[list[int]]:
    """Reference layout: [BOS] + the first max_length-1 tokens, then windows of BOS + ``c``
    re-read context tokens + the next max_length-1-c tokens, c = max_length // 4."""
    c = max_length // 4
    out, start = [], 0
    while start < len(ids):
        ctx = 0 if start == 0 else c
        take = max_length - 1 - ctx
        out.append([bos] + ids[start - ctx : start + take])
        start += take
    return out


def check_invariants(tokenizer, texts: list[str], max_length: int, batch_size: int) -> None:  # type: ignore[no-untyped-def]
    tok = tokenize_texts(tokenizer, texts, max_length=max_length)
    bos = tokenizer.bos_token_id
    pad = pad_token_id(tokenizer)
    assert tok.n_bytes == [len(t.encode("utf-8")) for t in texts]
    refs = [reference_ids(tokenizer, t) for t in texts]
    assert tok.n_tokens == [len(r) for r in refs]
    predicted = [0] * len(texts)
    windows: list[list[list[int]]] = [[] for _ in texts]
    batches = collect(tok, batch_size, pad)
    assert len(batches) == count_batches(tok, batch_size=batch_size)
    for batch in batches:
        B, T = batch.input_ids.shape
        assert B <= batch_size and T <= max_length
        assert batch.labels.shape == batch.attention_mask.shape == (B, T)
        assert batch.input_ids.dtype == batch.labels.dtype == torch.long
        for b in range(B):
            i = int(batch.text_index[b])
            n = int(batch.attention_mask[b].sum())
            assert batch.attention_mask[b, :n].all() and not batch.attention_mask[b, n:].any()
            assert (batch.input_ids[b, n:] == pad).all()
            row_labels = batch.labels[b]
            assert (row_labels[n - 1 :] == IGNORE_INDEX).all()  # last real position and padding
            scored = (row_labels != IGNORE_INDEX).nonzero().flatten().tolist()
            assert scored and scored == list(range(scored[0], n - 1)), "labels not a suffix"
            # every label is the true next token
            assert torch.equal(row_labels[scored], batch.input_ids[b, 1:n][scored])
            assert batch.input_ids[b, 0] == bos  # every window starts with BOS
            predicted[i] += len(scored)
            windows[i].append(batch.input_ids[b, :n].tolist())
    # every text token is predicted exactly once
    assert predicted == tok.n_tokens == tok.n_predicted()
    for i, ref in enumerate(refs):
        assert sorted(windows[i]) == sorted(expected_windows(ref, max_length, bos))
    # in window order, the scored labels spell out each text's tokens exactly
    spelled: list[list[int]] = [[] for _ in texts]
    for batch in collect(tok, batch_size, pad, sort=False):
        for b in range(batch.input_ids.shape[0]):
            labels = batch.labels[b]
            spelled[int(batch.text_index[b])] += labels[labels != IGNORE_INDEX].tolist()
    assert spelled == refs


def test_windows_predict_every_token_once(tokenizer) -> None:  # type: ignore[no-untyped-def]
    for max_length in (2, 3, 8, 128):
        for batch_size in (1, 3, 16):
            check_invariants(tokenizer, TEXTS, max_length, batch_size)


def test_window_layout(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = TEXTS[5]
    ids = reference_ids(tokenizer, text)
    tok = tokenize_texts(tokenizer, [text], max_length=10, context=3)
    bos = tokenizer.bos_token_id
    assert len(tok.windows) == 1 + math.ceil((len(ids) - 9) / 6)
    start = 0
    for k, w in enumerate(tok.windows):
        ctx = 0 if k == 0 else 3
        assert w.input_ids == [bos] + ids[start - ctx : start + w.n_predicted]
        assert w.n_context == 1 + ctx
        start += w.n_predicted
    assert start == len(ids)


def test_without_bos_first_token_is_context(tokenizer, tokenizer_no_bos) -> None:  # type: ignore[no-untyped-def]
    for tk, add_bos in ((tokenizer, False), (tokenizer_no_bos, True)):
        tok = tokenize_texts(tk, TEXTS, max_length=8, add_bos=add_bos)
        assert tok.bos_added is False
        expected = [max(n - 1, 0) for n in tok.n_tokens]
        assert tok.n_predicted() == expected
        for w in tok.windows:
            assert w.input_ids[0] != tokenizer.bos_token_id


def test_empty_text_has_no_window_but_keeps_counts(tokenizer) -> None:  # type: ignore[no-untyped-def]
    tok = tokenize_texts(tokenizer, ["", "Hi"], max_length=4)
    assert tok.n_bytes == [0, 2] and tok.n_tokens[0] == 0
    assert {w.text_index for w in tok.windows} == {1}


def test_sorting_is_stable_and_reduces_padding(tokenizer) -> None:  # type: ignore[no-untyped-def]
    texts = ["Hi", TEXTS[5], "Hi", TEXTS[0], "Hi", TEXTS[2]]
    tok = tokenize_texts(tokenizer, texts, max_length=64)
    pad = pad_token_id(tokenizer)

    def padding(batches: list[Batch]) -> int:
        return sum(int((b.attention_mask == 0).sum()) for b in batches)

    sorted_batches = collect(tok, 2, pad, sort=True)
    assert padding(sorted_batches) < padding(collect(tok, 2, pad, sort=False))
    lengths = [int(m.sum()) for b in sorted_batches for m in b.attention_mask]
    assert lengths == sorted(lengths, reverse=True)
    again = collect(tok, 2, pad, sort=True)
    for a, b in zip(sorted_batches, again, strict=True):
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.text_index, b.text_index)
    # ties keep their original order (the three "Hi" windows: texts 0, 2, 4)
    order = [int(i) for b in sorted_batches for i in b.text_index]
    assert [i for i in order if texts[i] == "Hi"] == [0, 2, 4]


def test_unsorted_keeps_window_order(tokenizer) -> None:  # type: ignore[no-untyped-def]
    tok = tokenize_texts(tokenizer, TEXTS, max_length=8)
    batches = collect(tok, 4, 0, sort=False)
    assert [int(i) for b in batches for i in b.text_index] == [w.text_index for w in tok.windows]


def test_pad_token_id(tokenizer, tokenizer_no_bos) -> None:  # type: ignore[no-untyped-def]
    assert pad_token_id(tokenizer) == tokenizer.pad_token_id == 0
    assert pad_token_id(tokenizer_no_bos) == tokenizer_no_bos.eos_token_id == 2

    class Bare:
        pad_token_id = None
        eos_token_id = [7, 8]

    assert pad_token_id(Bare()) == 7
    Bare.eos_token_id = None
    assert pad_token_id(Bare()) == 0


def test_bad_arguments(tokenizer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="max_length"):
        tokenize_texts(tokenizer, ["x"], max_length=1)
    tok = tokenize_texts(tokenizer, ["x y"], max_length=4)
    with pytest.raises(ConfigError, match="batch_size"):
        list(iter_batches(tok, batch_size=0, pad_id=0))
    assert tokenize_texts(tokenizer, []).windows == []
    assert list(iter_batches(tokenize_texts(tokenizer, []), batch_size=2, pad_id=0)) == []


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(st.text(max_size=40), min_size=1, max_size=5),
    max_length=st.integers(min_value=2, max_value=12),
    batch_size=st.integers(min_value=1, max_value=4),
)
def test_invariants_hold_for_arbitrary_text(tokenizer, texts, max_length, batch_size) -> None:  # type: ignore[no-untyped-def]
    check_invariants(tokenizer, texts, max_length, batch_size)


def test_max_tokens_packs_short_windows_and_keeps_every_window(tokenizer) -> None:  # type: ignore[no-untyped-def]
    texts = ["a b c d e f g h i j k l m n o p"] + ["short one"] * 9
    tok = tokenize_texts(tokenizer, texts, max_length=64)
    batches = list(iter_batches(tok, batch_size=8, pad_id=0, max_tokens=40))
    assert len(batches) == count_batches(tok, batch_size=8, max_tokens=40)
    seen = sorted(int(i) for b in batches for i in b.text_index)
    assert seen == sorted(w.text_index for w in tok.windows)
    for b in batches:
        rows, width = b.input_ids.shape
        assert rows <= 8
        assert rows == 1 or rows * width <= 40
    # without the token budget the same windows need fewer, wider batches
    assert count_batches(tok, batch_size=8) <= len(batches)
