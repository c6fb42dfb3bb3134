"""Generation language fidelity: greedy continuations of prompts in a language, and the share an
offline language identifier recognises as that language.

Needs the ``langid`` extra (``py3langid``, a small offline model shipped inside the package);
:func:`language_identifier` raises a clear error without it. The identifier sees only the
generated continuation, never the prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from crane.errors import ConfigError
from crane.models.placement import input_device
from crane.progress import NullProgress, Progress

Identifier = Callable[[str], str]
"""Text → language code (ISO 639-1)."""


def language_identifier(languages: Sequence[str] | None = None) -> Identifier:
    """An offline language identifier (py3langid), optionally restricted to ``languages``."""
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:
        raise ConfigError(
            "Generation fidelity needs the langid extra: pip install 'crane-neurons[langid]'."
        ) from None
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    if languages:
        known = set(identifier.nb_classes)
        chosen = [code.split("-")[0] for code in languages]
        missing = [code for code in chosen if code not in known]
        if missing:
            raise ConfigError(
                f"The language identifier does not know {', '.join(missing)}; "
                "leave those languages out of the fidelity test."
            )
        identifier.set_languages(chosen)

    def identify(text: str) -> str:
        return str(identifier.classify(text)[0])

    return identify


@dataclass
class Generations:
    """Greedy continuations of one language's prompts and what the identifier made of them."""

    texts: list[str]
    identified: list[str]
    expected: str

    @property
    def correct(self) -> np.ndarray:
        """``[n_prompts]`` bool: the continuation was identified as the expected language."""
        return np.array([code == self.expected for code in self.identified], dtype=bool)

    @property
    def fidelity(self) -> float:
        return float(self.correct.mean()) if self.texts else float("nan")


@torch.no_grad()
def generate_greedy(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 16,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> list[str]:
    """Greedy continuations (decoded, prompt removed) of ``prompts``, left-padded in batches,
    each prompt preceded by BOS when the tokenizer has one."""
    progress = progress or NullProgress()
    device = input_device(model)  # not next(parameters()): meta when offloaded
    bos = getattr(tokenizer, "bos_token_id", None)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ConfigError("The tokenizer has neither a pad nor an end-of-text token to pad with.")
    out: list[str] = []
    for lo in range(0, len(prompts), batch_size):
        chunk = prompts[lo : lo + batch_size]
        encoded = [
            ([bos] if bos is not None else []) + tokenizer(p, add_special_tokens=False)["input_ids"]
            for p in chunk
        ]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        generated = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
        )
        for row in generated[:, width:].tolist():
            out.append(tokenizer.decode(row, skip_special_tokens=True).strip())
        progress.advance(1)
    return out


def generation_fidelity(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    language: str,
    identify: Identifier,
    *,
    max_new_tokens: int = 16,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> Generations:
    """Greedy continuations of ``prompts`` and the identifier's verdict on each."""
    texts = generate_greedy(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
    )
    return Generations(texts, [identify(t) if t else "" for t in texts], language.split("-")[0])
