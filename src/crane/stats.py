"""Per-language neuron statistics: streaming accumulators that merge by summation.

A :class:`Stats` holds, for each language, named float64 tensors of shape ``[n_layers, d_ff]``
(sums over sequences) and integer counts. Because every entry is a sum, statistics computed on
disjoint parts of a corpus (shards, ranks) merge by addition into exactly the statistics of the
whole. Files: one safetensors file of tensors plus a JSON sidecar (counts, provenance and the
sha256 of the tensor file); the sidecar is written last, so a shard without a valid sidecar is
incomplete and is recomputed, never read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from crane.errors import ConfigError
from crane.faults import kill_point
from crane.io import atomic_write_bytes, atomic_write_json, parse_json

STATS_FORMAT = "crane-stats"
STATS_VERSION = 1

RELEVANCE_KEYS: tuple[str, ...] = (
    "rel_sum",  # Σ_x R(x)                 signed relevance
    "rel_abs_sum",  # Σ_x |R(x)|
    "rel_pos_sum",  # Σ_x max(R(x), 0)
    "prof_sum",  # Σ_x R(x) / Σ_n |R_n(x)|   per-sequence normalised (signed)
    "prof_abs_sum",  # Σ_x |R(x)| / Σ_n |R_n(x)|
    "prof_pos_sum",  # Σ_x max(R(x), 0) / Σ_n |R_n(x)|
)
"""Relevance accumulators; ``x`` runs over sequences (token windows) of one language."""


@dataclass
class LanguageStats:
    """Sums over one language's sequences: ``tensors[name]`` is ``[n_layers, d_ff]`` float64."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, value: torch.Tensor) -> None:
        """Add ``value`` (any float dtype) into accumulator ``name``."""
        value = value.detach().to(device="cpu", dtype=torch.float64)
        if not torch.isfinite(value).all():
            raise ConfigError(
                f"The model produced NaN or infinite values for the statistic '{name}'; check "
                "its weights, or load it in float32 (--dtype float32)."
            )
        if name in self.tensors:
            self.tensors[name] += value
        else:
            self.tensors[name] = value.clone()

    def count(self, name: str, n: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + int(n)

    def merge(self, other: LanguageStats) -> LanguageStats:
        """A new LanguageStats holding the sums of both."""
        out = LanguageStats({k: v.clone() for k, v in self.tensors.items()}, dict(self.counts))
        for name, value in other.tensors.items():
            out.add(name, value)
        for name, n in other.counts.items():
            out.count(name, n)
        return out

    def mean(self, name: str, denominator: str = "n_sequences") -> torch.Tensor:
        """Accumulator ``name`` divided by a count (default: the number of sequences)."""
        n = self.counts.get(denominator, 0)
        if name not in self.tensors or n <= 0:
            raise ConfigError(
                f"Statistics have no '{name}' over any '{denominator}'; collect them first "
                "(crane identify) with a non-empty corpus."
            )
        return self.tensors[name] / n


@dataclass
class Stats:
    """Statistics of several languages with the provenance that produced them."""

    languages: dict[str, LanguageStats] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, language: str) -> LanguageStats:
        if language not in self.languages:
            raise ConfigError(
                f"Statistics have no language '{language}'; they have: "
                f"{', '.join(self.languages) or 'none'}."
            )
        return self.languages[language]

    @property
    def language_codes(self) -> list[str]:
        return list(self.languages)

    def merge(self, other: Stats) -> Stats:
        """Sum two Stats (same meta expected; the left one's meta is kept)."""
        out = Stats({k: v.merge(LanguageStats()) for k, v in self.languages.items()}, dict(self.meta))
        for lang, value in other.languages.items():
            out.languages[lang] = out.languages[lang].merge(value) if lang in out.languages else value
        return out

    def stack(self, name: str, denominator: str = "n_sequences") -> torch.Tensor:
        """Per-language means of accumulator ``name``: ``[n_languages, n_layers, d_ff]``."""
        return torch.stack([self[lang].mean(name, denominator) for lang in self.languages])

    # ---- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.safetensors) and its sidecar ``path.json``, both atomically."""
        path = Path(path)
        tensors = {
            f"{lang}/{name}": value.contiguous()
            for lang, ls in self.languages.items()
            for name, value in ls.tensors.items()
        }
        payload = save(tensors)
        atomic_write_bytes(path, payload)
        sidecar = {
            "format": STATS_FORMAT,
            "version": STATS_VERSION,
            "sha256": hashlib.sha256(payload).hexdigest(),
            "counts": {lang: ls.counts for lang, ls in self.languages.items()},
            "meta": self.meta,
        }
        atomic_write_json(sidecar_path(path), sidecar)
        kill_point(f"stats:{path.parent.parent.name}/{path.parent.name}/{path.name}")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Stats:
        """Read a file written by :meth:`save`; raises :class:`ConfigError` if it is incomplete."""
        path = Path(path)
        sidecar = read_sidecar(path)
        if sidecar is None:
            raise ConfigError(
                f"Statistics file {path} is missing, incomplete or corrupt; delete it and rerun "
                "to recompute it."
            )
        tensors = load_file(str(path))
        languages: dict[str, LanguageStats] = {
            lang: LanguageStats({}, {k: int(v) for k, v in counts.items()})
            for lang, counts in sidecar["counts"].items()
        }
        for key, value in tensors.items():
            lang, _, name = key.partition("/")
            languages.setdefault(lang, LanguageStats()).tensors[name] = value.to(torch.float64)
        return cls(languages, dict(sidecar.get("meta") or {}))


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar of a complete, intact statistics file, else ``None``."""
    side = sidecar_path(path)
    if not path.is_file() or not side.is_file():
        return None
    try:
        sidecar = parse_json(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(sidecar, dict) or sidecar.get("format") != STATS_FORMAT:
        return None
    if sidecar.get("version") != STATS_VERSION:
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return sidecar if digest == sidecar.get("sha256") else None


def merge_all(stats: Iterable[Stats]) -> Stats:
    """Sum several Stats in order (deterministic); the first one's meta is kept."""
    total: Stats | None = None
    for one in stats:
        total = one if total is None else total.merge(one)
    return total if total is not None else Stats()
