"""A tiny byte-level BPE tokenizer trained in code (no network), for unit tests.

``make_tiny_tokenizer()`` returns a ``transformers.PreTrainedTokenizerFast`` with ``<bos>``,
``<eos>`` and ``<pad>`` tokens; byte-level pre-tokenization means any text (Chinese, Vietnamese)
tokenizes without unknown tokens and decodes back exactly.
"""

from __future__ import annotations

import functools

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

TRAINING_TEXTS = [
    "All human beings are born free and equal in dignity and rights.",
    "They are endowed with reason and conscience.",
    "Everyone has the right to life, liberty and the security of person.",
    "人人生而自由，在尊严和权利上一律平等。",
    "Tất cả mọi người sinh ra đều được tự do và bình đẳng về nhân phẩm và quyền.",
]
SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>"]


@functools.cache
def _trained(vocab_size: int) -> str:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TRAINING_TEXTS * 4, trainer=trainer)
    return tok.to_str()


def make_tiny_tokenizer(
    vocab_size: int = 400, *, bos: bool = True, pad: bool = True
) -> PreTrainedTokenizerFast:
    """A fresh tiny tokenizer; ``bos=False``/``pad=False`` leave those tokens unset."""
    tok = Tokenizer.from_str(_trained(vocab_size))
    kwargs = {"eos_token": "<eos>"}
    if bos:
        kwargs["bos_token"] = "<bos>"
    if pad:
        kwargs["pad_token"] = "<pad>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)
