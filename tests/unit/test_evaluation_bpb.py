"""Bits per byte: windowed, batched evaluation equals a direct computation; masking matrix shape."""

from __future__ import annotations

import math

import pytest
import torch
import transformers as T
from tiny_tokenizer import make_tiny_tokenizer

from crane.data.corpus import Corpus
from crane.errors import LanguageError, NeuronSetError
from crane.evaluation.bpb import NONE, bits_per_byte, masking_matrix
from crane.intervene import mask_neurons
from crane.neurons import NeuronSet

TEXTS = [
    "All human beings are born free and equal in dignity and rights.",
    "人人生而自由，在尊严和权利上一律平等。",
    "Tất cả mọi người sinh ra đều được tự do và bình đẳng.",
    "Everyone has the right to life.",
]


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return make_tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    config = T.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
    )
    return T.LlamaForCausalLM(config).eval()


def direct_bits(model, tokenizer, text: str) -> float:  # type: ignore[no-untyped-def]
    """Reference: one unpadded forward over BOS + the whole text."""
    ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
    x = torch.tensor([ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=x).logits.double(), dim=-1)
    nats = -logp[0, :-1].gather(1, x[0, 1:, None]).sum()
    return float(nats) / math.log(2)


def test_batched_padded_equals_direct(model, tokenizer) -> None:
    result = bits_per_byte(model, tokenizer, TEXTS, batch_size=3, max_length=256)
    bits = [direct_bits(model, tokenizer, t) for t in TEXTS]
    torch.testing.assert_close(
        torch.tensor(result.nats / math.log(2)), torch.tensor(bits, dtype=torch.float64),
        rtol=1e-4, atol=1e-4,
    )
    assert list(result.n_bytes) == [len(t.encode()) for t in TEXTS]
    assert result.value == pytest.approx(sum(bits) / sum(len(t.encode()) for t in TEXTS), rel=1e-4)


def test_windows_cover_every_token_once(model, tokenizer) -> None:
    """Short windows lose context (higher loss) but count every token: same tokens, same bytes."""
    long = bits_per_byte(model, tokenizer, TEXTS, max_length=256)
    short = bits_per_byte(model, tokenizer, TEXTS, max_length=5, batch_size=2, max_tokens=7)
    assert list(short.n_tokens) == list(long.n_tokens)
    assert list(short.n_bytes) == list(long.n_bytes)
    assert short.nats[0] != pytest.approx(long.nats[0])


def test_masking_matrix_rows_and_deltas(model, tokenizer) -> None:
    corpus = Corpus({"en": [TEXTS[0], TEXTS[3]], "zh": [TEXTS[1]], "vi": [TEXTS[2]]})
    neuron_set = NeuronSet({"en": {0: [1, 2, 3]}, "zh": {1: [4, 5]}}, n_layers=2, d_ff=96)
    matrix = masking_matrix(model, tokenizer, corpus, {"toy": neuron_set}, seed=1)
    assert matrix.conditions == [NONE, "toy:en", "toy:zh", "random~toy:en", "random~toy:zh"]
    assert matrix.sizes["toy:en"] == matrix.sizes["random~toy:en"] == 3
    delta = matrix.delta()
    assert (delta.loc[NONE] == 0).all()
    assert list(delta.columns) == ["en", "zh", "vi"]
    # the "toy:en" row equals a direct evaluation under the same mask
    with mask_neurons(model, {0: [1, 2, 3]}):
        direct = bits_per_byte(model, tokenizer, corpus["zh"]).value
    assert matrix.bpb().loc["toy:en", "zh"] == pytest.approx(direct, rel=1e-9)
    assert delta.loc["toy:en"].abs().max() > 0


def test_errors(model, tokenizer) -> None:
    with pytest.raises(LanguageError):
        bits_per_byte(model, tokenizer, [])
    too_wide = NeuronSet({"en": {0: [500]}})
    with pytest.raises(NeuronSetError):
        masking_matrix(model, tokenizer, Corpus({"en": ["hello"]}), {"x": too_wide})


def test_non_finite_log_probabilities_are_a_config_error() -> None:
    from crane.errors import ConfigError
    from crane.evaluation.bpb import finite_nll

    fine = finite_nll(torch.tensor([0.5, 1.0], dtype=torch.float32))
    assert fine.dtype == torch.float64 and fine.tolist() == [0.5, 1.0]
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="--dtype float32"):
            finite_nll(torch.tensor([0.5, bad]))
