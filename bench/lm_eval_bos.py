"""Why lm-eval's bits per byte on the demo model is higher than crane's on the same text.

lm-eval's ``loglikelihood_rolling`` (HFLM) puts the tokenizer's BOS in front of each document
as the prefix token, and encodes the document with the tokenizer's defaults, which for Gemma
adds a BOS of its own: the model reads ``BOS BOS text`` and the second BOS is scored as a
target. crane reads ``BOS text`` and scores the text's tokens only. This script computes both
by hand, one window per document, on the held-out UDHR articles (16-30) in en, zh, vi:

    .venv/bin/python bench/lm_eval_bos.py

2026-12-01 (Gemma 3 270M, float32, CPU): one BOS 0.653 / 1.491 / 0.778 bits per byte (crane
evaluate's 128-token windows: 0.653 / 1.491 / 0.781); BOS prefix + encoded text 0.782 / 1.602 /
0.848, which are exactly the unmasked values docs/lm-eval.md shows from lm-eval.
"""

from __future__ import annotations

import math

import torch

from crane.data.builtin import load_corpus
from crane.models.loading import load_model


@torch.no_grad()
def _nats(model: torch.nn.Module, ids: list[int]) -> float:
    x = torch.tensor([ids])
    logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), dim=-1)
    return float(-logp[torch.arange(len(ids) - 1), x[0, 1:]].sum())


def main() -> None:
    loaded = load_model("gemma-3-270m")
    model, tokenizer = loaded.model, loaded.tokenizer
    bos = tokenizer.bos_token_id
    corpus = load_corpus("udhr", part="heldout", languages=["en", "zh", "vi"])
    for lang in corpus.languages:
        one = doubled = 0.0
        n_bytes = 0
        for text in corpus[lang]:
            n_bytes += len(text.encode("utf-8"))
            one += _nats(model, [bos] + tokenizer(text, add_special_tokens=False)["input_ids"])
            doubled += _nats(model, [bos] + tokenizer.encode(text))  # lm-eval's default
        scale = n_bytes * math.log(2)
        print(f"{lang}: one BOS {one / scale:.3f}, BOS + encoded text {doubled / scale:.3f}")


if __name__ == "__main__":
    main()
