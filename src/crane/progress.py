"""Progress reporting without printing: the library calls a reporter, the CLI renders it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Progress(Protocol):
    """Receives progress events from long-running library calls."""

    def start(self, description: str, total: int) -> None:
        """A new task with ``total`` steps begins."""

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps of the current task are done."""

    def message(self, text: str) -> None:
        """A one-line status message (e.g. a one-time conversion)."""


class NullProgress:
    """A reporter that ignores everything (the library default)."""

    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass

    def message(self, text: str) -> None:
        pass


StatusCallback = Callable[[str], None]
"""A one-line status sink, e.g. ``Progress.message`` (used by model loading)."""
