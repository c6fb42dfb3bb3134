
"""JSON Lines: one JSON value per non-blank line, lines split at ``\\r\\n``, ``\\n`` or ``\\r``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from crane.io import parse_json

__all__ = ["NEWLINE", "json_lines"]

NEWLINE = re.compile(r"\r\n|\n|\r")
"""Line breaks of a text file (Windows, Unix and old Mac)."""


def json_lines(
    text: str, bad_json: Callable[[int, json.JSONDecodeError], Exception]
) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of every non-blank line of ``text`` (numbers from 1).

    A line that is not valid JSON raises ``bad_json(line number, error)`` (chained to the
    decoding error), so each reader words the message for its own kind of file.
    """
    for i, line in enumerate(NEWLINE.split(text)):
        if not line.strip():
            continue
        try:
            value = parse_json(line)
        except json.JSONDecodeError as exc:
            raise bad_json(i + 1, exc) from exc
        yield i + 1, value
