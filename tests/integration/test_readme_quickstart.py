"""The README's quick start, run exactly as written (each line through bash, with this
environment's ``crane`` first on PATH) on the real Gemma 3 270M."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart_commands() -> list[str]:
    """The lines of the first bash block under '## Quick start'."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quick start") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "the README's quick start has no bash block"
    return [line for line in block.group(1).replace("\\\n", " ").splitlines() if line.strip()]


def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    commands = quickstart_commands()
    assert len(commands) == 3 and all(c.startswith("crane ") for c in commands)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    outputs = []
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=900,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
    sets = json.loads((tmp_path / "runs/quick/neurons-crane.json").read_text())
    assert set(sets["neurons"]) == {"en", "zh", "vi"}
    assert "per layer" in outputs[1]
    matrix = json.loads((tmp_path / "runs/quick/heldout.json").read_text())
    delta = matrix["delta"]
    for lang in ("en", "zh", "vi"):
        # the language's own set raises its bits per byte more than a random set of that size
        assert delta[f"neurons-crane:{lang}"][lang] > delta[f"random~neurons-crane:{lang}"][lang]
