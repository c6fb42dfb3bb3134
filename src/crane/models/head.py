"""The model body and its output head, so that logits are computed only where they are needed.

``model(...)`` computes logits for every position over the whole vocabulary (262k for Gemma 3):
for bits per byte we need them only at scored positions (not padding, not re-read context), and
for relevance only the gold token's logit. :func:`final_hidden` runs the body,
:func:`output_logits` and :func:`gold_logits` apply the head with the model's own
post-processing (final-logit soft-capping, logit scaling). :func:`check_head` confirms on a
real forward that body + head reproduce ``model(...).logits``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from crane.errors import ModelLoadError, UnsupportedModelError
from crane.models.placement import materialized, module_device


def _text_config(model: nn.Module) -> Any:
    config = getattr(model, "config", None)
    return getattr(config, "text_config", None) or config


def head_postprocess(model: nn.Module) -> tuple[float | None, float | None]:
    """``(softcap, divisor)`` the model applies to raw head outputs (``None`` when absent)."""
    config = _text_config(model)
    softcap = getattr(config, "final_logit_softcapping", None)
    divisor = getattr(config, "logits_scaling", None)
    return (float(softcap) if softcap else None, float(divisor) if divisor not in (None, 1, 1.0) else None)


def _postprocess(model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    softcap, divisor = head_postprocess(model)
    if divisor is not None:
        logits = logits / divisor
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


def output_head(model: nn.Module) -> nn.Module:
    """The output projection (``lm_head``)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, nn.Module) or getattr(head, "weight", None) is None:
        raise UnsupportedModelError(
            "The model has no output embedding (lm_head); load a causal language model "
            "(AutoModelForCausalLM), not a bare encoder or base model."
        )
    return head


def final_hidden(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Hidden states after the final norm: ``[B, T, d_model]`` (the input to ``lm_head``)."""
    body = model.base_model
    out = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


def output_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary logits ``[..., V]`` from final hidden states ``[..., d_model]``."""
    head = output_head(model)
    return _postprocess(model, head(hidden.to(module_device(head))))


def gold_logits(model: nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Logit of each target token only: ``hidden [N, d]``, ``targets [N]`` → ``[N]``.

    Gathers the unembedding rows of the targets instead of multiplying by the whole vocabulary
    matrix (the same numbers as ``output_logits(...)[range(N), targets]``).
    """
    head = output_head(model)
    with materialized(head):  # an offloaded head (device_map) holds its weight on meta
        rows = head.weight[targets.to(head.weight.device)]  # [N, d], a copy
        bias = getattr(head, "bias", None)
        bias = bias[targets.to(bias.device)] if bias is not None else None
    raw = (hidden.to(rows.device) * rows).sum(dim=-1)
    if bias is not None:
        raw = raw + bias
    return _postprocess(model, raw)


@torch.no_grad()
def check_head(model: nn.Module, inputs: dict[str, torch.Tensor]) -> None:
    """Raise :class:`UnsupportedModelError` unless body + head reproduce ``model(...).logits``
    (and :class:`ModelLoadError` when those logits are not finite: NaN weights, fp16 overflow)."""
    reference = model(**inputs, use_cache=False).logits
    if not torch.isfinite(reference).all():
        raise ModelLoadError(
            "The model's logits on a short probe input contain NaN or infinite values, so every "
            "statistic would be garbage; check its weights, or load it in float32 "
            "(--dtype float32)."
        )
    hidden = final_hidden(model, inputs["input_ids"], inputs.get("attention_mask"))
    ours = output_logits(model, hidden)
    targets = inputs["input_ids"][0]
    gathered = gold_logits(model, hidden[0], targets)
    expected_gold = reference[0].gather(-1, targets[:, None].to(reference.device))[:, 0]
    tol = 1e-3 if reference.dtype in (torch.float16, torch.bfloat16) else 1e-4
    scale = reference.abs().max().clamp_min(1.0)
    if (
        ours.shape != reference.shape
        or (ours.to(reference.device) - reference).abs().max() > tol * scale
        or (gathered.to(reference.device) - expected_gold).abs().max() > tol * scale
    ):
        raise UnsupportedModelError(
            f"This model's logits are not lm_head(final hidden state) with the known "
            f"post-processing (soft-capping, logit scaling), so crane cannot compute them "
            f"efficiently; model type '{getattr(_text_config(model), 'model_type', '?')}' "
            "needs support in crane.models.head."
        )
