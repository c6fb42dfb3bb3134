"""The AttnLRP rules one by one: what each promises (conservation, gradient factors), checked
on tiny float64 models inside crane.lrp.attnlrp."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from crane.lrp import attnlrp, fused_qkv_columns, identity_rule, scale_gradient
from crane.lrp.norms import layer_norm, olmo_layer_norm
from crane.models import get_adapter
from crane.models.adapters import resolve
from crane.models.sites import decoder_layers, down_proj, site_module


def input_ids(model: nn.Module, batch: int = 2, seq: int = 7) -> torch.Tensor:
    config = getattr(model.config, "text_config", None) or model.config
    generator = torch.Generator().manual_seed(1)
    return torch.randint(4, config.vocab_size - 8, (batch, seq), generator=generator)


def explain(model: nn.Module, ids: torch.Tensor) -> None:
    """Backward of f = sum of gold next-token logits from the input embeddings."""
    emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = model(inputs_embeds=emb, use_cache=False).logits
    logits[:, :-1].gather(-1, ids[:, 1:, None]).sum().backward()


class Recorder:
    """Per-element relevance ``value * grad`` of tensors seen by hooks, by name."""

    def __init__(self) -> None:
        self.relevance: dict[str, torch.Tensor] = {}

    def keep(self, name: str, tensor: torch.Tensor) -> None:
        value = tensor.detach()
        tensor.register_hook(lambda g: self.relevance.__setitem__(name, value * g))

    def output(self, name: str) -> Callable[..., None]:
        return lambda _m, _a, out: self.keep(name, out)

    def input(self, name: str) -> Callable[..., None]:
        return lambda _m, args, *_: self.keep(name, args[0])


def float64_model(tiny_model: Callable[..., nn.Module], model_type: str) -> nn.Module:
    model = tiny_model(model_type).double()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


# --------------------------------------------------------------------------------------------
# primitives


def test_identity_rule_gradient_is_ratio_times_incoming() -> None:
    x = torch.tensor([-2.0, -0.5, 0.0, 0.3, 4.0], dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.silu(x)
    out = identity_rule(y, x)
    assert torch.equal(out, y)
    g = torch.tensor([1.0, -2.0, 3.0, 0.5, 1.5], dtype=torch.float64)
    out.backward(g)
    assert torch.equal(x.grad, (y / (x + 1e-10) * g).detach())
    assert torch.allclose(x * x.grad, y * g)  # R_in = R_out


def test_identity_rule_float16_has_no_nan_at_zero() -> None:
    x = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float16, requires_grad=True)
    identity_rule(torch.nn.functional.gelu(x), x).backward(torch.ones(3, dtype=torch.float16))
    assert torch.isfinite(x.grad).all() and x.grad[0] == 0


def test_scale_gradient_is_exact() -> None:
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    out = scale_gradient(x, 4.0)
    assert torch.equal(out, x)
    g = torch.randn(5, dtype=torch.float64)
    out.backward(g)
    assert torch.equal(x.grad, g * 0.25)


def test_fused_qkv_columns() -> None:
    blocks = fused_qkv_columns(4 * 2 + 2 * 1 * 2, heads=4, kv_heads=1, layout="blocks")
    assert blocks.tolist() == [0.25] * 8 + [0.25] * 2 + [0.5] * 2
    heads = fused_qkv_columns(2 * 3 * 2, heads=2, kv_heads=2, layout="heads")
    assert heads.tolist() == [0.25, 0.25, 0.25, 0.25, 0.5, 0.5] * 2
    with pytest.raises(ValueError):
        fused_qkv_columns(10, heads=4, kv_heads=2, layout="blocks")
    with pytest.raises(ValueError):
        fused_qkv_columns(12, heads=2, kv_heads=2, layout="interleaved")


# --------------------------------------------------------------------------------------------
# MLP: identity rule at the activation, uniform rule through the gated product


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "qwen3", "gpt2", "gpt_neox"])
def test_identity_rule_conserves_at_the_activation(
    model_type: str, tiny_model: Callable[..., nn.Module]
) -> None:
    model = float64_model(tiny_model, model_type)
    adapter = get_adapter(model)
    recorder = Recorder()
    with attnlrp(model):
        for i, layer in enumerate(decoder_layers(model, adapter)):
            act = site_module(layer, adapter, "act")
            act.register_forward_hook(recorder.input(f"in.{i}"))
            act.register_forward_hook(recorder.output(f"out.{i}"))
        explain(model, input_ids(model))
    for module in model.modules():
        module._forward_hooks.clear()
    for i in range(len(decoder_layers(model, adapter))):
        r_in, r_out = recorder.relevance[f"in.{i}"], recorder.relevance[f"out.{i}"]
        # per element, up to the 1e-10 stabiliser (felt where |x| is tiny)
        torch.testing.assert_close(r_in, r_out, rtol=1e-6, atol=1e-10)
        assert r_out.abs().sum() > 0


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "olmo2"])
def test_uniform_rule_splits_the_gated_product(
    model_type: str, tiny_model: Callable[..., nn.Module]
) -> None:
    """R_gate-path + R_up-path = R_product per element, each half of it; the act site holds
    R_down_in / 2."""
    model = float64_model(tiny_model, model_type)
    adapter = get_adapter(model)
    recorder = Recorder()
    handles = []
    with attnlrp(model):
        for i, layer in enumerate(decoder_layers(model, adapter)):
            mlp = resolve(layer, adapter.mlp)
            handles += [
                site_module(layer, adapter, "act").register_forward_hook(
                    recorder.output(f"act.{i}")
                ),
                mlp.up_proj.register_forward_hook(recorder.output(f"up.{i}")),
                down_proj(layer, adapter).register_forward_pre_hook(recorder.input(f"down_in.{i}")),
            ]
        explain(model, input_ids(model))
    for handle in handles:
        handle.remove()
    for i in range(len(decoder_layers(model, adapter))):
        r_act, r_up = recorder.relevance[f"act.{i}"], recorder.relevance[f"up.{i}"]
        r_product = recorder.relevance[f"down_in.{i}"]
        torch.testing.assert_close(r_act + r_up, r_product, rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(r_act, r_product / 2, rtol=1e-10, atol=1e-14)
        assert r_product.abs().sum() > 0


@pytest.mark.parametrize("model_type", ["llama", "qwen3", "gemma3_text"])
def test_down_in_relevance_sums_to_the_mlp_output_relevance(
    model_type: str, tiny_model: Callable[..., nn.Module]
) -> None:
    """With a bias-free down projection, sum_j R_down_in,j = relevance of the MLP output."""
    model = float64_model(tiny_model, model_type)
    adapter = get_adapter(model)
    recorder = Recorder()
    handles = []
    with attnlrp(model):
        for i, layer in enumerate(decoder_layers(model, adapter)):
            down = down_proj(layer, adapter)
            assert down.bias is None
            handles += [
                down.register_forward_pre_hook(recorder.input(f"in.{i}")),
                down.register_forward_hook(recorder.output(f"out.{i}")),
            ]
        explain(model, input_ids(model))
    for handle in handles:
        handle.remove()
    for i in range(len(decoder_layers(model, adapter))):
        per_neuron = recorder.relevance[f"in.{i}"].sum((0, 1))  # what the collector keeps
        total_out = recorder.relevance[f"out.{i}"].sum()
        torch.testing.assert_close(per_neuron.sum(), total_out, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------------------------
# Norms: the scale is a constant


@pytest.mark.parametrize(
    ("model_type", "path"),
    [
        ("llama", "model.norm"),
        ("qwen3", "model.layers.0.self_attn.q_norm"),
        ("gemma3_text", "model.layers.1.post_feedforward_layernorm"),
        ("olmo2", "model.layers.0.self_attn.k_norm"),
        ("phi3", "model.layers.0.input_layernorm"),
    ],
)
def test_rms_norm_with_detached_scale_conserves(
    model_type: str, path: str, tiny_model: Callable[..., nn.Module]
) -> None:
    model = float64_model(tiny_model, model_type)
    norm = resolve(model, path)
    assert norm is not None
    with torch.no_grad():
        for param in norm.parameters():
            param.add_(0.1 * torch.randn(param.shape, dtype=param.dtype))
    shape = tuple(norm.weight.shape)
    x = torch.randn(3, 5, *shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 5, *shape, dtype=torch.float64)
    with attnlrp(model):
        y = norm(x)
        y.backward(g)
    # per element; these norms compute in float32 even in a float64 model (as in transformers)
    torch.testing.assert_close(x * x.grad, y.detach() * g, rtol=1e-5, atol=1e-7)
    # the gradient is that of the linear map x -> x * c * w with c = c(x) held constant
    c = (norm(x) / x).detach()
    torch.testing.assert_close(x.grad, c * g, rtol=1e-5, atol=1e-7)


def test_layer_norm_rule_keeps_the_mean_and_conserves_per_token() -> None:
    """LayerNorm with detached std: bias-free, the relevance of each token is conserved (the
    mean subtraction moves relevance between features, not out of the token)."""
    ln = nn.LayerNorm(16, bias=False, dtype=torch.float64)
    with torch.no_grad():
        ln.weight.add_(0.1 * torch.randn(16, dtype=torch.float64))
    x = (torch.randn(4, 16, dtype=torch.float64) + 1.0).requires_grad_(True)
    g = torch.randn(4, 16, dtype=torch.float64)
    y = layer_norm(ln, x)
    torch.testing.assert_close(y, ln(x))
    y.backward(g)
    torch.testing.assert_close((x * x.grad).sum(-1), (y.detach() * g).sum(-1))
    std = x.var(-1, unbiased=False, keepdim=True).add(ln.eps).sqrt().detach()
    gw = g * ln.weight.detach() / std
    torch.testing.assert_close(x.grad, gw - gw.mean(-1, keepdim=True))  # centred, std constant


def test_olmo_layer_norm_rule_matches_its_forward(tiny_model: Callable[..., nn.Module]) -> None:
    model = tiny_model("olmo")
    norm = model.model.norm
    x = torch.randn(2, 3, model.config.hidden_size)
    torch.testing.assert_close(olmo_layer_norm(norm, x), norm(x), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Attention: 1/4 at q and k, 1/2 at v


class _CaptureAttention:
    """Stands in for a modeling module's ALL_ATTENTION_FUNCTIONS: lets the gradient reach only
    one of q, k, v (the others are detached at the attention function's input)."""

    def __init__(self, inner: Any, keep: str) -> None:
        self.inner, self.keep = inner, keep

    def get_interface(self, impl: str, default: Callable[..., Any]) -> Callable[..., Any]:
        fn = self.inner.get_interface(impl, default)

        def attention(module: nn.Module, q: Any, k: Any, v: Any, *args: Any, **kwargs: Any) -> Any:
            q, k, v = (
                t if name == self.keep else t.detach()
                for name, t in zip("qkv", (q, k, v), strict=True)
            )
            return fn(module, q, k, v, *args, **kwargs)

        return attention

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _projection_modules(model: nn.Module) -> dict[str, nn.Module]:
    adapter = get_adapter(model)
    attn = resolve(decoder_layers(model, adapter)[0], adapter.attn)
    if adapter.qkv_proj:
        return {"qkv": resolve(attn, adapter.qkv_proj)}
    return {
        n: resolve(attn, p)
        for n, p in zip("qkv", (adapter.q_proj, adapter.k_proj, adapter.v_proj), strict=True)
    }


@pytest.mark.parametrize(
    "model_type", ["llama", "qwen3", "olmo2", "gemma2", "gpt2", "phi3", "gpt_neox"]
)
@pytest.mark.parametrize("keep", ["q", "k", "v"])
def test_attention_gradient_factors_reach_the_right_columns(
    model_type: str,
    keep: str,
    tiny_model: Callable[..., nn.Module],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the gradient allowed through only one of q, k, v at the attention function, the
    projection output's gradient is that of the rule's output times 1/4 (q, k) or 1/2 (v) on
    exactly the columns that feed it, and zero elsewhere (fused projections included)."""
    model = float64_model(tiny_model, model_type)
    adapter = get_adapter(model)
    attn = resolve(decoder_layers(model, adapter)[0], adapter.attn)
    modeling = sys.modules[type(attn).__module__]
    monkeypatch.setattr(
        modeling,
        "ALL_ATTENTION_FUNCTIONS",
        _CaptureAttention(modeling.ALL_ATTENTION_FUNCTIONS, keep),
    )
    raw, ruled = Recorder(), Recorder()
    projections = _projection_modules(model)
    with attnlrp(model):
        for name, module in projections.items():
            module.register_forward_hook(raw.output(name), prepend=True)  # before the rule
            module.register_forward_hook(ruled.output(name))  # after the rule
        explain(model, input_ids(model))
    for module in projections.values():
        module._forward_hooks.clear()
    factor = 0.5 if keep == "v" else 0.25
    for name in projections:
        if name not in raw.relevance:  # a separate projection that got no gradient at all
            assert name != keep
            continue
        # relevance ratios equal gradient ratios (same values underneath)
        r_raw, r_ruled = raw.relevance[name], ruled.relevance[name]
        reached = r_ruled.abs().sum((0, 1)) > 0
        assert reached.any() == (name in (keep, "qkv"))
        torch.testing.assert_close(r_raw, r_ruled * factor * reached, rtol=0, atol=0)


def test_bloom_fused_columns_follow_its_own_split(tiny_model: Callable[..., nn.Module]) -> None:
    """BLOOM computes attention inline, so the column factors are checked through the model's
    own split of the fused projection output."""
    model = tiny_model("bloom")
    attn = model.transformer.h[0].self_attention
    width = attn.query_key_value.out_features
    columns = fused_qkv_columns(width, model.config.n_head, model.config.n_head, "heads")
    q, k, v = attn._reshape(columns.view(1, 1, width))
    assert (q == 0.25).all() and (k == 0.25).all() and (v == 0.5).all()
