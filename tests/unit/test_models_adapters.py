"""Adapters and neuron sites on a tiny random model of every registered family."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn

from crane.errors import UnsupportedModelError
from crane.models import (
    Adapter,
    get_adapter,
    model_shape,
    register_adapter,
    site_hooks,
    supported_families,
    supported_model_types,
    validate_sites,
)
from crane.models import adapters as adapters_module
from crane.models.sites import decoder_layers

# Independent of the adapters: where each architecture keeps its MLP parts, and how its MLP
# computes the pre-activation and (for gated MLPs) the up branch from the MLP input x.
EXPECTED: dict[str, dict[str, Any]] = {
    "llama": {"gate": "gate_proj", "up": "up_proj", "act": "act_fn", "down": "down_proj"},
    "phi3": {"gate_up": "gate_up_proj", "act": "activation_fn", "down": "down_proj"},
    "gpt2": {"fc": "c_fc", "act": "act", "down": "c_proj"},
    "bloom": {"fc": "dense_h_to_4h", "act": "gelu_impl", "down": "dense_4h_to_h"},
    "gpt_neox": {"fc": "dense_h_to_4h", "act": "act", "down": "dense_4h_to_h"},
}
LLAMA_LIKE = {
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "gemma3",
    "olmo",
    "olmo2",
    "granite",
}


def expected_parts(model_type: str) -> dict[str, Any]:
    return EXPECTED["llama" if model_type in LLAMA_LIKE else model_type]


def input_ids(model: nn.Module, batch: int = 2, seq: int = 7) -> torch.Tensor:
    config = getattr(model.config, "text_config", None) or model.config
    generator = torch.Generator().manual_seed(1)
    # stay clear of special / image token ids at both ends of the vocabulary
    return torch.randint(4, config.vocab_size - 8, (batch, seq), generator=generator)


def all_hooks_removed(model: nn.Module) -> bool:
    return all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())


@pytest.fixture(params=supported_model_types())
def family_model(
    request: pytest.FixtureRequest, tiny_model: Callable[..., nn.Module]
) -> Iterator[tuple[str, nn.Module]]:
    """A tiny model of every registered ``model_type`` (a new type without a factory fails)."""
    model_type: str = request.param
    yield model_type, tiny_model(model_type)


def test_every_registered_type_builds_its_own_model_type(
    family_model: tuple[str, nn.Module],
) -> None:
    model_type, model = family_model
    assert model.config.model_type == model_type
    assert get_adapter(model).model_types.count(model_type) == 1


def test_validate_sites_passes_with_config_width(family_model: tuple[str, nn.Module]) -> None:
    model_type, model = family_model
    adapter = get_adapter(model)
    shape = validate_sites(model, adapter)
    expected_d_ff = 4 * 64 if model_type == "bloom" else 96
    assert (shape.n_layers, shape.d_ff) == (2, expected_d_ff)
    assert shape.n_neurons == 2 * expected_d_ff
    assert shape.model_type == model_type
    assert model_shape(model, adapter) == shape
    assert all_hooks_removed(model)


def test_sites_see_exactly_what_the_mlp_computes(family_model: tuple[str, nn.Module]) -> None:
    """down_in is the down projection's input; act is the activation's output; for gated MLPs
    down_in == act * up(x), with x recomputed from the MLP input."""
    model_type, model = family_model
    adapter = get_adapter(model)
    parts = expected_parts(model_type)
    layers = decoder_layers(model, adapter)
    mlps = [layer.mlp for layer in layers]

    mine: dict[str, dict[int, torch.Tensor]] = {"x": {}, "down_in": {}, "act": {}}
    handles = []
    for index, mlp in enumerate(mlps):
        handles.append(mlp.register_forward_pre_hook(_store(mine["x"], index, pre=True)))
        down = getattr(mlp, parts["down"])
        handles.append(down.register_forward_pre_hook(_store(mine["down_in"], index, pre=True)))
        act = getattr(mlp, parts["act"])
        handles.append(act.register_forward_hook(_store(mine["act"], index, pre=False)))

    seen: dict[str, dict[int, torch.Tensor]] = {"down_in": {}, "act": {}}

    def reader(site: str) -> Any:
        def fn(index: int, x: torch.Tensor) -> None:
            assert index not in seen[site], f"site {site} fired twice in layer {index}"
            seen[site][index] = x.detach().clone()

        return fn

    ids = input_ids(model)
    try:
        with (
            site_hooks(model, adapter, "down_in", reader("down_in")),
            site_hooks(model, adapter, "act", reader("act")),
            torch.no_grad(),
        ):
            model(input_ids=ids, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    assert all_hooks_removed(model)

    for index, mlp in enumerate(mlps):
        down_in, act = seen["down_in"][index], seen["act"][index]
        assert down_in.shape == (*ids.shape, adapter_d_ff(model, adapter))
        assert torch.equal(down_in, mine["down_in"][index])
        assert torch.equal(act, mine["act"][index])
        x = mine["x"][index]
        with torch.no_grad():
            if "gate_up" in parts:
                gate, up = getattr(mlp, parts["gate_up"])(x).chunk(2, dim=-1)
            elif "gate" in parts:
                gate, up = getattr(mlp, parts["gate"])(x), getattr(mlp, parts["up"])(x)
            else:
                gate, up = getattr(mlp, parts["fc"])(x), None
            recomputed_act = getattr(mlp, parts["act"])(gate)
        torch.testing.assert_close(act, recomputed_act, rtol=1e-5, atol=1e-6)
        if adapter.gated:
            assert up is not None
            torch.testing.assert_close(down_in, act * up, rtol=1e-5, atol=1e-6)
        else:
            assert up is None
            torch.testing.assert_close(down_in, act, rtol=1e-5, atol=1e-6)


def adapter_d_ff(model: nn.Module, adapter: Adapter) -> int:
    return model_shape(model, adapter).d_ff


def _store(target: dict[int, torch.Tensor], index: int, *, pre: bool) -> Any:
    if pre:

        def pre_hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
            target[index] = args[0].detach().clone()

        return pre_hook

    def post_hook(_m: nn.Module, _args: tuple[Any, ...], output: torch.Tensor) -> None:
        target[index] = output.detach().clone()

    return post_hook


def test_site_hooks_replacement_changes_the_output(tiny_model: Callable[..., nn.Module]) -> None:
    """Zeroing the down_in site of one layer is equivalent to zeroing the down projection input."""
    model = tiny_model("llama")
    adapter = get_adapter(model)
    ids = input_ids(model)
    with torch.no_grad():
        clean = model(input_ids=ids).logits
        with site_hooks(model, adapter, "down_in", lambda i, x: torch.zeros_like(x), layers=[1]):
            masked = model(input_ids=ids).logits
        handle = model.model.layers[1].mlp.down_proj.register_forward_pre_hook(
            lambda _m, args: (torch.zeros_like(args[0]),)
        )
        try:
            reference = model(input_ids=ids).logits
        finally:
            handle.remove()
    assert not torch.allclose(clean, masked)
    assert torch.equal(masked, reference)
    assert all_hooks_removed(model)


# --- mis-mapped adapters -----------------------------------------------------------------------


def assert_helpful(err: pytest.ExceptionInfo[UnsupportedModelError]) -> None:
    message = str(err.value)
    assert "register_adapter" in message
    for family in supported_families():
        assert family in message


def test_wrong_act_path_is_rejected(tiny_model: Callable[..., nn.Module]) -> None:
    model = tiny_model("llama")
    wrong = dataclasses.replace(get_adapter(model), act="activation")
    with pytest.raises(UnsupportedModelError, match="mlp.activation") as err:
        validate_sites(model, wrong)
    assert_helpful(err)
    assert all_hooks_removed(model)


def test_wrong_layer_path_is_rejected(tiny_model: Callable[..., nn.Module]) -> None:
    model = tiny_model("gpt2")
    wrong = dataclasses.replace(get_adapter(model), layers=("model.layers",))
    with pytest.raises(UnsupportedModelError, match="decoder-layer list") as err:
        validate_sites(model, wrong)
    assert_helpful(err)


def test_site_with_wrong_width_is_rejected(tiny_model: Callable[..., nn.Module]) -> None:
    """Pointing the down projection at gate_proj: its input has width d_model, not d_ff."""
    model = tiny_model("qwen2")
    wrong = dataclasses.replace(get_adapter(model), down_proj="gate_proj")
    with pytest.raises(UnsupportedModelError, match="expected \\[batch, seq, 96\\]") as err:
        validate_sites(model, wrong, sites=["down_in"])
    assert_helpful(err)
    assert all_hooks_removed(model)


def test_site_module_that_fires_twice_is_rejected(tiny_model: Callable[..., nn.Module]) -> None:
    """A module shared by every layer fires once per layer, so each layer's hook fires twice."""
    model = tiny_model("llama")
    shared = model.model.layers[0].mlp.act_fn
    for layer in model.model.layers:
        layer.mlp.act_fn = shared
    with pytest.raises(UnsupportedModelError, match="fired 2 times") as err:
        validate_sites(model, get_adapter(model), sites=["act"])
    assert_helpful(err)
    assert all_hooks_removed(model)


def test_unknown_model_type_is_rejected(tiny_config: Callable[[str], Any]) -> None:
    config = tiny_config("llama")
    config.model_type = "mamba"
    with pytest.raises(UnsupportedModelError, match="'mamba' is not supported") as err:
        get_adapter(config)
    assert_helpful(err)


def test_register_adapter_adds_a_family_and_refuses_silent_overwrite(
    tiny_model: Callable[..., nn.Module],
) -> None:
    model = tiny_model("llama")
    model.config.model_type = "my_llama"
    custom = Adapter("my-llama", ("my_llama",), layers=("model.layers",))
    saved = dict(adapters_module._REGISTRY)
    try:
        register_adapter(custom)
        assert get_adapter(model) is custom
        assert validate_sites(model, custom).family == "my-llama"
        with pytest.raises(UnsupportedModelError, match="overwrite=True"):
            register_adapter(dataclasses.replace(custom, family="other"))
        register_adapter(dataclasses.replace(custom, family="other"), overwrite=True)
        assert get_adapter(model).family == "other"
    finally:
        adapters_module._REGISTRY.clear()
        adapters_module._REGISTRY.update(saved)
    assert "my_llama" not in supported_model_types()


# --- hooks are always removed ------------------------------------------------------------------


@pytest.mark.parametrize("site", ["down_in", "act"])
def test_hooks_removed_when_the_body_raises(
    site: str, tiny_model: Callable[..., nn.Module]
) -> None:
    model = tiny_model("gemma3_text")
    adapter = get_adapter(model)
    with pytest.raises(RuntimeError, match="boom"):
        with site_hooks(model, adapter, site, lambda i, x: None):
            assert not all_hooks_removed(model)
            raise RuntimeError("boom")
    assert all_hooks_removed(model)


def test_hooks_removed_when_the_hook_function_raises(tiny_model: Callable[..., nn.Module]) -> None:
    model = tiny_model("gpt2")
    adapter = get_adapter(model)

    def explode(index: int, x: torch.Tensor) -> None:
        raise ValueError(f"layer {index}")

    with pytest.raises(ValueError, match="layer 0"):
        with site_hooks(model, adapter, "down_in", explode), torch.no_grad():
            model(input_ids=input_ids(model))
    assert all_hooks_removed(model)


def test_hooks_removed_when_registration_fails_halfway(
    tiny_model: Callable[..., nn.Module],
) -> None:
    """Layer 1 lacks its activation module: layer 0's hook, already registered, is removed."""
    model = tiny_model("llama")
    del model.model.layers[1].mlp.act_fn
    with pytest.raises(UnsupportedModelError, match="mlp.act_fn"):
        with site_hooks(model, get_adapter(model), "act", lambda i, x: None):
            pass  # pragma: no cover - never reached
    assert all_hooks_removed(model)


def test_unknown_site_is_a_config_error(tiny_model: Callable[..., nn.Module]) -> None:
    from crane.errors import ConfigError

    model = tiny_model("llama")
    with pytest.raises(ConfigError, match="down_in, act"):
        with site_hooks(model, get_adapter(model), "resid", lambda i, x: None):
            pass  # pragma: no cover - never reached
