"""Autograd functions that change only the backward pass (the forward value is returned as is).

AttnLRP in the gradient x input form (Achtibat et al. 2024): relevance ``R = x * dF/dx`` on a
model whose backward pass follows the LRP rules. Two primitives are enough:

- :func:`identity_rule` for an element-wise non-linearity ``y = act(x)``: the gradient to ``x``
  becomes ``g * y / (x + 1e-10)``, so ``x * grad_x = y * g`` (relevance passes unchanged);
- :func:`scale_gradient` for the uniform rule through products: the gradient is multiplied by
  a constant (``1/2`` per factor of an element-wise product; ``1/4`` at q and k and ``1/2`` at
  v of attention), per element or per output column.

The factors are powers of two, so scaling commutes exactly with every later floating-point
operation: where along a linear chain the scaling sits does not change a single bit.
"""

from __future__ import annotations

from typing import Any

import torch

IDENTITY_EPS = 1e-10
"""Additive stabiliser of the identity rule's ratio ``act(x) / (x + eps)`` (lxt's value)."""


class _IdentityRule(torch.autograd.Function):
    """``forward(y, x) -> y``; ``backward``: ``grad_x = g * y / (x + eps)``, nothing for ``y``."""

    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(_ratio(y, x))
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor | None]:
        if not ctx.needs_input_grad[1]:
            return None, None
        (ratio,) = ctx.saved_tensors
        return None, ratio * grad


def _ratio(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``y / (x + eps)`` in the input dtype; float16 is computed in float32 and cast back,
    because ``1e-10`` underflows to 0 in float16 and ``x == 0`` would give ``0/0 = NaN``."""
    if x.dtype == torch.float16:
        return (y.float() / (x.float() + IDENTITY_EPS)).to(x.dtype)
    return y / (x + IDENTITY_EPS)


def identity_rule(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The value ``y = act(x)`` whose backward follows the identity rule.

    Args:
        y: the activation output, any shape (its own autograd graph is cut: pass it as is).
        x: the activation input, the same shape as ``y``.

    Returns:
        A tensor equal to ``y`` (an alias) whose gradient flows to ``x`` only, scaled by
        ``y / (x + 1e-10)``. The ratio is kept for the backward pass (one tensor like ``x``).
    """
    return _IdentityRule.apply(y.detach(), x)


class _ScaleGradient(torch.autograd.Function):
    """``forward(x, divisor) -> x``; ``backward``: ``grad / divisor``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, divisor: float) -> torch.Tensor:
        ctx.divisor = divisor
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad / ctx.divisor, None


class _ScaleGradientColumns(torch.autograd.Function):
    """``forward(x, w) -> x``; ``backward``: ``grad * w`` (``w`` broadcasts over the last dim)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weights)
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (weights,) = ctx.saved_tensors
        return grad * weights, None


def scale_gradient(x: torch.Tensor, divisor: float) -> torch.Tensor:
    """``x`` unchanged; its gradient is divided by ``divisor`` on the way back."""
    return _ScaleGradient.apply(x, divisor)


def scale_gradient_columns(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``x [..., W]`` unchanged; its gradient is multiplied column-wise by ``weights [W]``."""
    return _ScaleGradientColumns.apply(x, weights)
