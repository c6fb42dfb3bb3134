"""Body + head reproduce the model's logits for every family; gold logits equal gathered ones."""

from __future__ import annotations

import pytest
import torch

from crane.errors import UnsupportedModelError
from crane.models import supported_model_types
from crane.models.head import check_head, final_hidden, gold_logits, head_postprocess, output_logits


@pytest.mark.parametrize("model_type", supported_model_types())
def test_head_reproduces_logits(model_type: str, tiny_model) -> None:
    model = tiny_model(model_type)
    ids = torch.tensor([[5, 9, 17, 33, 2, 80], [7, 7, 40, 11, 3, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask).logits
        hidden = final_hidden(model, ids, mask)
        torch.testing.assert_close(output_logits(model, hidden), reference, rtol=1e-5, atol=1e-5)
        targets = torch.tensor([1, 50, 200, 3, 4, 5])
        torch.testing.assert_close(
            gold_logits(model, hidden[0], targets), reference[0, torch.arange(6), targets],
            rtol=1e-5, atol=1e-5,
        )


def test_postprocessing_is_exercised(tiny_model) -> None:
    assert head_postprocess(tiny_model("gemma3_text")) == (0.5, None)
    assert head_postprocess(tiny_model("granite")) == (None, 4.0)


def test_unknown_postprocessing_is_detected(tiny_model) -> None:
    model = tiny_model("llama")
    original = model.forward

    def scaled_forward(*args, **kwargs):  # a model that rescales its logits in an unknown way
        out = original(*args, **kwargs)
        out.logits = out.logits * 3.0
        return out

    model.forward = scaled_forward
    ids = torch.tensor([[5, 9, 17]])
    with pytest.raises(UnsupportedModelError, match="crane.models.head"):
        check_head(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
