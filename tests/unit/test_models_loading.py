"""load_model on local directories, GGUF paths and hub ids, all offline with tiny models."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from crane.errors import ConfigError, ModelLoadError, UnsupportedModelError
from crane.models import LoadedModel, describe, load_model


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_local_dir_round_trip(
    tiny_llama_dir: Path, capfd: pytest.CaptureFixture[str], tiny_model: Callable[..., Any]
) -> None:
    messages: list[str] = []
    loaded = load_model(tiny_llama_dir, progress=messages.append)

    assert isinstance(loaded, LoadedModel)
    assert (loaded.shape.family, loaded.shape.n_layers, loaded.shape.d_ff) == ("llama", 2, 96)
    assert loaded.adapter.family == "llama"
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.tokenizer.pad_token == "<pad>"
    assert messages, "progress callback was never called"
    assert capfd.readouterr().out == ""  # the library never prints

    source = loaded.source
    assert source["spec"] == str(tiny_llama_dir)
    assert source["kind"] == "local"
    assert source["path"] == str(tiny_llama_dir.resolve())
    assert source["sha256"] == sha256(tiny_llama_dir / "model.safetensors")
    assert source["sha256_of"] == "model.safetensors"
    assert source["dtype"] == "float32"
    assert source["device"] == "cpu"
    assert source["transformers"] == transformers.__version__
    assert source["revision"] is None
    json.dumps(source)  # provenance is JSON-ready

    original = tiny_model("llama")  # same seed → same weights as the saved model
    ids = loaded.tokenizer("The quick brown fox jumps", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(loaded.model(input_ids=ids).logits, original(input_ids=ids).logits)


def test_describe_summarises_the_model(tiny_llama_dir: Path) -> None:
    loaded = load_model(str(tiny_llama_dir))
    info = describe(loaded)
    assert info["family"] == "llama" and info["model_type"] == "llama"
    assert (info["n_layers"], info["d_ff"], info["n_neurons"]) == (2, 96, 192)
    assert info["parameters"] == sum(p.numel() for p in loaded.model.parameters())
    assert info["dtype"] == "float32" and info["device"] == "cpu"
    assert info["sites"] == ["down_in", "act"]
    assert info["source"]["kind"] == "local"
    json.dumps(info)


def test_dtype_and_attention_options(tiny_llama_dir: Path) -> None:
    loaded = load_model(tiny_llama_dir, dtype="bfloat16", attn_implementation="eager")
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    assert loaded.source["dtype"] == "bfloat16"
    assert loaded.model.config._attn_implementation == "eager"
    default = load_model(tiny_llama_dir, dtype="auto", validate=False)
    assert default.model.config._attn_implementation != "eager"  # not forced
    assert default.source["dtype"] == "float32"
    assert default.shape.d_ff == 96


def test_auto_picks_the_best_device_and_float32_on_the_cpu(
    tiny_llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--device auto`` is "the best device here" (CUDA, else MPS, else the CPU), not a
    sharding device map (that is ``shard``); ``--dtype auto`` on the CPU is float32 even for a
    checkpoint saved in bfloat16."""
    from crane.models import loading

    monkeypatch.setattr(loading.torch.cuda, "is_available", lambda: False)
    mps = getattr(loading.torch.backends, "mps", None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)
    assert loading.best_device() == "cpu"
    half = load_model(tiny_llama_dir, dtype="bfloat16", validate=False)
    half.model.save_pretrained(tmp_path / "bf16")
    half.tokenizer.save_pretrained(tmp_path / "bf16")
    loaded = load_model(tmp_path / "bf16", dtype="auto", device="auto", validate=False)
    assert loaded.source["device"] == "cpu" and loaded.source["dtype"] == "float32"
    assert "device_map" not in loaded.source
    monkeypatch.setattr(loading.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(loading.torch.cuda, "device_count", lambda: 1)
    assert loading.best_device() == "cuda"


@pytest.mark.parametrize("dtype", ["fp32", "float64", "int8", ""])
def test_bad_dtype_is_a_config_error(tiny_llama_dir: Path, dtype: str) -> None:
    with pytest.raises(ConfigError, match="float32, bfloat16, float16, auto"):
        load_model(tiny_llama_dir, dtype=dtype)


@pytest.mark.parametrize("device", ["gpu", "tpu", "cuda:x", "CPU", "cuda:99"])
def test_bad_device_is_a_config_error(tiny_llama_dir: Path, device: str) -> None:
    with pytest.raises(ConfigError, match="[Dd]evice"):
        load_model(tiny_llama_dir, device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_a_config_error(tiny_llama_dir: Path) -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        load_model(tiny_llama_dir, device="cuda")


def test_directory_without_weights(tmp_path: Path, tiny_llama_dir: Path) -> None:
    (tmp_path / "config.json").write_text((tiny_llama_dir / "config.json").read_text())
    with pytest.raises(ModelLoadError, match=r"has no weights \(\*\.safetensors or pytorch_model"):
        load_model(tmp_path)


def test_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="has no config.json"):
        load_model(tmp_path)


@pytest.mark.parametrize(
    "spec", ["./no/such/model", "~/no-such-crane-model-dir", "/no/such/dir/model", "missing.gguf"]
)
def test_nonexistent_path(spec: str) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(spec)


def test_nonexistent_path_object(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "model")  # a Path is always a path, even if it looks like an id


def test_file_with_wrong_magic_is_not_a_gguf(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 definitely a zip")
    with pytest.raises(ModelLoadError, match="is not a GGUF file"):
        load_model(fake)
    with pytest.raises(ModelLoadError, match="is not a GGUF file"):
        load_model(tmp_path)  # a directory holding a single .gguf file is treated as that file


def test_unsupported_architecture_fails_before_loading_weights(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, MambaConfig

    config = MambaConfig(
        vocab_size=256, hidden_size=64, num_hidden_layers=2, state_size=8, intermediate_size=96
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="'mamba' is not supported") as err:
        load_model(tmp_path)
    assert "register_adapter" in str(err.value)


def test_unknown_hub_id_is_a_load_error() -> None:
    spec = "crane-neurons-tests/no-such-model-anywhere"
    with pytest.raises(ModelLoadError, match="neither a local path nor available") as err:
        load_model(spec)
    assert spec in str(err.value)


def test_remote_code_is_refused_without_running_it(tmp_path: Path) -> None:
    sentinel = tmp_path / "code-was-executed"
    code = f"open({str(sentinel)!r}, 'w').close()\n"
    (tmp_path / "configuration_custom.py").write_text(code)
    (tmp_path / "modeling_custom.py").write_text(code)
    config: dict[str, Any] = {
        "model_type": "crane_custom_arch",
        "architectures": ["CustomForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_custom.CustomConfig",
            "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM",
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2)}, str(tmp_path / "model.safetensors"))

    with pytest.raises(ModelLoadError, match="trust_remote_code") as err:
        load_model(tmp_path)
    assert "--trust-remote-code" in str(err.value)
    assert not sentinel.exists()


def test_unknown_architecture_without_remote_code(tmp_path: Path, tiny_llama_dir: Path) -> None:
    config = json.loads((tiny_llama_dir / "config.json").read_text())
    config["model_type"] = "crane_unknown_arch"
    (tmp_path / "config.json").write_text(json.dumps(config))
    weights = (tiny_llama_dir / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(weights)
    with pytest.raises(UnsupportedModelError, match="transformers does not know"):
        load_model(tmp_path)


def test_directory_without_tokenizer(tmp_path: Path, tiny_llama_dir: Path) -> None:
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((tiny_llama_dir / name).read_bytes())
    with pytest.raises(ModelLoadError, match="has no usable tokenizer"):
        load_model(tmp_path)


def test_hub_id_from_the_local_hub_cache(
    tmp_path: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub id resolves offline from the hub cache; provenance records the commit hash."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--crane-tests--tiny-llama"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for file in tiny_llama_dir.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    loaded = load_model("crane-tests/tiny-llama")
    assert loaded.source["kind"] == "hub"
    assert loaded.source["revision"] == commit
    assert loaded.source["path"] == str(snapshot)
    assert loaded.source["sha256"] == sha256(snapshot / "model.safetensors")
    assert loaded.shape.d_ff == 96
    assert load_model("crane-tests/tiny-llama", revision=commit).source["revision"] == commit
