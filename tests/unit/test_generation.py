"""Generation fidelity: greedy continuations (checked against a hand-written greedy loop) and
offline language identification of what was generated."""

from __future__ import annotations

import builtins
from typing import Any

import pytest
import torch

from crane.errors import ConfigError
from crane.evaluation.generation import (
    Generations,
    generate_greedy,
    generation_fidelity,
    language_identifier,
)
from crane.intervene import mask_neurons


def _hand_greedy(model: Any, tokenizer: Any, prompt: str, n: int) -> str:
    ids = [tokenizer.bos_token_id] + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    out: list[int] = []
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids + out])).logits[0, -1]
            out.append(int(logits.argmax()))
    return tokenizer.decode(out, skip_special_tokens=True).strip()


def test_greedy_matches_a_hand_loop_with_padding(tiny_model, tiny_tokenizer) -> None:
    model = tiny_model("llama").eval()
    prompts = [
        "All human beings are born",
        "人人生而自由",
        "Everyone has the right to life, liberty",
    ]
    got = generate_greedy(model, tiny_tokenizer, prompts, max_new_tokens=5, batch_size=3)
    assert got == [_hand_greedy(model, tiny_tokenizer, p, 5) for p in prompts]
    # under a mask, generation still equals the hand loop run under the same mask
    with mask_neurons(model, {0: list(range(48)), 1: list(range(48))}):
        masked = generate_greedy(model, tiny_tokenizer, prompts, max_new_tokens=5, batch_size=3)
        assert masked == [_hand_greedy(model, tiny_tokenizer, p, 5) for p in prompts]


def test_fidelity_of_a_real_generation_run(tiny_model, tiny_tokenizer) -> None:
    model = tiny_model("llama").eval()
    result = generation_fidelity(
        model,
        tiny_tokenizer,
        ["All human beings", "Everyone has"],
        "en",
        lambda t: "en",
        max_new_tokens=3,
    )
    assert len(result.texts) == 2 and result.correct.tolist() == [bool(t) for t in result.texts]


def test_fidelity_counts_continuations_identified_as_the_language() -> None:
    identify = language_identifier()
    assert identify("Tất cả mọi người sinh ra đều được tự do và bình đẳng") == "vi"
    assert identify("人人生而自由，在尊严和权利上一律平等") == "zh"
    assert identify("All human beings are born free and equal in dignity") == "en"

    texts = ["Tất cả mọi người sinh ra đều được tự do", "All human beings are born free", ""]
    gens = Generations(texts, [identify(t) if t else "" for t in texts], "vi")
    assert gens.correct.tolist() == [True, False, False]
    assert gens.fidelity == pytest.approx(1 / 3)


def test_restricting_to_unknown_languages_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="does not know"):
        language_identifier(["en", "tlh"])


def test_missing_extra_is_a_clear_error(monkeypatch) -> None:
    real_import = builtins.__import__

    def no_langid(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("py3langid"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_langid)
    with pytest.raises(ConfigError, match="langid extra"):
        language_identifier()
