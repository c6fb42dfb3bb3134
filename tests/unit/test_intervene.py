"""Masking: an oracle that edits the down-projection weights by hand must give the same outputs."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers as T

from crane.errors import ConfigError, NeuronSetError
from crane.intervene import mask_neurons, site_means
from crane.models import get_adapter
from crane.models.sites import decoder_layers, down_proj_weight
from crane.neurons import NeuronSet

MASK = {0: [1, 5, 17], 1: [0, 95]}


def _llama() -> torch.nn.Module:
    torch.manual_seed(0)
    config = T.LlamaConfig(
        vocab_size=101, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2,
    )
    return T.LlamaForCausalLM(config).eval()


def _gpt2() -> torch.nn.Module:
    torch.manual_seed(0)
    config = T.GPT2Config(vocab_size=101, n_embd=64, n_layer=2, n_head=4, n_inner=96)
    return T.GPT2LMHeadModel(config).eval()


IDS = torch.tensor([[3, 14, 15, 92, 65, 35], [8, 9, 7, 9, 3, 2]])


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def _edited(model: torch.nn.Module, factor: float, fill: torch.Tensor | None = None) -> torch.nn.Module:
    """Oracle: scale the down-projection columns of the masked neurons (and add mean*column)."""
    oracle = copy.deepcopy(model)
    adapter = get_adapter(oracle)
    layers = decoder_layers(oracle, adapter)
    with torch.no_grad():
        for layer, indices in MASK.items():
            weight = down_proj_weight(layers[layer], adapter)  # [d_model, d_ff] view
            down = layers[layer].mlp.down_proj if hasattr(layers[layer].mlp, "down_proj") else layers[layer].mlp.c_proj
            if fill is not None:
                shift = weight[:, indices] @ fill[layer, indices]
                if getattr(down, "bias", None) is None:
                    down.bias = torch.nn.Parameter(torch.zeros(weight.shape[0]))
                down.bias += shift
            weight[:, indices] *= factor
    return oracle


@pytest.mark.parametrize("build", [_llama, _gpt2])
@pytest.mark.parametrize("mode,alpha", [("zero", 0.0), ("scale", 0.5), ("scale", 2.0)])
def test_masking_equals_weight_edit(build, mode, alpha) -> None:
    model = build()
    factor = 0.0 if mode == "zero" else alpha
    expected = _logits(_edited(model, factor))
    with mask_neurons(model, MASK, mode=mode, alpha=alpha):
        got = _logits(model)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, _logits(model), atol=1e-4), "masking changed nothing"


@pytest.mark.parametrize("build", [_llama, _gpt2])
def test_mean_masking_equals_weight_edit(build) -> None:
    model = build()
    means = torch.randn(2, 96)
    expected = _logits(_edited(model, 0.0, fill=means))
    with mask_neurons(model, MASK, mode="mean", means=means):
        got = _logits(model)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_masked_mlp_recomputed_by_hand() -> None:
    """Gated MLP of layer 0 recomputed from its input with the masked neurons zeroed."""
    model = _llama()
    mlp = model.model.layers[0].mlp
    captured: dict[str, torch.Tensor] = {}
    handle_in = mlp.register_forward_pre_hook(lambda m, a: captured.__setitem__("x", a[0]))
    handle_out = mlp.register_forward_hook(lambda m, a, o: captured.__setitem__("y", o))
    try:
        with mask_neurons(model, MASK):
            _logits(model)
    finally:
        handle_in.remove()
        handle_out.remove()
    x = captured["x"]
    hidden = torch.nn.functional.silu(x @ mlp.gate_proj.weight.T) * (x @ mlp.up_proj.weight.T)
    hidden[..., MASK[0]] = 0.0
    torch.testing.assert_close(captured["y"], hidden @ mlp.down_proj.weight.T, rtol=1e-5, atol=1e-6)


def test_hooks_removed_on_exit_and_error() -> None:
    model = _llama()
    before = _logits(model)
    with pytest.raises(RuntimeError):
        with mask_neurons(model, MASK):
            raise RuntimeError("boom")
    torch.testing.assert_close(_logits(model), before, rtol=0, atol=0)
    for layer in model.model.layers:
        assert not layer.mlp.down_proj._forward_pre_hooks


def test_neuron_set_languages_and_act_site() -> None:
    model = _llama()
    neuron_set = NeuronSet({"en": {0: [1, 5, 17]}, "zh": {1: [0, 95]}}, site="down_in", n_layers=2, d_ff=96)
    with mask_neurons(model, neuron_set):
        both = _logits(model)
    with mask_neurons(model, neuron_set, languages=["en", "zh"]):
        explicit = _logits(model)
    torch.testing.assert_close(both, explicit, rtol=0, atol=0)
    with mask_neurons(model, neuron_set, languages=["en"]):
        only_en = _logits(model)
    assert not torch.allclose(only_en, both)
    # act-site masking of a gated MLP zeroes act(gate), which also zeroes the product.
    with mask_neurons(model, MASK, site="act"):
        act_site = _logits(model)
    torch.testing.assert_close(act_site, _logits(_edited(model, 0.0)), rtol=1e-5, atol=1e-5)


def test_bad_masks_raise_clear_errors() -> None:
    model = _llama()
    with pytest.raises(NeuronSetError, match="do not fit"):
        with mask_neurons(model, {0: [96]}):
            pass
    with pytest.raises(NeuronSetError, match="layers"):
        with mask_neurons(model, NeuronSet({"en": {5: [0]}}, n_layers=6, d_ff=96)):
            pass
    with pytest.raises(ConfigError, match="mode"):
        with mask_neurons(model, MASK, mode="explode"):
            pass
    with pytest.raises(ConfigError, match="means"):
        with mask_neurons(model, MASK, mode="mean"):
            pass


def test_site_means_match_manual_average() -> None:
    model = _llama()
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    means = site_means(model, [{"input_ids": IDS, "attention_mask": mask}])
    captured: list[torch.Tensor] = []
    down = model.model.layers[1].mlp.down_proj
    handle = down.register_forward_pre_hook(lambda m, a: captured.append(a[0]))
    try:
        with torch.no_grad():
            model(input_ids=IDS, attention_mask=mask)
    finally:
        handle.remove()
    manual = captured[0][mask.bool()].mean(dim=0)
    torch.testing.assert_close(means[1], manual, rtol=1e-5, atol=1e-6)
