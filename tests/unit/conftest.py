"""Tiny random models and a tiny tokenizer, built in code (no network, well under a second each).

Every registered ``config.model_type`` needs a factory in :data:`TINY_CONFIGS`; the adapter tests
iterate over :func:`crane.models.supported_model_types` so a new adapter without one fails.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # guard: nothing in the unit tests may reach a model hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

HIDDEN = 64
LAYERS = 2
D_FF = 96
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS
VOCAB = 256
SPECIAL_TOKENS = ("<unk>", "<pad>", "<s>", "</s>")
"""Ids 0..3 of the tiny tokenizer, in this order."""
PAD_ID, BOS_ID, EOS_ID = 1, 2, 3

_COMMON: dict[str, Any] = {"pad_token_id": PAD_ID, "bos_token_id": BOS_ID, "eos_token_id": EOS_ID}


def _llama_style(cls_name: str, **extra: Any) -> Callable[[], Any]:
    def make() -> Any:
        import transformers

        cls = getattr(transformers, cls_name)
        kwargs: dict[str, Any] = dict(
            vocab_size=VOCAB,
            hidden_size=HIDDEN,
            intermediate_size=D_FF,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            num_key_value_heads=KV_HEADS,
            max_position_embeddings=128,
            **_COMMON,
        )
        kwargs.update(extra)
        return cls(**kwargs)

    return make


def _gemma3_multimodal() -> Any:
    from transformers import Gemma3Config

    text = _llama_style("Gemma3TextConfig", head_dim=HEAD_DIM, sliding_window=16)().to_dict()
    vision = dict(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    return Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=VOCAB - 1
    )


def _gpt2() -> Any:
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=VOCAB,
        n_embd=HIDDEN,
        n_layer=LAYERS,
        n_head=HEADS,
        n_inner=D_FF,
        n_positions=128,
        **_COMMON,
    )


def _bloom() -> Any:
    from transformers import BloomConfig

    # BLOOM's MLP width is fixed at 4 * hidden_size (256 here).
    return BloomConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, n_layer=LAYERS, n_head=HEADS, **_COMMON
    )


def _gpt_neox() -> Any:
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=D_FF,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        max_position_embeddings=128,
        **_COMMON,
    )


TINY_CONFIGS: dict[str, Callable[[], Any]] = {
    "llama": _llama_style("LlamaConfig"),
    "mistral": _llama_style("MistralConfig", sliding_window=None),
    "qwen2": _llama_style("Qwen2Config"),
    "qwen3": _llama_style("Qwen3Config", head_dim=HEAD_DIM),
    "gemma": _llama_style("GemmaConfig", head_dim=HEAD_DIM),
    # soft-capping and logit scaling switched on so the head checks (crane.models.head) bite
    "gemma2": _llama_style(
        "Gemma2Config", head_dim=HEAD_DIM, sliding_window=16, final_logit_softcapping=0.5
    ),
    "gemma3_text": _llama_style(
        "Gemma3TextConfig", head_dim=HEAD_DIM, sliding_window=16, final_logit_softcapping=0.5
    ),
    "gemma3": _gemma3_multimodal,
    "olmo": _llama_style("OlmoConfig"),
    "olmo2": _llama_style("Olmo2Config"),
    "granite": _llama_style("GraniteConfig", logits_scaling=4.0),
    "phi3": _llama_style("Phi3Config"),  # pad_token_id must lie inside the vocabulary
    "gpt2": _gpt2,
    "bloom": _bloom,
    "gpt_neox": _gpt_neox,
}
"""``config.model_type`` → factory of a tiny config (hidden 64, 2 layers, d_ff 96, vocab 256)."""


def make_tiny_config(model_type: str) -> Any:
    """A tiny config for ``model_type``; fails the test when no factory exists."""
    if model_type not in TINY_CONFIGS:
        pytest.fail(
            f"No tiny config factory for registered model type '{model_type}'; "
            "add one to TINY_CONFIGS in tests/unit/conftest.py."
        )
    return TINY_CONFIGS[model_type]()


def make_tiny_model(model_type: str, seed: int = 0) -> Any:
    """A tiny random causal LM of ``model_type`` in eval mode, float32, on the CPU."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(make_tiny_config(model_type), dtype=torch.float32)
    return model.eval()


TRAINING_TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "All human beings are born free and equal in dignity and rights. "
    "Everyone has the right to life, liberty and security of person. "
    "Tất cả mọi người sinh ra đều được tự do và bình đẳng. "
    "人人生而自由，在尊严和权利上一律平等。"
)


def build_tiny_tokenizer(vocab_size: int = 200) -> Any:
    """A byte-free BPE tokenizer trained in code, wrapped as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tokenizer.train_from_iterator([TRAINING_TEXT] * 20, trainer=trainer)
    assert tokenizer.get_vocab_size() <= VOCAB
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
    )


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    """The tiny tokenizer (shared; do not mutate)."""
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any) -> Path:
    """A saved tiny Llama (safetensors) with its tokenizer; shared, treat as read-only."""
    path = tmp_path_factory.mktemp("tiny-llama")
    make_tiny_model("llama").save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model() -> Callable[..., Any]:
    """``tiny_model(model_type, seed=0)`` → a tiny random causal LM (eval, float32, CPU)."""
    return make_tiny_model


@pytest.fixture(scope="session")
def tiny_config() -> Callable[[str], Any]:
    """``tiny_config(model_type)`` → a tiny config; fails for a type without a factory."""
    return make_tiny_config


@pytest.fixture(scope="session")
def tiny_tokenizer_factory() -> Callable[[], Any]:
    """``tiny_tokenizer_factory()`` → a fresh tiny tokenizer (safe to mutate)."""
    return build_tiny_tokenizer


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the ``crane`` command line in-process on ``argv``: (exit code, stdout, stderr).

    Test modules import it (``from conftest import run_cli``), as they do ``tiny_tokenizer``.
    """
    from crane.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Any:
    """Tiny models run fastest on one thread (and do not fight other processes for cores).
    Session-wide, so module-scoped fixtures compute on the same thread count as the tests that
    compare against them (a reduction on 2 threads differs from 1 thread in the last bits)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _one_thread_per_test(_one_thread: Any) -> Any:
    """Back to one thread for every test, whatever an earlier test set."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
