"""The ``logprob`` target's head: gradient kept from the forward pass vs logits recomputed in
the backward pass (the implementation before 2026-12-01), in one process, Gemma 3 270M shapes
(hidden 640, vocabulary 262,144; a random head, so no model download or load is needed).

    python bench/logprob_target.py [--positions 1024] [--repeats 3]

Prints seconds per forward+backward of each and the ratio recompute / kept (> 1: faster now).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from torch import nn

from crane.collect import LOGPROB_CHUNK, _GoldLogProb


class _Head(nn.Module):
    def __init__(self, hidden: int, vocab: int) -> None:
        super().__init__()
        self.lm_head = nn.Linear(hidden, vocab, bias=False)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head


def _logp(model: nn.Module, h: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    logits = model.lm_head(h).float()
    picked = logits.gather(-1, gold[:, None])[:, 0]
    return (picked - torch.logsumexp(logits, dim=-1)).double().sum()


class _Recompute(torch.autograd.Function):
    """The earlier implementation: logits in the forward pass, again in the backward pass."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, gold: torch.Tensor, model: nn.Module) -> torch.Tensor:
        ctx.model = model
        ctx.save_for_backward(h, gold)
        total = torch.zeros((), dtype=torch.float64)
        for lo in range(0, h.shape[0], LOGPROB_CHUNK):
            total += _logp(model, h[lo : lo + LOGPROB_CHUNK], gold[lo : lo + LOGPROB_CHUNK])
        return total.to(h.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        h, gold = ctx.saved_tensors
        grad = torch.empty_like(h)
        for lo in range(0, h.shape[0], LOGPROB_CHUNK):
            with torch.enable_grad():
                chunk = h[lo : lo + LOGPROB_CHUNK].detach().requires_grad_(True)
                logp = _logp(ctx.model, chunk, gold[lo : lo + LOGPROB_CHUNK])
                (grad[lo : lo + LOGPROB_CHUNK],) = torch.autograd.grad(logp, [chunk])
        return grad * grad_output, None, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = _Head(640, 262_144).requires_grad_(False)
    h = torch.randn(args.positions, 640)
    gold = torch.randint(0, 262_144, (args.positions,))
    import crane.collect as collect

    collect.output_logits = lambda m, x: m.lm_head(x)  # type: ignore[attr-defined]  # plain head
    times: dict[str, float] = {}
    grads = {}
    for name, fn in (("recompute", _Recompute), ("kept", _GoldLogProb)):
        best = float("inf")
        for _ in range(args.repeats):
            x = h.clone().requires_grad_(True)
            started = time.perf_counter()
            fn.apply(x, gold, model).backward()
            best = min(best, time.perf_counter() - started)
            grads[name] = x.grad
        times[name] = best
    assert torch.allclose(grads["recompute"], grads["kept"], atol=1e-5)
    print(
        f"{args.positions} positions: recompute {times['recompute']:.2f} s, kept "
        f"{times['kept']:.2f} s, ratio {times['recompute'] / times['kept']:.2f}x"
    )


if __name__ == "__main__":
    main()
