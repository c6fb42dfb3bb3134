"""A finished relevance identification (scores + causal verification) is reused, not redone,
when its inputs are unchanged and its outputs intact; anything else recomputes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import crane
import crane.identification.relevance as identification
from crane.data.builtin import udhr_corpus
from crane.identification import IdentifyOptions, identify
from crane.scoring import parse_budget


def _options(**changes: object) -> IdentifyOptions:
    return IdentifyOptions(
        **{
            "budget": parse_budget("3"), "max_texts": 8, "quantile": 0.5, "verify": True,
            "score": "margin", "verify_mode": "groups", **changes,  # v1 group tests reused
        }
    )


@pytest.fixture()
def corpus():
    return udhr_corpus("identify").select(["en", "zh", "vi"])


def _no_verification(*args: object, **kwargs: object) -> None:
    raise AssertionError("verification ran again")


def test_finished_sets_are_reused_and_damage_is_redone(
    tiny_llama_dir: Path, tmp_path: Path, corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = crane.load_model(str(tiny_llama_dir))
    first = identify(model, corpus, options=_options(), out_dir=tmp_path)
    stage = json.loads((tmp_path / "manifest.json").read_text())["stages"]["identify-method:crane"]
    assert set(stage["outputs"]) == {"neurons-crane.json", "identify-crane.json"}
    file = tmp_path / "neurons-crane.json"
    written = file.stat().st_mtime_ns

    with monkeypatch.context() as patch:  # same inputs: no verification, same sets, file untouched
        patch.setattr(identification, "verify_candidates", _no_verification)
        again = identify(model, corpus, options=_options(), out_dir=tmp_path)
    assert again.neurons.neurons == first.neurons.neurons
    assert again.reports == first.reports and file.stat().st_mtime_ns == written

    with monkeypatch.context() as patch:  # another option: computed again
        patch.setattr(identification, "verify_candidates", _no_verification)
        with pytest.raises(AssertionError, match="verification ran again"):
            identify(model, corpus, options=_options(quantile=0.6), out_dir=tmp_path)

    edited = json.loads(file.read_text())  # an edited (still valid) set is not trusted
    edited["neurons"]["en"] = {"0": [0, 1, 2]}
    file.write_text(json.dumps(edited))
    redone = identify(model, corpus, options=_options(), out_dir=tmp_path)
    assert redone.neurons.neurons == first.neurons.neurons


def test_two_manifest_writers_keep_each_others_stages(tmp_path: Path) -> None:
    """A study holds its manifest open while identification records its own stages in the same
    file: neither writer drops or resurrects the other's entries."""
    from crane.manifest import Manifest

    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    study = Manifest(tmp_path)
    Manifest(tmp_path).record("identify-method:crane", "k1", [tmp_path / "a.txt"], 1.0)
    study.record("identify", "k2", [tmp_path / "b.txt"], 2.0)
    Manifest(tmp_path).record("identify-method:crane", "k3", [tmp_path / "a.txt"], 1.0)
    study.record("evaluate:bpb", "k4", [tmp_path / "b.txt"], 3.0)
    on_disk = Manifest(tmp_path)
    assert on_disk.complete("identify-method:crane", "k3")  # not the study's stale k1
    assert on_disk.complete("identify", "k2") and on_disk.complete("evaluate:bpb", "k4")
