"""crane.lrp against the reference implementation, live: lxt 2.1 under transformers 4.57.6.

The test builds tiny random float64 models here (transformers 5.x), perturbs every norm weight
and bias so a norm-formula mistake cannot hide behind the constant initialisation, and writes
config kwargs + weights + inputs to a temporary directory. One subprocess in the reference
environment (.venv-lxt, ``make lxt-env``) runs tests/lxt_reference.py over all cases, which
rebuilds each architecture from the same kwargs, loads the weights strictly and explains the
same quantity with lxt. Compared: the per-neuron relevance at the down-projection input
(activation x gradient summed over batch and positions) and the input-embedding relevance,
explaining f = sum of gold next-token logits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from crane.lrp import attnlrp
from crane.lrp.norms import is_norm
from crane.models import get_adapter
from crane.models.sites import decoder_layers, down_proj

ROOT = Path(__file__).resolve().parents[2]
LXT_PYTHON = ROOT / ".venv-lxt" / "bin" / "python"
REFERENCE_SCRIPT = ROOT / "tests" / "lxt_reference.py"
MISSING = (
    "the lxt reference environment .venv-lxt is missing; run `make lxt-env` "
    "(transformers 4.57.6 + lxt 2.1, about 70 s and 1.1 GB once)"
)
RTOL = 1e-4

# Sizes as in tests/unit/conftest.py (hidden 64, d_ff 96, 2 layers, 4 heads, 2 kv heads).
_IDS = {"pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 3}
_DECODER = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    **_IDS,
)
_FAMILIES: dict[str, dict[str, Any]] = {
    "llama": dict(
        config_class="LlamaConfig",
        model_class="LlamaForCausalLM",
        config=dict(_DECODER, head_dim=16),
    ),
    "qwen2": dict(config_class="Qwen2Config", model_class="Qwen2ForCausalLM", config=_DECODER),
    "qwen3": dict(
        config_class="Qwen3Config",
        model_class="Qwen3ForCausalLM",
        config=dict(_DECODER, head_dim=16),
    ),
    "gemma3_text": dict(
        config_class="Gemma3TextConfig",
        model_class="Gemma3ForCausalLM",
        config=dict(
            _DECODER,
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=4,
            layer_types=["sliding_attention", "full_attention"],
            final_logit_softcapping=3.0,
        ),
    ),
    "gpt2": dict(
        config_class="GPT2Config",
        model_class="GPT2LMHeadModel",
        config=dict(
            vocab_size=256, n_embd=64, n_layer=2, n_head=4, n_inner=96, n_positions=128, **_IDS
        ),
    ),
}
CASES: dict[str, dict[str, Any]] = {
    f"{family}_{impl}": dict(spec, family=family, attn_implementation=impl)
    for family, spec in _FAMILIES.items()
    for impl in ("sdpa", "eager")
}


def _build(case: dict[str, Any]) -> nn.Module:
    """The case's model in float64, seed 0, with perturbed norm weights and biases."""
    import transformers

    config = getattr(transformers, case["config_class"])(**case["config"])
    config._attn_implementation = case["attn_implementation"]
    torch.manual_seed(0)
    model = getattr(transformers, case["model_class"])(config).to(torch.float64).eval()
    generator = torch.Generator().manual_seed(1)
    norm_params = {id(p) for m in model.modules() if is_norm(m) for p in m.parameters()}
    with torch.no_grad():
        for name, param in model.named_parameters():
            if id(param) in norm_params:
                param.add_(0.1 * torch.randn(param.shape, generator=generator, dtype=param.dtype))
            elif name.endswith("bias"):
                param.add_(0.05 * torch.randn(param.shape, generator=generator, dtype=param.dtype))
    for param in model.parameters():
        param.requires_grad_(False)
    assert model.config._attn_implementation == case["attn_implementation"]
    return model


def _input_ids() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(4, 248, (2, 8), generator=generator)


def explain_attnlrp(model: nn.Module, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Our AttnLRP relevance of f = sum of gold next-token logits.

    The reader's pre-hooks on the down projections are registered *after* entering the patch,
    as crane's relevance collector does. Returns ``input_relevance [B, T, d]`` and
    ``down_in.<layer> [d_ff]`` (summed over batch and positions).
    """
    adapter = get_adapter(model)
    relevance: dict[int, torch.Tensor] = {}

    def reader(index: int) -> Any:
        def pre_hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
            a = args[0]
            a_value = a.detach()
            a.register_hook(lambda g: relevance.__setitem__(index, (a_value * g).sum((0, 1))))

        return pre_hook

    with attnlrp(model):
        handles = [
            down_proj(layer, adapter).register_forward_pre_hook(reader(i))
            for i, layer in enumerate(decoder_layers(model, adapter))
        ]
        try:
            emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
            logits = model(inputs_embeds=emb, use_cache=False).logits
            logits[:, :-1].gather(-1, ids[:, 1:, None]).sum().backward()
        finally:
            for handle in handles:
                handle.remove()
    out = {"input_relevance": (emb * emb.grad).detach()}
    out.update({f"down_in.{i}": relevance[i] for i in sorted(relevance)})
    return out


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max |ours - reference| / max |reference|."""
    return float((ours.detach() - reference).abs().max() / reference.abs().max())


@pytest.fixture(scope="module")
def lxt_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any] | None:
    """Our models, inputs and lxt's numbers for every case (one subprocess), or ``None`` when
    the reference environment is missing."""
    if not LXT_PYTHON.exists():
        return None
    workdir = tmp_path_factory.mktemp("lxt")
    ids = _input_ids()
    models: dict[str, nn.Module] = {}
    records = []
    for name, case in CASES.items():
        model = models[name] = _build(case)
        adapter = get_adapter(model)
        down_path = f"{adapter.mlp}.{adapter.down_proj}" if adapter.mlp else adapter.down_proj
        layers_path = next(p for p in adapter.layers if _has_layers(model, p))
        records.append(
            dict(
                name=name,
                config_class=case["config_class"],
                model_class=case["model_class"],
                config=case["config"],
                attn_implementation=case["attn_implementation"],
                layers=layers_path,
                down_proj=down_path,
            )
        )
        weights = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(workdir / f"{name}.safetensors"))
    (workdir / "cases.json").write_text(json.dumps({"cases": records}))
    save_file({"input_ids": ids}, str(workdir / "inputs.safetensors"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore")
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny matrices: threads only add contention
    done = subprocess.run(
        [str(LXT_PYTHON), str(REFERENCE_SCRIPT), str(workdir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        pytest.fail(f"tests/lxt_reference.py failed:\n{done.stderr[-4000:]}")
    return {
        "models": models,
        "ids": ids,
        "lxt": load_file(str(workdir / "lxt_out.safetensors")),
        "info": json.loads((workdir / "lxt_out.json").read_text()),
    }


def _has_layers(model: nn.Module, path: str) -> bool:
    from crane.models.adapters import resolve

    layers = resolve(model, path)
    return isinstance(layers, nn.ModuleList) and len(layers) > 0


def _require(reference: dict[str, Any] | None) -> dict[str, Any]:
    if reference is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    return reference


def test_reference_environment_versions(lxt_reference: dict[str, Any] | None) -> None:
    info = _require(lxt_reference)["info"]
    assert info["transformers"] == "4.57.6"
    assert info["lxt"].startswith("2.1")
    assert sys.version_info >= (3, 10)


@pytest.mark.parametrize("name", list(CASES))
def test_relevance_equals_lxt(lxt_reference: dict[str, Any] | None, name: str) -> None:
    reference = _require(lxt_reference)
    model, ids, lxt = reference["models"][name], reference["ids"], reference["lxt"]
    with torch.no_grad():
        plain = model(input_ids=ids, use_cache=False).logits
    # the same architecture in both transformers versions (else the comparison means nothing)
    assert relative_error(plain, lxt[f"{name}.logits"]) < 1e-9

    ours = explain_attnlrp(model, ids)
    n_layers = len(decoder_layers(model, get_adapter(model)))
    assert sorted(ours) == sorted(["input_relevance"] + [f"down_in.{i}" for i in range(n_layers)])
    errors = {key: relative_error(value, lxt[f"{name}.{key}"]) for key, value in ours.items()}
    assert max(errors.values()) < RTOL, errors
    # and the rules matter: plain gradient x input differs clearly from lxt
    emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = model(inputs_embeds=emb, use_cache=False).logits
    logits[:, :-1].gather(-1, ids[:, 1:, None]).sum().backward()
    assert relative_error(emb.detach() * emb.grad, lxt[f"{name}.input_relevance"]) > 1e-2
