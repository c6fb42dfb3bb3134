"""The activation pass: hand oracle with our own hooks, per-text means, resume from shards."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from crane.activations import ActivationOptions, collect_activations
from crane.data.corpus import Corpus
from crane.models.loading import load_model

TEXTS = {
    "en": [
        "All human beings are born free and equal in dignity and rights.",
        "The quick brown fox jumps over the lazy dog.",
        "They are endowed with reason and conscience.",
    ],
    "vi": [
        "Tất cả mọi người sinh ra đều được tự do và bình đẳng.",
        "Không ai bị bắt làm nô lệ.",
    ],
}
OPTIONS = ActivationOptions(shard_texts=2, batch_size=2)


def hand(model, tokenizer, text: str) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    """Oracle: one unpadded forward of one text, our own hooks at act_fn and down_proj."""
    ids = torch.tensor(
        [[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]]
    )
    acts: dict[int, torch.Tensor] = {}
    downs: dict[int, torch.Tensor] = {}
    handles = []
    for i, layer in enumerate(model.model.layers):
        handles.append(
            layer.mlp.act_fn.register_forward_hook(
                lambda _m, _a, out, i=i: acts.__setitem__(i, out[0].detach().double())
            )
        )
        handles.append(
            layer.mlp.down_proj.register_forward_pre_hook(
                lambda _m, args, i=i: downs.__setitem__(i, args[0][0].detach().double())
            )
        )
    try:
        with torch.no_grad():
            model(ids)
    finally:
        for h in handles:
            h.remove()
    n = len(acts)
    act = torch.stack([acts[i] for i in range(n)], 1)  # [T, L, F]
    down = torch.stack([downs[i] for i in range(n)], 1)
    norms = torch.stack(
        [layer.mlp.down_proj.weight.double().norm(dim=0) for layer in model.model.layers]
    )
    return {
        "pos": (act > 0).sum(0).double(),
        "sum": down.sum(0),
        "sq": (down * down).sum(0),
        "abs": down.abs().sum(0),
        "n": torch.tensor(down.shape[0]),
        "mean": down.mean(0),
        "plnd": down.abs().mean(0) * norms,
    }


def test_activation_pass_equals_hand_oracle(tiny_llama_dir: Path) -> None:
    loaded = load_model(tiny_llama_dir)
    stats = collect_activations(loaded.model, loaded.tokenizer, Corpus(TEXTS), options=OPTIONS)
    for lang, texts in TEXTS.items():
        expected = [hand(loaded.model, loaded.tokenizer, t) for t in texts]
        ls = stats[lang]
        assert ls.counts["n_tokens"] == sum(int(e["n"]) for e in expected)
        assert ls.counts["n_texts"] == len(texts)
        assert torch.equal(ls.tensors["act_pos_count"], sum(e["pos"] for e in expected))
        for key, name in (("sum", "site_sum"), ("sq", "site_sq_sum"), ("abs", "site_abs_sum")):
            torch.testing.assert_close(
                ls.tensors[name], sum(e[key] for e in expected), rtol=1e-5, atol=1e-6
            )
        torch.testing.assert_close(
            stats.texts[lang]["text_mean"].double(),
            torch.stack([e["mean"] for e in expected]),
            rtol=1e-4,
            atol=1e-6,
        )
        torch.testing.assert_close(
            stats.texts[lang]["text_plnd"].double(),
            torch.stack([e["plnd"] for e in expected]),
            rtol=1e-4,
            atol=1e-6,
        )
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in loaded.model.modules())


def test_act_site_and_float16(tiny_llama_dir: Path) -> None:
    loaded = load_model(tiny_llama_dir)
    opts = ActivationOptions(site="act", shard_texts=2, batch_size=2, text_dtype="float16")
    stats = collect_activations(
        loaded.model, loaded.tokenizer, Corpus({"en": TEXTS["en"][:1]}), options=opts
    )
    assert stats.texts["en"]["text_mean"].shape[0] == 1
    ls = stats["en"]
    assert int((ls.tensors["site_sum"] > 0).sum()) > 0


class Stop(Exception):
    pass


def test_resume_from_shards_gives_identical_results(tiny_llama_dir: Path, tmp_path: Path) -> None:
    loaded = load_model(tiny_llama_dir)
    whole = collect_activations(loaded.model, loaded.tokenizer, Corpus(TEXTS), options=OPTIONS)

    def stop(lang: str, index: int) -> None:
        if (lang, index) == ("en", 1):
            raise Stop

    with pytest.raises(Stop):
        collect_activations(
            loaded.model,
            loaded.tokenizer,
            Corpus(TEXTS),
            options=OPTIONS,
            out_dir=tmp_path,
            on_shard=stop,
        )
    recomputed: list[tuple[str, int]] = []
    resumed = collect_activations(
        loaded.model,
        loaded.tokenizer,
        Corpus(TEXTS),
        options=OPTIONS,
        out_dir=tmp_path,
        on_shard=lambda lang, index: recomputed.append((lang, index)),
    )
    assert recomputed == [("vi", 0)]  # en shards 0 and 1 were saved before the stop
    for lang in TEXTS:
        assert resumed[lang].counts == whole[lang].counts
        for name, value in whole[lang].tensors.items():
            torch.testing.assert_close(resumed[lang].tensors[name], value, rtol=0, atol=0)
        for name, value in whole.texts[lang].items():
            assert torch.equal(resumed.texts[lang][name], value), (lang, name)
    # a damaged per-text file makes its shard recompute
    (tmp_path / "vi" / "shard-00000.texts.safetensors").write_bytes(b"junk")
    recomputed.clear()
    collect_activations(
        loaded.model,
        loaded.tokenizer,
        Corpus(TEXTS),
        options=OPTIONS,
        out_dir=tmp_path,
        on_shard=lambda lang, index: recomputed.append((lang, index)),
    )
    assert recomputed == [("vi", 0)]


@pytest.mark.parametrize("method", ["lape", "kojima", "plnd", "actmean", "gradxact"])
def test_identify_every_method_with_its_control(tiny_llama_dir: Path, method: str) -> None:
    from crane.identification import IdentifyOptions, identify_methods

    loaded = load_model(tiny_llama_dir)
    options = {"plnd": {"top_number": 10, "strict": False}}
    found = identify_methods(
        loaded, Corpus(TEXTS), [method, "random"], budget="3",
        options=IdentifyOptions(verify=False), method_options=options, seed=2,
    ).sets
    chosen = found[method]
    assert chosen.size("en") == 3 and chosen.size("vi") == 3
    assert chosen.site == ("act" if method == "lape" else "down_in")
    if method in ("lape", "plnd"):  # their own sets (any size)
        own = identify_methods(
            loaded, Corpus(TEXTS), [method], budget="own", options=IdentifyOptions(verify=False)
        ).sets[method]
        assert set(own.languages) == {"en", "vi"}
    control = found["random"]  # layer-matched to the method's set, seeded
    assert control.layer_counts("en") == chosen.layer_counts("en")
    assert control.meta["matched_to"] == method and control.meta["seed"] == 2
    assert control.neurons != chosen.neurons
