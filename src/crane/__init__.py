"""crane-neurons: find the neurons a multilingual language model needs for each language."""

from __future__ import annotations

__version__ = "0.1.0"
