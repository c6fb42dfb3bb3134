"""The notebook API on a tiny model: identify → evaluate → mask, without the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

import crane


def test_import_crane_is_light() -> None:
    code = "import sys, crane; assert 'torch' not in sys.modules, 'torch imported'; print(crane.__all__)"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_identify_evaluate_mask(tiny_llama_dir: Path, tmp_path: Path) -> None:
    model = crane.load_model(str(tiny_llama_dir))
    sets = crane.identify(
        model, ["en", "zh", "vi"], corpus="udhr", methods="gradxact,lape", budget="match:gradxact",
        verify=False, max_texts=6, quantile=0.5, out=tmp_path / "run",
    )
    assert set(sets) == {"gradxact", "lape"}
    assert isinstance(sets["gradxact"], crane.NeuronSet)
    assert (tmp_path / "run" / "neurons-lape.json").is_file()
    matrix = crane.evaluate(model, sets["gradxact"], max_texts=2, random_controls=False)
    delta = matrix.delta()
    assert isinstance(delta, pd.DataFrame) and list(delta.columns) == ["en", "zh", "vi"]
    assert (delta.loc["none"] == 0).all()
    ids = model.tokenizer("All human beings", return_tensors="pt").input_ids
    before = model.model(ids).logits
    with crane.mask(model.model, {0: list(range(48))}):
        assert not (model.model(ids).logits == before).all()
    assert (model.model(ids).logits == before).all()
    single = crane.identify(model, ["en", "zh"], corpus="udhr", methods="actmean", budget="4", max_texts=4)
    assert isinstance(single, crane.NeuronSet) and single.size("en") == 4


def test_identify_takes_token_budget_and_shard_options(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    from crane.data.corpus import Corpus

    model = crane.load_model(str(tiny_llama_dir))
    texts = Corpus({
        "en": ["All are equal.", "Everyone is free.", "No one is a slave.", "Rest is a right."],
        "zh": ["人人平等。", "人人自由。", "任何人不得为奴。", "人人有休息的权利。"],
    })
    common = dict(corpus=texts, methods="actmean", budget="4", verify=False)
    whole = crane.identify(model, ["en", "zh"], **common)
    budget = whole.meta["counts"]["en"]["n_tokens"] // 2
    cut = crane.identify(
        model, ["en", "zh"], token_budget=budget, shard_texts=1, out=tmp_path / "run", **common
    )
    old_name = crane.identify(model, ["en", "zh"], max_tokens=budget, **common)
    assert isinstance(cut, crane.NeuronSet) and isinstance(whole, crane.NeuronSet)
    assert cut.meta["counts"] == old_name.meta["counts"] != whole.meta["counts"]
    shards = sorted((tmp_path / "run" / "activations" / "en").glob("shard-?????.safetensors"))
    assert 1 < len(shards) == cut.meta["counts"]["en"]["n_texts"] < 4  # one text per shard
    assert cut.meta["counts"]["en"]["n_tokens"] <= budget
