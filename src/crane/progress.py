"""Progress reporting without printing: the library calls a reporter, the CLI renders it.

Every reporter also logs on the ``crane`` logger (``logging``): each task's start and end with
its step count and seconds, and every status message, at DEBUG (``NullProgress``, the library
default) or INFO (the CLI's reporters). ``default_progress()`` gives notebook and terminal
users of the Python API ``tqdm`` bars.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger("crane")


class Progress(Protocol):
    """Receives progress events from long-running library calls."""

    def start(self, description: str, total: int) -> None:
        """A new task with ``total`` steps begins."""

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps of the current task are done."""

    def message(self, text: str) -> None:
        """A one-line status message (e.g. a one-time conversion)."""


class TaskClock:
    """The current task's name, size, progress and start time (for logs, elapsed and ETA)."""

    def __init__(self, level: int = logging.DEBUG) -> None:
        self.level = level
        self.description: str | None = None
        self.total = 0
        self.done = 0
        self.started = 0.0

    def start(self, description: str, total: int) -> None:
        self.finish()
        self.description, self.total, self.done = description, total, 0
        self.started = time.perf_counter()
        logger.log(self.level, "%s: started (%d steps)", description, total)

    def advance(self, steps: int = 1) -> bool:
        """Count ``steps``; ``True`` when this finished the task."""
        if self.description is None:
            return False
        self.done += steps
        if self.total and self.done >= self.total:
            self.finish()
            return True
        return False

    def finish(self) -> None:
        if self.description is not None:
            logger.log(
                self.level, "%s: done, %d of %d steps in %.1f s", self.description, self.done,
                self.total, self.elapsed(),
            )
            self.description = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def eta(self) -> float | None:
        """Seconds left at the rate so far (``None`` before the first step)."""
        if not self.done or not self.total:
            return None
        return self.elapsed() / self.done * max(self.total - self.done, 0)


class NullProgress:
    """Shows nothing (the library default); logs each task and message at DEBUG on the
    ``crane`` logger."""

    def __init__(self) -> None:
        self.clock = TaskClock(logging.DEBUG)

    def start(self, description: str, total: int) -> None:
        self.clock.start(description, total)

    def advance(self, steps: int = 1) -> None:
        self.clock.advance(steps)

    def message(self, text: str) -> None:
        logger.debug("%s", text)


class TqdmProgress:
    """``tqdm.auto`` bars (a widget in notebooks, a text bar in terminals), one per task."""

    def __init__(self) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self.bar: Any = None
        self.clock = TaskClock(logging.INFO)

    def start(self, description: str, total: int) -> None:
        self._close()
        self.clock.start(description, total)
        self.bar = self._tqdm(total=total, desc=description, leave=True)

    def advance(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)
        if self.clock.advance(steps):
            self._close()

    def message(self, text: str) -> None:
        logger.info("%s", text)
        self._tqdm.write(text)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _interactive() -> bool:
    """A notebook kernel, or stderr on a terminal."""
    if "ipykernel" in sys.modules:
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def default_progress() -> Progress:
    """What the Python API (``crane.api``) reports to when given no reporter: ``tqdm`` bars in
    a notebook or a terminal, else nothing but the ``crane`` logger."""
    try:
        return TqdmProgress() if _interactive() else NullProgress()
    except ImportError:  # tqdm comes with transformers; without it, log only
        return NullProgress()


StatusCallback = Callable[[str], None]
"""A one-line status sink, e.g. ``Progress.message`` (used by model loading)."""
