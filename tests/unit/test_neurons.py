"""NeuronSet: validation, persistence, random controls."""

from __future__ import annotations

import json

import pytest

from crane.errors import NeuronSetError
from crane.models.sites import ModelShape
from crane.neurons import NeuronSet

SHAPE = ModelShape("llama", "llama", n_layers=4, d_ff=50)


def test_round_trip_and_queries(tmp_path) -> None:
    ns = NeuronSet({"en": {"2": [5, 1, 1], 0: [3]}, "zh": {3: [49]}}, n_layers=4, d_ff=50,
                   meta={"method": "test"})
    assert ns.layers("en") == {0: [3], 2: [1, 5]}
    assert ns.size("en") == 3 and ns.size() == 4
    assert ns.layer_counts("en") == [1, 0, 2, 0]
    assert ns.union() == {0: [3], 2: [1, 5], 3: [49]}
    path = ns.save(tmp_path / "set.json")
    again = NeuronSet.load(path)
    assert again.neurons == ns.neurons and again.meta == {"method": "test"}
    assert not list(tmp_path.glob(".*tmp")), "temporary file left behind"


def test_random_layer_matched_and_seeded() -> None:
    ns = NeuronSet({"en": {0: [1, 2, 3], 2: [4]}}, n_layers=4, d_ff=50)
    a, b, c = ns.random_like(seed=1), ns.random_like(seed=1), ns.random_like(seed=2)
    assert a.layer_counts("en") == ns.layer_counts("en")
    assert a.neurons == b.neurons and a.neurons != c.neurons
    r = NeuronSet.random(SHAPE, 10, seed=0)
    assert r.size() == 10 and max(r.layer_counts("random")) - min(r.layer_counts("random")) <= 1


def test_fit_checks() -> None:
    NeuronSet({"en": {3: [49]}}).check_fits(SHAPE)
    with pytest.raises(NeuronSetError, match="MLP width 50"):
        NeuronSet({"en": {0: [50]}}).check_fits(SHAPE)
    with pytest.raises(NeuronSetError, match="4 layers"):
        NeuronSet({"en": {4: [0]}}).check_fits(SHAPE)
    with pytest.raises(NeuronSetError, match="made for a model with 18"):
        NeuronSet({"en": {0: [0]}}, n_layers=18, d_ff=2048).check_fits(SHAPE)
    with pytest.raises(NeuronSetError, match="negative"):
        NeuronSet({"en": {0: [-1]}})
    with pytest.raises(NeuronSetError, match="non-integer"):
        NeuronSet({"en": {0: ["x"]}})
    with pytest.raises(NeuronSetError, match="no language 'vi'"):
        NeuronSet({"en": {0: [1]}}).layers("vi")


def test_load_rejects_foreign_files(tmp_path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(NeuronSetError, match="not valid JSON"):
        NeuronSet.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(NeuronSetError, match="not a crane neuron set"):
        NeuronSet.load(tmp_path / "other.json")
    with pytest.raises(NeuronSetError, match="does not exist"):
        NeuronSet.load(tmp_path / "missing.json")


def test_safetensors_round_trip_and_overlap(tmp_path) -> None:
    ns = NeuronSet({"en": {0: [1, 2], 3: [49]}, "zh": {1: [7]}}, n_layers=4, d_ff=50, meta={"m": 1})
    path = ns.save(tmp_path / "set.safetensors")
    again = NeuronSet.load(path)
    assert again.neurons == ns.neurons and again.meta == {"m": 1} and again.d_ff == 50
    other = NeuronSet({"en": {0: [2, 3]}, "zh": {1: [7]}}, n_layers=4, d_ff=50)
    assert ns.overlap(other, "en") == {"intersection": 1, "size_a": 3, "size_b": 2, "jaccard": 0.25}
    assert ns.jaccard_matrix(other)["zh"] == {"en": 0.0, "zh": 1.0}
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(NeuronSetError, match="not a readable safetensors"):
        NeuronSet.load(tmp_path / "junk.safetensors")


@pytest.mark.parametrize(
    ("neurons", "needle"),
    [
        ({"en": {"1": [0], "01": [2]}}, "written plainly"),  # "01" no longer collapses into 1
        ({"en": {"1": [0], " 1": [2]}}, "written plainly"),
        ({"en": {"0": [True, 2]}}, "boolean"),  # JSON true is not neuron 1
        ({"en": {"0": [1]}, "EN": {"0": [2]}}, "twice"),  # one language, two spellings
        ({"en": {"1000000000000": [1]}}, "larger than any model"),  # no shape recorded
        ({"en": {"0": [10**12]}}, "larger than any model"),
        ({"en": [1, 2]}, "layer"),
    ],
)
def test_set_files_are_read_strictly(neurons, needle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NeuronSetError, match=needle):
        NeuronSet.from_dict({"format": "crane-neuron-set", "version": 1, "neurons": neurons})


def test_language_codes_are_normalised_and_other_labels_kept() -> None:
    s = NeuronSet({"EN": {0: [1]}, "zh-Hans": {0: [2]}, "random": {1: [3]}})
    assert s.languages == ["en", "zh-Hans", "random"] and s.layers("en") == {0: [1]}


def test_a_model_record_that_is_not_an_object_is_refused() -> None:
    data = {"format": "crane-neuron-set", "version": 1, "neurons": {"en": {"0": [1]}},
            "meta": {"model": "gemma"}}  # fmt: skip
    with pytest.raises(NeuronSetError, match="meta.model"):
        NeuronSet.from_dict(data)
