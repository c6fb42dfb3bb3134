"""docs/contributing.md's worked examples run as written: its Python blocks under "Adding a
method" and "Adding a benchmark" are executed in order in one namespace, on the tiny Llama
(the only change: the ``MODEL = ...`` line points at it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "contributing.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
MODEL_LINE = re.compile(r'^MODEL = "[^"\n]*"$', re.M)


def section_blocks(title: str) -> list[str]:
    """The Python blocks of the ``## title`` section, in order."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/contributing.md has no section '## {title}'"
    blocks = FENCE.findall(match.group(1))
    assert blocks, f"the section '{title}' has no Python block"
    return blocks


@pytest.fixture(scope="module")
def examples(tiny_llama_dir: Path) -> Any:
    """Run both examples; yield their namespace; unregister the example's method after."""
    from crane.methods import unregister_method

    method = "\n".join(section_blocks("Adding a method"))
    assert len(MODEL_LINE.findall(method)) == 1, "the method example sets MODEL once"
    method = MODEL_LINE.sub(f"MODEL = {str(tiny_llama_dir)!r}", method)
    benchmark = "\n".join(section_blocks("Adding a benchmark"))
    namespace: dict[str, Any] = {"__name__": "contributing_example"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # conftest's per-test fixture does not cover a module fixture
    try:
        # dont_inherit: the blocks run as written, without this module's __future__ imports
        for title, code in (("method", method), ("benchmark", benchmark)):
            exec(
                compile(code, f"contributing.md: Adding a {title}", "exec", dont_inherit=True),
                namespace,
            )
        yield namespace
    finally:
        unregister_method("varcontrast")
        torch.set_num_threads(threads)


def test_the_method_example_registers_and_identifies(examples: dict[str, Any]) -> None:
    from crane.methods import get_method

    spec = get_method("varcontrast")
    assert spec.statistics == "activation" and spec.scorer is examples["variance_scores"]
    mine, control = examples["mine"], examples["control"]
    assert mine.languages == ["en", "vi"]
    for lang in mine.languages:
        assert mine.size(lang) == 6  # the asked budget, per language
        assert control.layer_counts(lang) == mine.layer_counts(lang)  # layer-matched
    assert mine.site == "down_in" and control.site == mine.site
    assert control.meta["matched_to"] == "varcontrast" and control.meta["seed"] == 0
    assert control.neurons != mine.neurons
    assert mine.meta["identified_with"] == "varcontrast"


def test_the_benchmark_example_gives_cells_and_selectivity(examples: dict[str, Any]) -> None:
    from crane.evaluation.conditions import Benchmark

    benchmark, cells, heldout = examples["benchmark"], examples["cells"], examples["heldout"]
    assert isinstance(benchmark, Benchmark)
    conditions = [c.name for c in examples["conditions"]]
    assert conditions == [
        "none",
        "varcontrast:en",
        "varcontrast:vi",
        "random~varcontrast:en",
        "random~varcontrast:vi",
    ]
    assert set(cells) == {(c, lang) for c in conditions for lang in heldout.languages}
    for (_, lang), cell in cells.items():
        assert len(cell.num) == len(cell.den) == len(heldout[lang]) == 3  # one unit per text
        assert all(d > 0 for d in cell.den) and cell.value > 0
    for lang in heldout.languages:  # masking a language's neurons changes its value
        assert cells[(f"varcontrast:{lang}", lang)].value != cells[("none", lang)].value
    metrics = examples["table"]["metrics"]
    assert set(metrics) == {"varcontrast", "random"}
    for per_language in metrics.values():
        assert set(per_language) == {"en", "vi"}
        for m in per_language.values():
            low, high = m["sel_ci"]
            assert low <= high
    # the point estimate of row_metrics is the bootstrap table's full-data value
    row = examples["row_metrics"](examples["damage"], "vi")
    assert row["sel"] == pytest.approx(metrics["varcontrast"]["vi"]["sel"], abs=1e-9)
