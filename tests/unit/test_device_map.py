"""Big-model paths on the CPU: accelerate's dispatch (device_map with disk offload, cpu_offload),
half precision, and gradient checkpointing give the statistics of the plain float32 model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from crane.activations import ActivationOptions, collect_activations
from crane.collect import RelevanceOptions, checkpointed_layers, collect_relevance
from crane.data.corpus import Corpus
from crane.evaluation.bpb import masking_matrix
from crane.intervene import mask_neurons, site_means
from crane.models.adapters import get_adapter
from crane.models.placement import input_device, module_device
from crane.models.sites import decoder_layers, site_hooks, validate_sites
from crane.neurons import NeuronSet
from crane.stats import Stats

TEXTS = {
    "en": [
        "All human beings are born free and equal in dignity and rights.",
        "The quick brown fox jumps over the lazy dog.",
        "Everyone has the right to life, liberty and security of person.",
    ],
    "vi": [
        "Tất cả mọi người sinh ra đều được tự do và bình đẳng.",
        "Không ai bị bắt làm nô lệ.",
        "Mọi người đều bình đẳng trước pháp luật.",
    ],
}
CORPUS = Corpus(TEXTS)
META = torch.device("meta")

# what goes where: layer 0, the final norm and (when not tied to the embeddings) the head are
# offloaded to disk (their parameters live on the meta device and load for each forward)
DEVICE_MAPS = {
    "llama": {
        "model.embed_tokens": "disk",
        "model.rotary_emb": "cpu",
        "model.layers.0": "disk",
        "model.layers.1": "cpu",
        "model.norm": "disk",
        "lm_head": "disk",
    },
    "gemma3_text": {  # tied embeddings: accelerate keeps them with the head
        "model.embed_tokens": "cpu",
        "model.rotary_emb": "cpu",
        "model.layers.0": "disk",
        "model.layers.1": "cpu",
        "model.norm": "disk",
        "lm_head": "cpu",
    },
}


def _frozen(model: Any) -> Any:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def saved(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Callable[..., Any]
) -> dict[str, Path]:
    out = {}
    for model_type in DEVICE_MAPS:
        path = tmp_path_factory.mktemp(model_type)
        tiny_model(model_type).save_pretrained(path)
        out[model_type] = path
    return out


def _plain(path: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return _frozen(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32))


def _placed(path: Path, model_type: str, how: str, tmp_path: Path) -> Any:
    """The same checkpoint under accelerate's hooks: transformers' ``device_map`` loading with
    disk offload, or ``accelerate.cpu_offload`` (every weight on meta, loaded per module)."""
    from transformers import AutoModelForCausalLM

    if how == "device_map":
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=torch.float32,
            device_map=DEVICE_MAPS[model_type],
            offload_folder=str(tmp_path / "offload"),
        )
    else:
        from accelerate import cpu_offload

        model = cpu_offload(_plain(path), execution_device=torch.device("cpu"))
    model = _frozen(model)
    assert any(p.device == META for p in model.parameters()), "nothing was offloaded"
    assert any(hasattr(m, "_hf_hook") for m in model.modules())
    return model


def assert_same(a: Stats, b: Stats, *, atol: float = 1e-9) -> None:
    assert a.language_codes == b.language_codes
    for lang in a.language_codes:
        assert a[lang].counts == b[lang].counts
        assert a[lang].tensors.keys() == b[lang].tensors.keys()
        for name, value in a[lang].tensors.items():
            assert b[lang].tensors[name].dtype == torch.float64
            torch.testing.assert_close(b[lang].tensors[name], value, rtol=1e-6, atol=atol)


def _no_crane_hooks(model: Any) -> bool:
    return not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("how", ["device_map", "cpu_offload"])
@pytest.mark.parametrize("model_type", list(DEVICE_MAPS))
def test_statistics_under_accelerate_dispatch(
    tiny_tokenizer: Any, saved: dict[str, Path], model_type: str, how: str, tmp_path: Path
) -> None:
    plain = _plain(saved[model_type])
    placed = _placed(saved[model_type], model_type, how, tmp_path)
    if how == "device_map":
        embeddings_offloaded = DEVICE_MAPS[model_type]["model.embed_tokens"] == "disk"
        assert (placed.get_input_embeddings().weight.device == META) == embeddings_offloaded
    assert input_device(placed) == torch.device("cpu")
    validate_sites(placed, get_adapter(placed))  # what load_model runs, head check included
    for method in ("attnlrp", "gradxact"):
        options = RelevanceOptions(method=method, shard_texts=2, batch_size=2)
        assert_same(
            collect_relevance(plain, tiny_tokenizer, CORPUS, options=options),
            collect_relevance(placed, tiny_tokenizer, CORPUS, options=options),
        )
    options_a = ActivationOptions(shard_texts=2, batch_size=2)
    ref = collect_activations(plain, tiny_tokenizer, CORPUS, options=options_a)
    got = collect_activations(placed, tiny_tokenizer, CORPUS, options=options_a)
    assert_same(ref, got)
    for lang in TEXTS:
        for key, value in ref.texts[lang].items():
            torch.testing.assert_close(got.texts[lang][key], value, rtol=1e-6, atol=1e-9)
    assert ref.meta["down_norms_sha256"] == got.meta["down_norms_sha256"]
    # the model is as it was: weights still offloaded, no crane hooks left
    assert any(p.device == META for p in placed.parameters())
    assert _no_crane_hooks(placed)


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_masked_bits_per_byte_under_device_map(
    tiny_tokenizer: Any, saved: dict[str, Path], tmp_path: Path, mode: str
) -> None:
    plain = _plain(saved["llama"])
    placed = _placed(saved["llama"], "llama", "device_map", tmp_path)
    assert module_device(
        decoder_layers(placed, get_adapter(placed))[0].mlp.down_proj
    ) == torch.device("cpu")
    neurons = NeuronSet(
        {"en": {0: [1, 5, 40], 1: [2, 90]}, "vi": {0: [7], 1: [3, 4, 60]}}, "down_in", 2, 96
    )
    batches = [tiny_tokenizer(TEXTS["en"], return_tensors="pt", padding=True)]
    means = site_means(plain, batches) if mode == "mean" else None
    if mode == "mean":
        torch.testing.assert_close(site_means(placed, batches), means, rtol=1e-6, atol=1e-7)
    kwargs: dict[str, Any] = dict(mode=mode, means=means, batch_size=2, seed=3)
    ref = masking_matrix(plain, tiny_tokenizer, CORPUS, {"set": neurons}, **kwargs)
    got = masking_matrix(placed, tiny_tokenizer, CORPUS, {"set": neurons}, **kwargs)
    torch.testing.assert_close(
        torch.tensor(got.bpb().to_numpy()), torch.tensor(ref.bpb().to_numpy()), rtol=1e-6, atol=1e-9
    )
    assert (ref.delta().abs().to_numpy()[1:] > 0).all()  # the masks did change something
    # a mask changes exactly what it changes on the plain model, also on an offloaded layer
    ids = batches[0]["input_ids"]
    with torch.no_grad(), mask_neurons(placed, {0: [1, 5]}):
        masked = placed(input_ids=ids).logits
    with torch.no_grad(), mask_neurons(plain, {0: [1, 5]}):
        expected = plain(input_ids=ids).logits
    torch.testing.assert_close(masked, expected, rtol=1e-6, atol=1e-6)
    assert _no_crane_hooks(placed)


# ---- half precision ------------------------------------------------------------------------
# Observed on these tiny models (max |difference| / max |float32 value|, every relevance sum
# and profile, both methods): bfloat16 ≤ 1.4e-2, float16 ≤ 1.9e-3; correlation of rel_sum
# with float32 ≥ 0.9998.
HALF_TOLERANCE = {torch.bfloat16: 3e-2, torch.float16: 5e-3}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("method", ["attnlrp", "gradxact"])
def test_half_precision_close_to_float32(
    tiny_tokenizer: Any, tiny_model: Callable[..., Any], dtype: torch.dtype, method: str
) -> None:
    full = _frozen(tiny_model("gemma3_text"))
    half = _frozen(tiny_model("gemma3_text").to(dtype))
    options = RelevanceOptions(method=method, shard_texts=3, batch_size=3)
    ref = collect_relevance(full, tiny_tokenizer, CORPUS, options=options)
    got = collect_relevance(half, tiny_tokenizer, CORPUS, options=options)
    for lang in TEXTS:
        assert got[lang].counts == ref[lang].counts
        for name, value in ref[lang].tensors.items():
            low = got[lang].tensors[name]
            assert low.dtype == torch.float64 and torch.isfinite(low).all()  # float64 accumulators
            err = float((low - value).abs().max() / value.abs().max())
            assert err < HALF_TOLERANCE[dtype], (lang, name, err)
        pair = torch.stack(
            [ref[lang].tensors["rel_sum"].flatten(), got[lang].tensors["rel_sum"].flatten()]
        )
        assert float(torch.corrcoef(pair)[0, 1]) > 0.999
    acts = collect_activations(half, tiny_tokenizer, CORPUS)
    assert all(t.dtype == torch.float64 for t in acts["en"].tensors.values())


# ---- gradient checkpointing ----------------------------------------------------------------


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "gpt2"])
@pytest.mark.parametrize("method", ["attnlrp", "gradxact"])
def test_gradient_checkpointing_gives_identical_relevance(
    tiny_tokenizer: Any, tiny_model: Callable[..., Any], model_type: str, method: str
) -> None:
    model = _frozen(tiny_model(model_type))
    adapter = get_adapter(model)
    plain = collect_relevance(
        model,
        tiny_tokenizer,
        CORPUS,
        options=RelevanceOptions(method=method, shard_texts=2, batch_size=2),
    )
    fired: list[int] = []
    with site_hooks(model, adapter, "down_in", lambda layer, _a: fired.append(layer)):
        checked = collect_relevance(
            model,
            tiny_tokenizer,
            CORPUS,
            options=RelevanceOptions(method=method, shard_texts=2, batch_size=2, checkpoint=True),
        )
    assert_same(plain, checked, atol=0.0)
    # every layer ran twice per batch (forward, then recomputed in the backward pass) ...
    n_batches = 4  # 2 shards of ≤2 texts per language
    assert sorted(fired) == sorted([0, 1] * 2 * n_batches)
    # ... and the layers are restored: no checkpoint wrapper, no hooks
    assert all("forward" not in vars(layer) for layer in decoder_layers(model, adapter))
    assert _no_crane_hooks(model)


def test_gradient_checkpointing_with_offloaded_layers(
    tiny_tokenizer: Any, saved: dict[str, Path], tmp_path: Path
) -> None:
    plain = _plain(saved["llama"])
    placed = _placed(saved["llama"], "llama", "device_map", tmp_path)
    layer0 = decoder_layers(placed, get_adapter(placed))[0]
    accelerate_forward = vars(layer0)["forward"]  # accelerate's wrapper stays in place
    options = RelevanceOptions(shard_texts=2, batch_size=2)
    ref = collect_relevance(plain, tiny_tokenizer, CORPUS, options=options)
    got = collect_relevance(
        placed,
        tiny_tokenizer,
        CORPUS,
        options=RelevanceOptions(shard_texts=2, batch_size=2, checkpoint=True),
    )
    assert_same(ref, got)
    assert vars(layer0)["forward"] is accelerate_forward


def test_checkpointed_layers_restores_on_error(tiny_model: Callable[..., Any]) -> None:
    model = _frozen(tiny_model("llama"))
    adapter = get_adapter(model)
    with pytest.raises(RuntimeError, match="boom"), checkpointed_layers(model, adapter):
        assert all("forward" in vars(layer) for layer in decoder_layers(model, adapter))
        raise RuntimeError("boom")
    assert all("forward" not in vars(layer) for layer in decoder_layers(model, adapter))


def test_checkpoint_flag_does_not_invalidate_shards(
    tiny_tokenizer: Any, tiny_model: Callable[..., Any], tmp_path: Path
) -> None:
    model = _frozen(tiny_model("llama"))
    options = RelevanceOptions(method="gradxact", shard_texts=2, batch_size=2)
    first = collect_relevance(model, tiny_tokenizer, CORPUS, options=options, out_dir=tmp_path)
    recomputed: list[tuple[str, int]] = []
    again = collect_relevance(
        model,
        tiny_tokenizer,
        CORPUS,
        options=RelevanceOptions(method="gradxact", shard_texts=2, batch_size=2, checkpoint=True),
        out_dir=tmp_path,
        on_shard=lambda lang, index: recomputed.append((lang, index)),
    )
    assert recomputed == []  # a run resumes with or without checkpointing
    assert_same(first, again, atol=0.0)
