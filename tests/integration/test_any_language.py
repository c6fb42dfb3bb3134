"""A study in languages the project never named (en, de, ja, sw) on the real demo model, from
the bundled data alone: identification falls back from gettext to UDHR where the machine's
catalogs do not cover every language, evaluation is held-out UDHR (issue 15)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from crane.cli import main

pytestmark = pytest.mark.slow

STUDY = """
model = "gemma-3-270m"
languages = "en,de,ja,sw"
methods = "actmean"
budget = "0.5%"
identify_max_texts = 8
verify = false
bpb_max_texts = 2
choice_builtin_items = 0
random_seeds = 1
n_boot = 50
"""


def test_a_study_in_en_de_ja_sw_runs_from_the_bundled_data(tmp_path: Path) -> None:
    (tmp_path / "study.toml").write_text(STUDY, encoding="utf-8")
    try:
        main(["run", str(tmp_path / "study.toml"), "--out", str(tmp_path / "run")])
    except SystemExit as exc:  # pragma: no cover - main only exits on errors
        assert exc.code in (0, None)
    results = json.loads((tmp_path / "run" / "study.json").read_text(encoding="utf-8"))
    assert results["languages"] == ["en", "de", "ja", "sw"]
    assert results["identify_corpus"] == "udhr" or any("udhr" in n.lower() for n in results["notes"])
    bpb = results["benchmarks"]["bpb"]
    for lang in ("en", "de", "ja", "sw"):
        assert math.isfinite(bpb["none"][lang]) and bpb["none"][lang] > 0
        assert math.isfinite(results["metrics"]["bpb"]["actmean"][lang]["sel"])
        assert results["sets"]["actmean"]["sizes"][lang] == round(0.005 * 18 * 2048)
