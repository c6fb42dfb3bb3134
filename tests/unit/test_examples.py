"""Every script and config in examples/ runs, on the tiny Llama instead of Gemma (same code
path, seconds instead of minutes); the README's quick start runs on Gemma in the slow tests."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


@pytest.fixture(scope="module")
def quickstart_run(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("quickstart")
    out = _run([str(EXAMPLES / "quickstart.py"), "--model", str(tiny_llama_dir),
                "--max-texts", "3", "--eval-texts", "1"], work)
    assert "crane {'en'" in out and "lape {'en'" in out
    return work / "runs" / "quickstart"


def test_quickstart_writes_sets_and_the_delta_table(quickstart_run: Path) -> None:
    import pandas as pd

    from crane.neurons import NeuronSet

    for method in ("crane", "lape"):
        found = NeuronSet.load(quickstart_run / f"neurons-{method}.json")
        assert found.languages == ["en", "zh", "vi"]
    delta = pd.read_csv(quickstart_run / "quickstart-delta.csv", index_col=0)
    assert list(delta.columns) == ["en", "zh", "vi"]
    assert "crane:zh" in delta.index and "random~lape:vi" in delta.index
    assert (delta.loc["none"] == 0).all()


def test_transfer_example_reads_the_chat_model_in_its_template(
    quickstart_run: Path, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    chat = tmp_path / "chat"
    shutil.copytree(tiny_llama_dir, chat)
    tokenizer = AutoTokenizer.from_pretrained(chat)
    tokenizer.chat_template = (
        "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant> {% endif %}"
    )
    tokenizer.save_pretrained(chat)
    out = _run([str(EXAMPLES / "transfer_to_chat.py"), "--neurons", str(quickstart_run),
                "--chat", str(chat), "--chat-run", str(quickstart_run),
                "--eval-texts", "1", "--out", "t.json"], tmp_path)
    numbers = json.loads((tmp_path / "t.json").read_text())
    assert numbers["models"]["chat_template"] == "b"
    assert numbers["jaccard"] == {"en": 1.0, "zh": 1.0, "vi": 1.0}  # the same sets on both
    assert "T = " in out


def test_lm_eval_example_changes_scores_only_when_masked(
    quickstart_run: Path, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("lm_eval")
    out = _run([str(EXAMPLES / "lm_eval_udhr.py"), "--neurons",
                str(quickstart_run / "neurons-crane.json"), "--model", str(tiny_llama_dir),
                "--texts", "1"], tmp_path)
    lines = {line.split(":")[0]: line for line in out.splitlines() if line.startswith("masked ")}
    assert set(lines) == {"masked none", "masked en", "masked zh", "masked vi"}
    assert len({line.split(": ", 1)[1] for line in lines.values()}) > 1


def test_study_config_example_runs_with_its_own_data(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from crane.cli import main

    out = tmp_path / "run"
    main(["run", str(EXAMPLES / "study.toml"), "--out", str(out), "--model", str(tiny_llama_dir)])
    results: dict[str, Any] = json.loads((out / "study.json").read_text())
    assert results["config"]["model"] == str(tiny_llama_dir)
    assert set(results["benchmarks"]) == {"bpb", "mc"}  # bits per byte + the question files
    corpus = results["config"]["identify_corpus"]
    assert Path(corpus).is_absolute() and Path(corpus).name == "corpus.jsonl"
    assert (out / "report" / "index.html").is_file()


def test_config_paths_are_read_from_the_config_folder(tmp_path: Path) -> None:
    from crane.study import load_config

    config = load_config(EXAMPLES / "study.toml")
    assert Path(config.choice_files["vi"]) == EXAMPLES / "own_data" / "questions_vi.jsonl"
    assert config.model == "gemma-3-270m" and config.bpb_corpus == "udhr"  # names unchanged
    moved = tmp_path / "study.toml"
    moved.write_text((EXAMPLES / "study.toml").read_text())
    assert dataclasses.asdict(load_config(moved))["identify_corpus"] == "own_data/corpus.jsonl"


def test_selection_v2_example_config_is_valid() -> None:
    """The v2 comparison config the README and bench/SELECTIVITY.md quote loads and validates
    (its run takes about 45 minutes on Gemma, so it is not run here)."""
    from crane.study import load_config

    config = load_config(EXAMPLES / "selection_v2.toml")
    config.validate()
    assert (config.score, config.target, config.verify_mode) == ("contrast", "logprob", "rounds")
    assert set(config.verify_methods) == {"gradxact", "actmean"}


def test_english_control_example_config_is_valid() -> None:
    """The English-control study the README quotes loads, validates and adds French."""
    from crane.study import load_config

    config = load_config(EXAMPLES / "english_control.toml")
    config.validate()
    assert config.control_language == "fr" and config.languages == ["en", "zh", "vi", "fr"]


def test_selection_v3_example_config_is_valid() -> None:
    """The full v3 study: every method as published and four of them after the same search."""
    from crane.study import load_config
    from crane.study.identify import study_methods

    config = load_config(EXAMPLES / "selection_v3.toml")
    config.validate()
    assert config.verify_mode == "search" and config.verify_methods == []
    assert config.search_methods == ["crane", "gradxact", "actmean", "lape"]
    names = study_methods(config)
    for method in config.search_methods:
        assert names.index(f"{method}+search") == names.index(method) + 1
    assert "optimise" in names and config.optimise_start == "best"


def test_fisher_score_example_config_is_valid() -> None:
    """The constructed `fisher` comparison bench/SELECTIVITY.md quotes loads and validates."""
    from crane.study import load_config

    config = load_config(EXAMPLES / "fisher_score.toml")
    config.validate()
    assert (config.score, config.target, config.verify_mode) == ("fisher", "logprob", "rounds")
    assert set(config.verify_methods) == set(config.methods) == {"gradxact", "actmean"}
