"""The one masked-evaluation loop: benchmarks × masking conditions × languages.

Every caller — ``crane evaluate`` (:func:`crane.evaluation.bpb.masking_matrix`,
:func:`crane.evaluation.choice.choice_matrix`), ``crane transfer``, the study and causal
verification — builds :class:`Condition` objects and :class:`Benchmark` objects and calls
:func:`run_conditions`. A condition masks one language's neurons of a set (or nothing); a
benchmark evaluates one language under whatever masks are on and returns a :class:`Cell` of
per-unit numerators and denominators (texts or questions), which is all the metrics need
(:mod:`crane.evaluation.metrics`). With a :class:`RowCache` each (benchmark, condition) row is
saved as soon as it is done and reused when its inputs are unchanged and its numbers intact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from crane.evaluation.metrics import Units
from crane.faults import kill_point
from crane.intervene import mask_neurons
from crane.io import atomic_write_text, parse_json
from crane.manifest import inputs_key
from crane.models.adapters import Adapter
from crane.neurons import NeuronSet
from crane.progress import NullProgress, Progress

NONE = "none"
"""Name of the unmasked condition."""
CONTROL_PREFIX = "random~"
"""Prefix of a layer-matched random control's condition name (``random~<condition>``)."""


@dataclass
class Cell:
    """One (condition, language) result of a benchmark.

    Attributes:
        num, den: ``[n_units]`` per-unit numerator and denominator (bits and bytes per text;
            correct and 1 per question): the benchmark's value is ``Σ num / Σ den``.
        extra: further per-unit lists saved with the row (e.g. generated texts).
        detail: the benchmark's full result object, in memory only (``None`` when the row
            was read from a cache).
    """

    num: list[float]
    den: list[float]
    extra: dict[str, list[Any]] = field(default_factory=dict)
    detail: Any = None

    @property
    def units(self) -> Units:
        return Units(np.asarray(self.num, dtype=np.float64), np.asarray(self.den, np.float64))

    @property
    def value(self) -> float:
        return self.units.value

    def to_json(self) -> dict[str, list[Any]]:
        return {"num": self.num, "den": self.den, **self.extra}

    @classmethod
    def from_json(cls, data: Mapping[str, list[Any]]) -> Cell:
        extra = {k: v for k, v in data.items() if k not in ("num", "den")}
        return cls(list(data["num"]), list(data["den"]), extra)


@runtime_checkable
class Benchmark(Protocol):
    """What :func:`run_conditions` evaluates (implementations: :mod:`crane.evaluation.benchmarks`).

    ``evaluate(language)`` runs the bound model on one language's units under whatever masks
    are active and returns a :class:`Cell`; ``key`` identifies the inputs (texts, options) for
    caching; ``items`` is the number of units per language.
    """

    name: str
    title: str
    unit: str
    higher_is_better: bool

    @property
    def items(self) -> dict[str, int]: ...

    @property
    def key(self) -> dict[str, Any]: ...

    def evaluate(self, language: str) -> Cell: ...


@dataclass(frozen=True)
class Condition:
    """One masking condition: ``masked``'s neurons of ``neurons`` masked (or nothing).

    ``method`` labels the set (``crane``, ``lape``, ``random``, ...) for the metrics."""

    name: str
    neurons: NeuronSet | None = None
    masked: str | None = None
    method: str | None = None

    def key(self) -> dict[str, Any] | None:
        """What the condition masks (site, language, neurons): part of a cached row's key."""
        if self.neurons is None or self.masked is None:
            return None
        return {
            "site": self.neurons.site,
            "lang": self.masked,
            "neurons": self.neurons.layers(self.masked),
        }

    def masks(
        self,
        model: nn.Module,
        *,
        adapter: Adapter | None = None,
        mode: str = "zero",
        alpha: float = 0.0,
        means: torch.Tensor | None = None,
    ) -> contextlib.AbstractContextManager[Any]:
        """The context manager that applies this condition's masks (none for ``none``)."""
        if self.neurons is None or self.masked is None:
            return contextlib.nullcontext()
        return mask_neurons(
            model,
            self.neurons,
            languages=[self.masked],
            mode=mode,
            alpha=alpha,
            means=means,
            adapter=adapter,
        )


UNMASKED = Condition(NONE)


def set_conditions(
    sets: Mapping[str, NeuronSet],
    languages: Sequence[str] | None = None,
    *,
    name: str | None = None,
) -> list[Condition]:
    """One condition per (set, language it holds): that language's neurons masked.

    ``name`` formats the condition name from ``set`` and ``lang`` (default: ``<set>`` for a
    one-language set, else ``<set>:<lang>``); ``languages`` limits the languages (default:
    every language of each set)."""
    out = []
    for set_name, neuron_set in sets.items():
        single = len(neuron_set.languages) == 1
        pattern = name or ("{set}" if single else "{set}:{lang}")
        for lang in neuron_set.languages:
            if languages is None or lang in languages:
                label = pattern.format(set=set_name, lang=lang)
                out.append(Condition(label, neuron_set, lang, set_name))
    return out


def random_control(neuron_set: NeuronSet, seed: int, d_ff: int | None = None) -> NeuronSet:
    """THE random control: a layer-matched copy of ``neuron_set`` (same languages, same
    per-layer counts, seeded indices; :meth:`NeuronSet.random_like`)."""
    return neuron_set.random_like(seed=seed, d_ff=d_ff)


def control_seeds(seed: int, n_seeds: int) -> list[int]:
    """The seeds of ``n_seeds`` random controls: ``seed, seed + 1, ...``."""
    return [seed + i for i in range(max(n_seeds, 0))]


def control_conditions(
    sets: Mapping[str, NeuronSet],
    *,
    seeds: Sequence[int],
    d_ff: int | None = None,
    languages: Sequence[str] | None = None,
) -> list[Condition]:
    """For every set, a layer-matched random control per seed, one condition per language,
    named like the set's own conditions with the prefix ``random~`` (first seed) and the
    suffix ``#<seed>`` on the set name (further seeds)."""
    out = []
    for i, seed in enumerate(seeds):
        controls = {
            f"{CONTROL_PREFIX}{name}" + (f"#{seed}" if i else ""): random_control(s, seed, d_ff)
            for name, s in sets.items()
        }
        out += [
            Condition(c.name, c.neurons, c.masked, "random")
            for c in set_conditions(controls, languages)
        ]
    return out


# ---- the cache of finished rows ---------------------------------------------------------------
def cells_sha256(cells: Any) -> str:
    """Checksum of a row's numbers as written (``json.dumps`` round-trips them exactly)."""
    return hashlib.sha256(json.dumps(cells).encode("utf-8")).hexdigest()


def safe_name(name: str) -> str:
    """A condition name as a file name."""
    import re

    return re.sub(r"[^A-Za-z0-9_.@+-]", "_", name)


@dataclass
class RowCache:
    """Saved rows under ``folder/<benchmark>/<condition>.json``, each keyed on ``base`` (the
    model and languages), the benchmark's key and what the condition masks."""

    folder: Path
    base: dict[str, Any]

    def path(self, benchmark: Benchmark, condition: Condition) -> Path:
        return self.folder / benchmark.name / f"{safe_name(condition.name)}.json"

    def row_key(self, benchmark: Benchmark, condition: Condition) -> str:
        return inputs_key(
            {
                **self.base,
                "benchmark": benchmark.key,
                "row": condition.name,
                "set": condition.key(),
            }
        )

    def read(self, benchmark: Benchmark, condition: Condition) -> dict[str, Cell] | None:
        """The saved row when intact (checksum) and computed for the same inputs; else
        ``None``: a truncated, edited or foreign file is never read."""
        try:
            data = parse_json(self.path(benchmark, condition).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(data, dict) or "cells" not in data:
            return None
        if data.get("key") != self.row_key(benchmark, condition):
            return None
        if data.get("sha256") != cells_sha256(data["cells"]):
            return None
        try:
            return {lang: Cell.from_json(c) for lang, c in data["cells"].items()}
        except (KeyError, TypeError, AttributeError):
            return None

    def write(self, benchmark: Benchmark, condition: Condition, row: dict[str, Cell]) -> Path:
        cells = {lang: cell.to_json() for lang, cell in row.items()}
        record = {
            "key": self.row_key(benchmark, condition),
            "row": condition.name,
            "cells": cells,
            "sha256": cells_sha256(cells),
        }
        return atomic_write_text(self.path(benchmark, condition), json.dumps(record) + "\n")

    def stage_key(self, benchmark: Benchmark, conditions: Sequence[Condition]) -> str:
        """The key of a whole benchmark stage (every condition's row key)."""
        return inputs_key([self.row_key(benchmark, c) for c in conditions])


Results = dict[str, dict[tuple[str, str], Cell]]
"""Benchmark name → (condition name, evaluated language) → Cell."""


def run_conditions(
    model: nn.Module,
    conditions: Sequence[Condition],
    benchmarks: Sequence[Benchmark],
    *,
    languages: Sequence[str] | None = None,
    adapter: Adapter | None = None,
    cache: RowCache | None = None,
    mode: str = "zero",
    alpha: float = 0.0,
    means: torch.Tensor | None = None,
    progress: Progress | None = None,
) -> Results:
    """Evaluate every benchmark on every language under every condition.

    ``languages`` defaults to each benchmark's own (its ``items``). The masks of a condition
    are applied once for all benchmarks and removed afterwards, also on error. With ``cache``,
    finished rows are read instead of computed and new rows are saved one by one.
    """
    progress = progress or NullProgress()
    results: Results = {b.name: {} for b in benchmarks}
    for condition in conditions:
        todo: list[Benchmark] = []
        for benchmark in benchmarks:
            saved = cache.read(benchmark, condition) if cache is not None else None
            if saved is None:
                todo.append(benchmark)
            else:
                for lang, cell in saved.items():
                    results[benchmark.name][(condition.name, lang)] = cell
        if not todo:
            continue
        with condition.masks(model, adapter=adapter, mode=mode, alpha=alpha, means=means):
            for benchmark in todo:
                progress.message(f"{benchmark.name}: evaluating {condition.name}")
                row: dict[str, Cell] = {}
                for lang in languages if languages is not None else benchmark.items:
                    row[lang] = benchmark.evaluate(lang)
                    kill_point("eval-lang")
                if cache is not None:
                    cache.write(benchmark, condition, row)
                    kill_point("eval-row")
                for lang, cell in row.items():
                    results[benchmark.name][(condition.name, lang)] = cell
    return results
