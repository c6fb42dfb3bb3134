"""Check crane on a CUDA machine against the CPU: relevance, masking and bits per byte on tiny
random models, bf16 collection, and run-to-run determinism. Needs no network (the models are
built from configs) and runs in well under five minutes.

    python scripts/gpu_check.py                 # CUDA vs CPU (exit 1 on any failed check)
    python scripts/gpu_check.py --device cpu    # the same checks, CPU vs CPU (a dry run)

Prints one line per check and a summary; record the output in docs/scale.md with the date,
the GPU and the torch version.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2}
"""Largest difference allowed, relative to the largest absolute value compared."""


def _tiny(model_type: str) -> object:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(
        model_type, vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=128,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def _batch(device: str) -> object:
    from crane.data.batching import Batch

    torch.manual_seed(1)
    ids = torch.randint(3, 250, (3, 24))
    mask = torch.ones_like(ids)
    mask[2, 18:] = 0
    labels = torch.full_like(ids, -100)
    labels[:, :-1] = ids[:, 1:]
    labels[2, 17:] = -100
    return Batch(ids.to(device), mask.to(device), labels.to(device), torch.arange(3))


def _relevance(model: object, device: str, method: str, dtype: torch.dtype) -> torch.Tensor:
    from crane.collect import batch_contributions
    from crane.models.adapters import get_adapter
    from crane.models.sites import model_shape

    model = model.to(device=device, dtype=dtype)  # type: ignore[attr-defined]
    adapter = get_adapter(model)
    n_layers = model_shape(model, adapter).n_layers
    contributions = batch_contributions(
        model, adapter, _batch(device), site="down_in", target="logprob", n_layers=n_layers
    )
    return contributions.signed.float().cpu()


def _masked_logprob(model: object, device: str) -> float:
    from crane.collect import explained
    from crane.intervene import mask_neurons

    model = model.to(device=device, dtype=torch.float32)  # type: ignore[attr-defined]
    with torch.no_grad(), mask_neurons(model, {0: [1, 5, 9], 1: [2, 3]}):
        return float(explained(model, _batch(device), "logprob"))


def _close(a: torch.Tensor, b: torch.Tensor, dtype: str) -> tuple[bool, float]:
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-12)
    gap = float((a - b).abs().max()) / scale
    return gap <= TOLERANCE[dtype], gap


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu for a dry run", file=sys.stderr)
        return 2
    torch.use_deterministic_algorithms(True, warn_only=True)
    started = time.perf_counter()
    failures = 0

    def report(name: str, ok: bool, detail: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")

    for model_type in ("llama", "gemma3_text", "qwen2"):
        for method in ("gradxact", "attnlrp"):
            from crane.collect import _relevance_context
            from crane.models.adapters import get_adapter

            cpu_model, dev_model = _tiny(model_type), _tiny(model_type)
            with _relevance_context(cpu_model, get_adapter(cpu_model), method):
                on_cpu = _relevance(cpu_model, "cpu", method, torch.float32)
            with _relevance_context(dev_model, get_adapter(dev_model), method):
                on_dev = _relevance(dev_model, args.device, method, torch.float32)
                again = _relevance(dev_model, args.device, method, torch.float32)
            ok, gap = _close(on_cpu, on_dev, "float32")
            report(f"{model_type} {method} relevance {args.device} vs cpu", ok, f"gap {gap:.1e}")
            report(
                f"{model_type} {method} relevance twice on {args.device}",
                torch.equal(on_dev, again), "bit-identical" if torch.equal(on_dev, again) else
                f"gap {float((on_dev - again).abs().max()):.1e}",
            )
            with _relevance_context(dev_model, get_adapter(dev_model), method):
                bf16 = _relevance(dev_model, args.device, method, torch.bfloat16)
            ok, gap = _close(on_cpu, bf16, "bfloat16")
            report(f"{model_type} {method} bf16 relevance vs float32 cpu", ok, f"gap {gap:.1e}")
        cpu_lp = _masked_logprob(_tiny(model_type), "cpu")
        dev_lp = _masked_logprob(_tiny(model_type), args.device)
        gap = abs(cpu_lp - dev_lp) / max(abs(cpu_lp), 1e-12)
        report(f"{model_type} masked log-probability {args.device} vs cpu", gap <= 1e-4, f"gap {gap:.1e}")
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"{failures} failed; {name}, torch {torch.__version__}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
