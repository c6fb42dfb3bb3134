"""crane.lrp.attnlrp as a patch: unchanged forward, full restoration, support decisions, and
the order of hooks that crane's relevance reader relies on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from crane.errors import ConfigError, UnsupportedModelError
from crane.lrp import NormRule, attnlrp, lrp_support, norm_rules, register_norm_rule
from crane.lrp import norms as norms_module
from crane.models import get_adapter, supported_model_types
from crane.models.sites import decoder_layers, down_proj, site_module

SUPPORTED = supported_model_types()
HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


def input_ids(model: nn.Module, batch: int = 2, seq: int = 7) -> torch.Tensor:
    config = getattr(model.config, "text_config", None) or model.config
    generator = torch.Generator().manual_seed(1)
    return torch.randint(4, config.vocab_size - 8, (batch, seq), generator=generator)


def gold_logit_sum(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return logits[:, :-1].gather(-1, ids[:, 1:, None]).sum()


def normal_backward(model: nn.Module, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Logits, input-embedding gradient and every parameter gradient of a plain backward."""
    model.zero_grad(set_to_none=True)
    emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = model(inputs_embeds=emb, use_cache=False).logits
    (gold_logit_sum(logits, ids) + logits.pow(2).mean()).backward()
    out = {"logits": logits.detach(), "input_grad": emb.grad}
    out.update({f"grad.{n}": p.grad for n, p in model.named_parameters() if p.grad is not None})
    model.zero_grad(set_to_none=True)
    return out


def snapshot(model: nn.Module) -> dict[str, Any]:
    """Per module: its instance attribute names, hook counts and training flag."""
    state = {}
    for name, module in model.named_modules():
        state[name] = (
            sorted(vars(module)),
            tuple(len(getattr(module, d, {})) for d in HOOK_DICTS),
            module.training,
        )
    return state


def assert_no_trace(model: nn.Module, before: dict[str, Any]) -> None:
    assert snapshot(model) == before
    for module in model.modules():
        assert "forward" not in vars(module) and "_norm" not in vars(module)
        assert "_old_forward" not in vars(module)


def assert_bit_identical(patched: nn.Module, reference: nn.Module, ids: torch.Tensor) -> None:
    ours, theirs = normal_backward(patched, ids), normal_backward(reference, ids)
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key


def run_attnlrp(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """One forward + backward under the patch; returns the input relevance."""
    emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    gold_logit_sum(model(inputs_embeds=emb, use_cache=False).logits, ids).backward()
    return (emb * emb.grad).sum(-1)


@pytest.mark.parametrize("model_type", SUPPORTED)
def test_every_builtin_family_is_supported(
    model_type: str, tiny_model: Callable[..., nn.Module]
) -> None:
    ok, reason = lrp_support(tiny_model(model_type))
    assert ok, reason
    assert model_type in reason


@pytest.mark.parametrize("model_type", SUPPORTED)
def test_forward_unchanged_under_the_patch(
    model_type: str, tiny_model: Callable[..., nn.Module]
) -> None:
    model = tiny_model(model_type)
    ids = input_ids(model)
    with torch.no_grad():
        reference = model(input_ids=ids, use_cache=False).logits
    with attnlrp(model):
        with_grad = model(input_ids=ids, use_cache=False).logits  # rule hooks active
        with torch.no_grad():
            without_grad = model(input_ids=ids, use_cache=False).logits
    torch.testing.assert_close(with_grad.detach(), reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(without_grad, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_type", SUPPORTED)
def test_patch_changes_the_gradient_and_leaves_no_trace(
    model_type: str, tiny_model: Callable[..., nn.Module]
) -> None:
    patched, reference = tiny_model(model_type), tiny_model(model_type)
    ids = input_ids(patched)
    before = snapshot(patched)
    plain = normal_backward(reference, ids)["input_grad"]
    with attnlrp(patched):
        emb = patched.get_input_embeddings()(ids).detach().requires_grad_(True)
        logits = patched(inputs_embeds=emb, use_cache=False).logits
        (gold_logit_sum(logits, ids) + logits.pow(2).mean()).backward()
        patched.zero_grad(set_to_none=True)
    assert not torch.allclose(emb.grad, plain, rtol=1e-3, atol=1e-6)  # the rules are active
    assert_no_trace(patched, before)
    assert_bit_identical(patched, reference, ids)


@pytest.mark.parametrize("model_type", ["llama", "gemma3", "gpt2", "phi3", "bloom"])
def test_restored_after_an_exception(model_type: str, tiny_model: Callable[..., nn.Module]) -> None:
    patched, reference = tiny_model(model_type), tiny_model(model_type)
    ids = input_ids(patched)
    before = snapshot(patched)
    with pytest.raises(RuntimeError, match="inside the patch"):
        with attnlrp(patched):
            run_attnlrp(patched, ids)
            raise RuntimeError("inside the patch")
    assert_no_trace(patched, before)
    assert_bit_identical(patched, reference, ids)
    with attnlrp(patched):  # and it can be entered again
        pass
    assert_no_trace(patched, before)


def test_training_flags_restored(tiny_model: Callable[..., nn.Module]) -> None:
    model = tiny_model("gpt2").train()
    decoder_layers(model, get_adapter(model))[1].eval()
    before = {name: m.training for name, m in model.named_modules()}
    with attnlrp(model):
        assert not any(m.training for m in model.modules())  # no dropout while explaining
    assert {name: m.training for name, m in model.named_modules()} == before


def test_nesting_is_refused_and_the_outer_patch_survives(
    tiny_model: Callable[..., nn.Module],
) -> None:
    model = tiny_model("llama")
    ids = input_ids(model)
    with attnlrp(model):
        outer = run_attnlrp(model, ids)
        with pytest.raises(ConfigError, match="already inside"):
            with attnlrp(model):
                pass
        torch.testing.assert_close(run_attnlrp(model, ids), outer, rtol=0, atol=0)


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "phi3", "gpt2", "gpt_neox"])
def test_reader_sees_the_full_gradient_whenever_it_registers(
    model_type: str, tiny_model: Callable[..., nn.Module]
) -> None:
    """A reader pre-hook on the down projection, registered before or after entering the
    patch, sees the tensor whose gradient is the full (pre-halving) gradient."""
    model = tiny_model(model_type).double()
    adapter = get_adapter(model)
    ids = input_ids(model)
    downs = [down_proj(layer, adapter) for layer in decoder_layers(model, adapter)]

    def read(store: dict[int, torch.Tensor]) -> list[Any]:
        def make(index: int) -> Any:
            def pre_hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
                a = args[0]
                a.register_hook(lambda g: store.__setitem__(index, (a.detach() * g).sum((0, 1))))

            return pre_hook

        return [d.register_forward_pre_hook(make(i)) for i, d in enumerate(downs)]

    early: dict[int, torch.Tensor] = {}
    late: dict[int, torch.Tensor] = {}
    handles = read(early)
    with attnlrp(model):
        handles += read(late)
        run_attnlrp(model, ids)
    for handle in handles:
        handle.remove()
    assert sorted(early) == sorted(late) == list(range(len(downs)))
    for index in early:
        assert torch.equal(early[index], late[index])


class WeirdNorm(nn.Module):
    """A norm class crane has no rule for (RMSNorm without float32 upcast)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim) + 0.1 * torch.randn(dim))
        self.eps = 1e-6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


def _with_weird_norm(model: nn.Module) -> nn.Module:
    model.model.norm = WeirdNorm(model.config.hidden_size)
    return model


def test_unknown_norm_is_named_with_a_way_out(tiny_model: Callable[..., nn.Module]) -> None:
    model = _with_weird_norm(tiny_model("llama"))
    ok, reason = lrp_support(model)
    assert not ok
    for words in ("model.norm", "WeirdNorm", "--method gradxact", "register_norm_rule"):
        assert words in reason
    before = snapshot(model)
    with pytest.raises(UnsupportedModelError, match="WeirdNorm"):
        with attnlrp(model):
            pass
    assert_no_trace(model, before)


def test_registered_rule_is_used_and_checked(
    tiny_model: Callable[..., nn.Module], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _with_weird_norm(tiny_model("llama"))

    def right(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + module.eps)
        return module.weight * x * scale.detach()

    def wrong(module: nn.Module, x: torch.Tensor) -> torch.Tensor:  # forgets the weight
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + module.eps).detach()

    monkeypatch.setitem(norms_module._RULES, "WeirdNorm", NormRule(wrong))
    ok, reason = lrp_support(model)
    assert not ok and "does not reproduce" in reason
    monkeypatch.setitem(norms_module._RULES, "WeirdNorm", NormRule(right))
    assert lrp_support(model)[0]
    norm = model.model.norm
    x = torch.randn(2, 3, model.config.hidden_size, requires_grad=True)
    g = torch.randn(2, 3, model.config.hidden_size)
    with attnlrp(model):
        assert "forward" in vars(norm)
        norm(x).backward(g)
    expected = norm.weight * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * g
    torch.testing.assert_close(x.grad, expected.detach())
    assert "forward" not in vars(norm)


def test_register_norm_rule_refuses_silent_replacement() -> None:
    rules = norm_rules()
    assert {"LlamaRMSNorm", "Gemma3RMSNorm", "LayerNorm", "OlmoLayerNorm"} <= set(rules)
    with pytest.raises(UnsupportedModelError, match="already registered"):
        register_norm_rule("LlamaRMSNorm", NormRule(lambda m, x: x))
    with pytest.raises(ValueError, match="method"):
        register_norm_rule("X", NormRule(lambda m, x: x, method="__call__"))
    assert norm_rules() == rules


@pytest.mark.parametrize(
    ("model_type", "change", "words"),
    [
        ("olmo", {"clip_qkv": 8.0}, "clip_qkv"),
        ("bloom", {"pretraining_tp": 2, "slow_but_exact": True}, "slow_but_exact"),
    ],
)
def test_unsupported_configurations(
    model_type: str,
    change: dict[str, Any],
    words: str,
    tiny_config: Callable[[str], Any],
) -> None:
    from transformers import AutoModelForCausalLM

    config = tiny_config(model_type)
    for key, value in change.items():
        setattr(config, key, value)
    model = AutoModelForCausalLM.from_config(config).eval()
    ok, reason = lrp_support(model)
    assert not ok and words in reason and "--method gradxact" in reason
    with pytest.raises(UnsupportedModelError, match=words):
        with attnlrp(model):
            pass


def test_activation_that_is_not_elementwise_fails_loudly(
    tiny_model: Callable[..., nn.Module],
) -> None:
    model = tiny_model("gpt2")
    adapter = get_adapter(model)
    act = site_module(decoder_layers(model, adapter)[0], adapter, "act")
    with attnlrp(model):
        # runs before the rule's hook: the rule now sees an activation that changes the shape
        handle = act.register_forward_hook(lambda m, a, out: out[..., :-1], prepend=True)
        try:
            with pytest.raises(UnsupportedModelError, match="element-wise"):
                run_attnlrp(model, input_ids(model))
        finally:
            handle.remove()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "gpt2", "olmo"])
def test_half_precision_keeps_the_forward_and_gives_finite_relevance(
    model_type: str, dtype: torch.dtype, tiny_model: Callable[..., nn.Module]
) -> None:
    model = tiny_model(model_type).to(dtype)
    ids = input_ids(model)
    with torch.no_grad():
        reference = model(input_ids=ids, use_cache=False).logits
    with attnlrp(model):
        emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        logits = model(inputs_embeds=emb, use_cache=False).logits
        gold_logit_sum(logits, ids).backward()
    torch.testing.assert_close(logits.detach(), reference, rtol=1e-2, atol=1e-2)
    relevance = emb.detach() * emb.grad
    assert torch.isfinite(relevance).all() and relevance.abs().sum() > 0
