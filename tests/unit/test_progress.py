"""Progress without a terminal, in logs and in notebooks: one line per task and stage with its
seconds, an ETA in between, and the ``crane`` logger."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crane.cli import render
from crane.progress import NullProgress, TaskClock


def test_the_library_default_logs_tasks_with_their_seconds(caplog: pytest.LogCaptureFixture) -> None:
    progress = NullProgress()
    with caplog.at_level(logging.DEBUG, logger="crane"):
        progress.start("relevance: en", 3)
        progress.advance(2)
        progress.advance(1)
        progress.message("a status line")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "relevance: en: started (3 steps)"
    assert lines[1].startswith("relevance: en: done, 3 of 3 steps in ")
    assert lines[2] == "a status line"


def test_the_eta_follows_the_rate_so_far(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("crane.progress.time.perf_counter", lambda: now[0])
    clock = TaskClock()
    clock.start("x", 10)
    assert clock.eta() is None
    now[0] = 104.0
    clock.advance(2)
    assert clock.eta() == pytest.approx(16.0)  # 2 s a step, 8 steps left


def test_without_a_terminal_each_task_prints_plain_lines(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render, "PLAIN_EVERY", 0.0)  # a progress line at every step
    with render.progress_bars() as bars:  # stderr is captured: not a terminal
        assert bars.disable
        reporter = render.RichReporter(bars)
        reporter.start("bpb: evaluating en", 2)
        reporter.advance()
        reporter.advance()
        reporter.message("stage identify: done in 1.0 s")
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "bpb: evaluating en: 2 steps"
    assert err[1].startswith("bpb: evaluating en: 1/2, ") and "s left" in err[1]
    assert err[2].startswith("bpb: evaluating en: done (2 steps) in ") and err[2].endswith(" s")
    assert err[3] == "stage identify: done in 1.0 s"


def test_a_study_with_its_output_in_a_file_shows_every_stage_with_seconds(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "study.toml"
    config.write_text(
        f'model = "{tiny_llama_dir}"\nlanguages = "en,vi"\nmethods = "actmean"\n'
        'budget = "5"\nidentify_corpus = "udhr"\nidentify_max_texts = 4\nverify = false\n'
        "bpb_max_texts = 2\nrandom_control = false\nn_boot = 10\n",
        encoding="utf-8",
    )
    log = tmp_path / "log.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("w") as sink:
        done = subprocess.run(
            [sys.executable, "-m", "crane", "run", str(config), "--out", str(tmp_path / "run")],
            stdout=sink, stderr=subprocess.STDOUT, env=env, timeout=600,
        )
    text = log.read_text(encoding="utf-8")
    assert done.returncode == 0, text
    for stage in ("identify", "evaluate:bpb"):
        assert f"stage {stage}: started" in text
        assert f"stage {stage}: done in " in text
    assert "\x1b[" not in text  # no terminal escapes in a file
    assert any(" steps) in " in line for line in text.splitlines())  # a task's end line


def test_the_gpu_check_script_runs_as_a_cpu_dry_run() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        ["bash", str(root / "scripts" / "gpu_check.sh"), "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("0 failed;")
    assert done.stdout.count("ok   ") >= 21


def test_quiet_and_verbose(tiny_llama_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import run_cli

    try:
        code, out, err = run_cli(["--quiet", "models", "check", str(tiny_llama_dir)], capsys)
        assert code == 0, err
        assert render.VERBOSITY["level"] == 0 and "loading" not in err
        code, out, err = run_cli(["models", "check", str(tiny_llama_dir)], capsys)
        assert code == 0 and render.VERBOSITY["level"] == 1
        assert "loading" in err  # the status lines of model loading
    finally:
        render.VERBOSITY["level"] = 1
