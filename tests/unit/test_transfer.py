"""Base→chat transfer on tiny models: a base model and a copy briefly fine-tuned in the test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from crane.data.builtin import udhr_corpus
from crane.errors import NeuronSetError
from crane.evaluation.bpb import masking_matrix
from crane.models.loading import load_model
from crane.neurons import NeuronSet
from crane.transfer_analysis import layer_jaccard, transfer

LANGS = ["en", "zh", "vi"]
SET = NeuronSet(
    {"en": {0: list(range(0, 40)), 1: [3, 5, 7]}, "zh": {1: list(range(40, 90))}, "vi": {0: [90, 91]}},
    "down_in", 2, 96, {"model": {"spec": "tiny"}},
)


@pytest.fixture(scope="module")
def tuned_dir(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama after a few optimizer steps on English text (a stand-in for a chat model
    derived from a base model: same shape, different weights)."""
    loaded = load_model(str(tiny_llama_dir))
    model = loaded.model.train()
    for parameter in model.parameters():  # load_model freezes weights; unfreeze to fine-tune
        parameter.requires_grad_(True)
    ids = loaded.tokenizer(" ".join(udhr_corpus("identify")["en"][:2]), return_tensors="pt").input_ids[:, :64]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    torch.manual_seed(0)
    for _ in range(3):
        loss = model(ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    out = tmp_path_factory.mktemp("tuned")
    model.eval().save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    return out


def _corpus():
    return udhr_corpus("heldout").select(LANGS).take(2)


def test_transfer_numbers_match_a_hand_computation(tiny_llama_dir: Path, tuned_dir: Path) -> None:
    a, b = load_model(str(tiny_llama_dir)), load_model(str(tuned_dir))
    own_b = SET.random_like(seed=3)
    result = transfer(SET, a, b, _corpus(), own_set_b=own_b)
    da = masking_matrix(a.model, a.tokenizer, _corpus(), {"s": SET}, random_controls=False).delta()
    db = masking_matrix(b.model, b.tokenizer, _corpus(), {"s": SET}, random_controls=False).delta()
    for lang in LANGS:
        row = f"s:{lang}"
        assert result.ratio[lang] == pytest.approx(db.loc[row, lang] / da.loc[row, lang], rel=1e-9)
        others_b = [db.loc[row, e] for e in LANGS if e != lang]
        assert result.sel_b[lang] == pytest.approx(db.loc[row, lang] - sum(others_b) / 2, abs=1e-12)
        assert result.jaccard[lang] == pytest.approx(SET.overlap(own_b, lang)["jaccard"])
        assert result.jaccard_per_layer[lang] == layer_jaccard(SET, own_b, lang, 2)
    assert any(abs(result.ratio[lang] - 1) > 1e-6 for lang in LANGS)  # B really differs
    json.dumps(result.to_dict())  # serialisable


def test_transfer_onto_the_same_model_is_the_identity(tiny_llama_dir: Path) -> None:
    a = load_model(str(tiny_llama_dir))
    result = transfer(SET, a, a, _corpus(), own_set_b=SET)
    for lang in LANGS:
        assert result.ratio[lang] == 1.0
        assert result.sel_a[lang] == result.sel_b[lang]
        assert result.jaccard[lang] == 1.0 and result.jaccard_per_layer[lang] == [1.0, 1.0]


def test_layer_jaccard_by_hand() -> None:
    a = NeuronSet({"en": {0: [1, 2, 3], 2: [5]}}, "down_in", 3, 8)
    b = NeuronSet({"en": {0: [2, 3, 4], 1: [0]}}, "down_in", 3, 8)
    assert layer_jaccard(a, b, "en", 3) == [0.5, 0.0, 0.0]
    assert math.isclose(a.overlap(b, "en")["jaccard"], 2 / 6)


def test_shape_mismatch_is_a_clear_error(tiny_llama_dir: Path) -> None:
    a = load_model(str(tiny_llama_dir))
    wide = NeuronSet({"en": {0: [500]}}, "down_in", 2, 1024)
    with pytest.raises(NeuronSetError):
        transfer(wide, a, a, _corpus())


def test_cli_transfer(tiny_llama_dir: Path, tuned_dir: Path, tmp_path: Path, capsys) -> None:
    from crane.cli import main

    run_dir = tmp_path / "run"
    NeuronSet(SET.neurons, SET.site, 2, 96, {"model": {"spec": str(tiny_llama_dir)}}).save(
        run_dir / "neurons-crane.json"
    )
    argv = ["transfer", "--neurons", str(run_dir), "--model", str(tuned_dir), "--other-run",
            str(run_dir), "--max-texts", "2", "--out", str(tmp_path / "t.json")]
    main(argv)
    out = capsys.readouterr().out
    assert "T = B/A" in out
    numbers = json.loads((tmp_path / "t.json").read_text())
    assert set(numbers["transfer_ratio"]) == set(LANGS)
    assert numbers["jaccard"] == {lang: 1.0 for lang in LANGS}
    with pytest.raises(SystemExit) as exit_info:
        main(["transfer", "--neurons", str(tmp_path / "nowhere"), "--model", str(tuned_dir)])
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} </s>{% endfor %}"
    "{% if add_generation_prompt %}<assistant> {% endif %}"
)


def test_chat_prefix_is_read_but_not_scored(tiny_llama_dir: Path) -> None:
    """With a chat template, each text's bits per byte equal a hand computation of the NLL of
    the text's own tokens after the rendered template prefix (which is never scored)."""
    from crane.data.corpus import Corpus
    from crane.evaluation.chat import chat_prefix_ids

    loaded = load_model(str(tiny_llama_dir))
    tok = loaded.tokenizer
    tok.chat_template = CHAT_TEMPLATE
    prefix = chat_prefix_ids(tok, "Say it.")
    assert prefix[0] == tok.bos_token_id and prefix.count(tok.bos_token_id) == 1
    texts = {"en": ["All human beings are born free."], "vi": ["Mọi người sinh ra tự do."]}
    matrix = masking_matrix(loaded.model, tok, Corpus(texts), {}, random_controls=False,
                            prefix_ids=prefix)
    plain = masking_matrix(loaded.model, tok, Corpus(texts), {}, random_controls=False)
    for lang, (text,) in texts.items():
        ids = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = loaded.model(torch.tensor([prefix + ids])).logits[0].double()
        logp = torch.log_softmax(logits[len(prefix) - 1 : -1], dim=-1)
        nats = -logp.gather(-1, torch.tensor(ids)[:, None]).sum().item()
        expected = nats / math.log(2) / len(text.encode("utf-8"))
        assert matrix.bpb().loc["none", lang] == pytest.approx(expected, rel=1e-5)
        assert matrix.bpb().loc["none", lang] != pytest.approx(plain.bpb().loc["none", lang])
    assert matrix.meta["prefix_tokens"] == len(prefix)


def test_transfer_with_chat_template_on_b(tiny_llama_dir: Path, tuned_dir: Path) -> None:
    from crane.errors import ConfigError

    a, b = load_model(str(tiny_llama_dir)), load_model(str(tuned_dir))
    with pytest.raises(ConfigError, match="no chat template"):
        transfer(SET, a, b, _corpus(), chat_template="b")
    b.tokenizer.chat_template = CHAT_TEMPLATE
    with pytest.raises(ConfigError, match="chat-template choice"):
        transfer(SET, a, b, _corpus(), chat_template="B-only")
    chat = transfer(SET, a, b, _corpus(), chat_template="b")
    plain = transfer(SET, a, b, _corpus())
    assert chat.matrix_a.bpb().equals(plain.matrix_a.bpb())  # A still reads plain text
    assert not chat.matrix_b.bpb().equals(plain.matrix_b.bpb())
    assert chat.models["chat_template"] == "b" and chat.matrix_b.meta["prefix_tokens"] > 0
