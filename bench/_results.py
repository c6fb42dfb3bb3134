"""Shared by the benchmarks: write one section of ``bench/RESULTS.md`` (others are kept)."""

from __future__ import annotations

import platform
import re
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = (
    "# Benchmark results\n\n"
    "Each section is written by the benchmark it names, from one run; every ratio compares two "
    "measurements taken in the same process, alternating, so machine noise affects both.\n"
)


def machine() -> str:
    """One line describing where a benchmark ran."""
    return (
        f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )


def write_section(name: str, body: str) -> Path:
    """Replace (or add) the section ``## name`` of RESULTS.md with ``body``."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else HEADER
    section = f"<!-- {name} -->\n## {name}\n\n{body.strip()}\n<!-- /{name} -->\n"
    pattern = re.compile(rf"<!-- {re.escape(name)} -->\n.*?<!-- /{re.escape(name)} -->\n", re.S)
    text = pattern.sub(lambda _m: section, text) if pattern.search(text) else text + "\n" + section
    RESULTS.write_text(text, encoding="utf-8")
    return RESULTS
