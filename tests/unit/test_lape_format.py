"""LAPE .neuron.pth interchange: round trip, refusal of pickled code, shape checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from crane.errors import NeuronSetError
from crane.lape_format import export_lape, import_lape
from crane.neurons import NeuronSet


def test_round_trip(tmp_path: Path) -> None:
    ours = NeuronSet({"en": {0: [1, 3], 2: [0]}, "zh": {1: [2]}}, "act", 3, 4)
    path = export_lape(ours, tmp_path / "x.neuron.pth")
    raw = torch.load(path, weights_only=True)
    assert len(raw) == 2 and len(raw[0]) == 3 and raw[0][0].dtype == torch.long
    assert raw[0][0].tolist() == [1, 3] and raw[1][0].tolist() == []
    back = import_lape(path, ["en", "zh"], d_ff=4)
    assert back.neurons == ours.neurons and back.n_layers == 3 and back.site == "act"
    # another language order
    swapped = import_lape(export_lape(ours, tmp_path / "y.pth", ["zh", "en"]), ["zh", "en"])
    assert swapped.neurons == ours.neurons


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_pickled_objects_are_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.neuron.pth"
    torch.save([[torch.tensor([1])], [Evil(marker)]], path)
    assert not marker.exists()
    with pytest.raises(NeuronSetError, match="refused"):
        import_lape(path, ["en", "zh"])
    assert not marker.exists()


@pytest.mark.parametrize(
    "data, languages, match",
    [
        ([[torch.tensor([1])]], ["en", "zh"], "languages"),
        ([[torch.tensor([1])], [torch.tensor([1]), torch.tensor([2])]], ["en", "zh"], "layers"),
        ([[torch.tensor([[1]])]], ["en"], "1-D integer"),
        ([[torch.tensor([0.5])]], ["en"], "1-D integer"),
        ([[torch.tensor([9])]], ["en"], "out-of-range"),
        ([[torch.tensor([-1])]], ["en"], "out-of-range"),
        ({"en": 1}, ["en"], "list over languages"),
        ([[torch.tensor([False, True, True])]], ["en"], "mask over 3"),  # not {0, 1}
    ],
)
def test_bad_layouts(tmp_path: Path, data: object, languages: list[str], match: str) -> None:
    path = tmp_path / "bad.pth"
    torch.save(data, path)
    with pytest.raises(NeuronSetError, match=match):
        import_lape(path, languages, d_ff=4)


def test_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(NeuronSetError, match="does not exist"):
        import_lape(tmp_path / "nope.pth", ["en"])
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(NeuronSetError, match="refused"):
        import_lape(tmp_path / "junk.pth", ["en"])
