"""What AttnLRP needs to know about individual families beyond their adapter.

The rules themselves are generic (see :mod:`crane.lrp.patch`): they are placed through the
adapter's description of the MLP and attention parts. This module lists configurations whose
computation has a part without an AttnLRP rule, and the families whose relevance is checked
against the reference implementation lxt 2.1 in the test suite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LXT_CHECKED: frozenset[str] = frozenset(
    {"llama", "qwen2", "qwen3", "gemma3_text", "gemma3", "gpt2"}
)
"""``model_type`` values whose relevance the tests compare with lxt 2.1 (lxt's families)."""


def _olmo(config: Any) -> str | None:
    if getattr(config, "clip_qkv", None) is not None:
        return (
            "OLMo's clip_qkv clamps the query, key and value projections in place, and AttnLRP "
            "has no rule for that clamp"
        )
    return None


def _bloom(config: Any) -> str | None:
    if getattr(config, "pretraining_tp", 1) > 1 and getattr(config, "slow_but_exact", False):
        return (
            "BLOOM with slow_but_exact and pretraining_tp > 1 computes its MLP and attention "
            "output by slicing the weights instead of calling the projection modules, so the "
            "rules cannot be placed"
        )
    return None


def _gpt2(config: Any) -> str | None:
    if getattr(config, "add_cross_attention", False):
        return "GPT-2 with cross-attention has a second attention whose parts have no rule here"
    return None


CONFIG_GUARDS: dict[str, Callable[[Any], str | None]] = {
    "olmo": _olmo,
    "bloom": _bloom,
    "gpt2": _gpt2,
}
"""``model_type`` → ``guard(text_config)`` returning why the configuration is unsupported, or
``None``."""


def unsupported_reason(model_type: str, text_config: Any) -> str | None:
    """Why AttnLRP cannot be applied to this configuration, or ``None``."""
    guard = CONFIG_GUARDS.get(model_type)
    return guard(text_config) if guard is not None else None
