"""Relevance collection: hand oracle, merging, resume after SIGKILL, corrupt shards."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from crane.collect import RelevanceOptions, collect_relevance
from crane.data.corpus import Corpus
from crane.methods import get_method
from crane.models.loading import load_model
from crane.scoring import Budget, select_top
from crane.stats import Stats

TEXTS = {
    "en": [
        "All human beings are born free and equal in dignity and rights.",
        "Everyone has the right to life, liberty and security of person.",
        "The quick brown fox jumps over the lazy dog.",
        "They are endowed with reason and conscience.",
        "No one shall be held in slavery or servitude.",
    ],
    "vi": [
        "Tất cả mọi người sinh ra đều được tự do và bình đẳng.",
        "Mọi người đều có quyền sống, tự do và an toàn cá nhân.",
        "Không ai bị bắt làm nô lệ.",
        "Mọi người đều bình đẳng trước pháp luật.",
    ],
}
GRADXACT = RelevanceOptions(method="gradxact", shard_texts=2, batch_size=2)


def hand_relevance(model, tokenizer, text: str) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Oracle: one unbatched forward/backward of Σ gold logits, a·grad at each down_proj input."""
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]])
    acts: dict[int, torch.Tensor] = {}

    def keep(layer: int):  # type: ignore[no-untyped-def]
        def hook(_m, args):  # type: ignore[no-untyped-def]
            args[0].retain_grad()
            acts[layer] = args[0]

        return hook

    handles = [
        layer.mlp.down_proj.register_forward_pre_hook(keep(i))
        for i, layer in enumerate(model.model.layers)
    ]
    try:
        emb = model.model.embed_tokens(ids).detach().requires_grad_()
        logits = model(inputs_embeds=emb).logits
        logits[0, :-1].gather(1, ids[0, 1:, None]).sum().backward()
    finally:
        for h in handles:
            h.remove()
    return torch.stack([(acts[i] * acts[i].grad).sum((0, 1)) for i in sorted(acts)]).double()


def test_gradxact_equals_hand_oracle(tiny_llama_dir: Path) -> None:
    loaded = load_model(tiny_llama_dir)
    corpus = Corpus({"en": TEXTS["en"][:3]})
    stats = collect_relevance(loaded.model, loaded.tokenizer, corpus, options=GRADXACT)
    expected = [hand_relevance(loaded.model, loaded.tokenizer, t) for t in corpus["en"]]
    en = stats["en"]
    torch.testing.assert_close(en.tensors["rel_sum"], sum(expected), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(
        en.tensors["prof_abs_sum"], sum(r.abs() / r.abs().sum() for r in expected), rtol=1e-5, atol=1e-7
    )
    assert en.counts["n_sequences"] == 3 and en.counts["n_texts"] == 3
    # the model is left as it was: no hooks, no gradients on parameters
    assert all(not p.requires_grad for p in loaded.model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in loaded.model.modules())


def test_shards_merge_to_whole(tiny_llama_dir: Path) -> None:
    loaded = load_model(tiny_llama_dir)
    corpus = Corpus(TEXTS)
    whole = collect_relevance(loaded.model, loaded.tokenizer, corpus, options=GRADXACT)
    parts = [
        collect_relevance(loaded.model, loaded.tokenizer, Corpus({k: v[a:b] for k, v in TEXTS.items()}), options=GRADXACT)
        for a, b in ((0, 2), (2, 5))
    ]
    merged = parts[0].merge(parts[1])
    for lang in TEXTS:
        for name, value in whole[lang].tensors.items():
            torch.testing.assert_close(merged[lang].tensors[name], value, rtol=1e-12, atol=1e-15)
        assert merged[lang].counts == whole[lang].counts


def _neurons(stats: Stats):  # type: ignore[no-untyped-def]
    return select_top(get_method("crane").score(stats, quantile=0.5), Budget(count=5), site="down_in").neurons


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from crane.collect import RelevanceOptions, collect_relevance
    from crane.data.corpus import Corpus
    from crane.models.loading import load_model
    texts = {texts!r}
    loaded = load_model(sys.argv[1])
    def kill(lang, index):
        if (lang, index) == ("en", 1):
            os.kill(os.getpid(), signal.SIGKILL)
    collect_relevance(loaded.model, loaded.tokenizer, Corpus(texts),
                      options=RelevanceOptions(method="gradxact", shard_texts=2, batch_size=2),
                      out_dir=sys.argv[2], on_shard=kill)
    """
)


def test_resume_after_sigkill_gives_identical_results(tiny_llama_dir: Path, tmp_path: Path) -> None:
    loaded = load_model(tiny_llama_dir)
    uninterrupted = collect_relevance(
        loaded.model, loaded.tokenizer, Corpus(TEXTS), options=GRADXACT, out_dir=tmp_path / "a"
    )
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(texts=TEXTS))
    run = subprocess.run(
        [sys.executable, str(script), str(tiny_llama_dir), str(tmp_path / "b")],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300,
    )
    assert run.returncode == -9, run.stderr  # killed by SIGKILL after the second en shard
    saved = sorted(p.name for p in (tmp_path / "b" / "en").glob("*.safetensors"))
    assert saved == ["shard-00000.safetensors", "shard-00001.safetensors"]
    recomputed: list[tuple[str, int]] = []
    resumed = collect_relevance(
        loaded.model, loaded.tokenizer, Corpus(TEXTS), options=GRADXACT, out_dir=tmp_path / "b",
        on_shard=lambda lang, index: recomputed.append((lang, index)),
    )
    assert recomputed == [("en", 2), ("vi", 0), ("vi", 1)]  # finished shards were reused
    for lang in TEXTS:
        for name, value in uninterrupted[lang].tensors.items():
            assert torch.equal(resumed[lang].tensors[name], value), (lang, name)
    assert _neurons(resumed) == _neurons(uninterrupted)


def test_corrupt_or_mismatched_shard_is_recomputed(tiny_llama_dir: Path, tmp_path: Path) -> None:
    loaded = load_model(tiny_llama_dir)
    first = collect_relevance(loaded.model, loaded.tokenizer, Corpus(TEXTS), options=GRADXACT, out_dir=tmp_path)
    shard = tmp_path / "en" / "shard-00001.safetensors"
    shard.write_bytes(shard.read_bytes()[:-7])  # truncated
    recomputed: list[tuple[str, int]] = []
    again = collect_relevance(
        loaded.model, loaded.tokenizer, Corpus(TEXTS), options=GRADXACT, out_dir=tmp_path,
        on_shard=lambda lang, index: recomputed.append((lang, index)),
    )
    assert recomputed == [("en", 1)]
    assert torch.equal(again["en"].tensors["rel_sum"], first["en"].tensors["rel_sum"])
    # other options → every shard recomputed, never mixed with the old ones
    recomputed.clear()
    collect_relevance(
        loaded.model, loaded.tokenizer, Corpus(TEXTS),
        options=RelevanceOptions(method="gradxact", shard_texts=2, batch_size=2, target="logprob"),
        out_dir=tmp_path, on_shard=lambda lang, index: recomputed.append((lang, index)),
    )
    assert len(recomputed) == 5


def test_budget_limits_texts(tiny_llama_dir: Path) -> None:
    loaded = load_model(tiny_llama_dir)
    stats = collect_relevance(
        loaded.model, loaded.tokenizer, Corpus(TEXTS), options=GRADXACT, max_texts=2
    )
    assert stats["en"].counts["n_texts"] == 2 and stats["vi"].counts["n_texts"] == 2
