"""Chat templates for evaluating chat/instruct models on plain text.

A chat model reads text most naturally as its own reply. :func:`chat_prefix_ids` renders a user
turn (``prompt``) and the opening of the assistant's turn with the tokenizer's own chat
template; bits per byte then scores each text as that reply, the prefix being read but never
scored (``tokenize_texts(..., prefix_ids=...)``).
"""

from __future__ import annotations

from typing import Any

from crane.errors import ConfigError

DEFAULT_CHAT_PROMPT = "Write a short text."
"""The user turn placed before every evaluated text when a chat template is used."""


def chat_prefix_ids(tokenizer: Any, prompt: str = DEFAULT_CHAT_PROMPT) -> list[int]:
    """Token ids of ``<user turn: prompt><assistant turn opening>`` in the tokenizer's template.

    Raises :class:`ConfigError` when the tokenizer has no chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            "This model's tokenizer has no chat template; drop the chat-template option for it "
            "(base models read plain text)."
        )
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    # The template writes its own BOS (if any) as text: do not let the tokenizer add another.
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError("The chat template rendered to nothing; check the tokenizer's template.")
    return [int(i) for i in ids]
