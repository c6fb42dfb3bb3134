"""A study's results (``RUN_DIR/study.json``, docs/results.md) as typed, frozen objects.

``StudyResults.load(path)`` or ``StudyResults.from_dict(data)`` checks the whole structure once
(types, required keys, and that every method and language a section names is one the study
declares) and raises :class:`ResultsError` with one sentence naming the problem and the fix.
Code that reads the objects afterwards can trust their shape. ``to_dict()`` gives back the JSON
structure (``from_dict(x).to_dict() == x`` for a study.json that crane wrote).

Undefined numbers (an undefined ratio, an interval the bootstrap could not give) are JSON
``null`` and ``None`` here; numbers keep their JSON type (int or float).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from crane.errors import ConfigError
from crane.io import parse_json

FORMAT = "crane-study/1"
METRIC_NAMES = ("damage", "off_target", "sel", "dd")
MIN_UNITS = 30
"""Fewer texts or items than this under a bootstrap interval: the report and the CLI warn."""
SELECTIVE, NOT_SELECTIVE = "selective", "no selective set at k"
"""A set's verdict against the layer-matched random control (``Comparisons.verdict``)."""

T = TypeVar("T")
Leaf = Callable[[Any, str], Any]  # checks one value at a place and returns what to keep
Interval = tuple[float | None, float | None]  # [low, high] of a 95% bootstrap interval
Matrix = Mapping[str, Mapping[str, float | None]]  # row key → column key → value


class ResultsError(ConfigError):
    """A study's results file is missing, unreadable, or not shaped as docs/results.md says."""


_FIX = "run crane demo or crane run again to rewrite it"


# ---- the objects ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelInfo:
    """The model a study loaded: ``spec`` as given, its shape, and every other provenance key."""

    spec: str | None = None
    n_layers: int | None = None
    d_ff: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)  # sha256, dtype, revision, ...

    def to_dict(self) -> dict[str, Any]:
        shape = {"spec": self.spec, "n_layers": self.n_layers, "d_ff": self.d_ff}
        return {**{k: v for k, v in shape.items() if v is not None}, **_plain(self.details)}


@dataclass(frozen=True)
class SetSummary:
    """One method's masked neuron sets: size and neurons per layer for each language."""

    sizes: Mapping[str, int] = field(default_factory=dict)
    layer_counts: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    file: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sizes": dict(self.sizes), "layer_counts": _plain(self.layer_counts)}
        return {**out, **_some(file=self.file), **_plain(self.extra)}


@dataclass(frozen=True)
class BenchmarkResults:
    """One benchmark: unmasked values per language and, per method → masked language →
    evaluated language, the masked value, its change Δ and the Δ's interval."""

    title: str | None = None
    unit: str | None = None
    higher_is_better: bool | None = None
    items: Mapping[str, int | None] = field(default_factory=dict)
    none: Mapping[str, float | None] = field(default_factory=dict)
    none_ci: Mapping[str, Interval | None] = field(default_factory=dict)
    """The unmasked value's 95% bootstrap interval per language (absent in older studies)."""
    value: Mapping[str, Matrix] = field(default_factory=dict)
    delta: Mapping[str, Matrix] = field(default_factory=dict)
    delta_ci: Mapping[str, Mapping[str, Mapping[str, Interval | None]]] = field(
        default_factory=dict
    )
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        head = _some(title=self.title, unit=self.unit, higher_is_better=self.higher_is_better)
        body = {
            k: _plain(getattr(self, k))
            for k in ("items", "none", "none_ci", "value", "delta", "delta_ci")
            if k != "none_ci" or self.none_ci
        }
        return {**head, **body, **_plain(self.extra)}


@dataclass(frozen=True)
class Metric:
    """Damage, off-target damage, Sel and DD of one benchmark × method × masked language."""

    damage: float | None = None
    damage_ci: Interval | None = None
    off_target: float | None = None
    off_target_ci: Interval | None = None
    sel: float | None = None
    sel_ci: Interval | None = None
    dd: float | None = None
    dd_ci: Interval | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # further metrics, same conventions

    def get(self, key: str) -> Any:
        """The value or interval called ``key`` (``"dd"``, ``"dd_ci"``, an extra metric)."""
        if key in _METRIC_FIELDS:
            return getattr(self, key)
        return self.extra.get(key)

    def to_dict(self) -> dict[str, Any]:
        return {**{k: _plain(getattr(self, k)) for k in _METRIC_FIELDS}, **_plain(self.extra)}


_METRIC_FIELDS = tuple(k for name in METRIC_NAMES for k in (name, f"{name}_ci"))


@dataclass(frozen=True)
class RelevanceEntry:
    """Relevance capture RC of one set (language → share) and its specificity RS."""

    rc: Mapping[str, float | None] = field(default_factory=dict)
    rs: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rc": dict(self.rc), "rs": self.rs, **_plain(self.extra)}


@dataclass(frozen=True)
class SweepSeries:
    """Damage on the target language and mean off-target damage, one value per budget, with
    95% intervals and Sel; ``at_off_target``: off-target level → own damage there (the
    frontier, interpolated; ``None`` where the sweep does not reach the level)."""

    target: tuple[float | None, ...] = ()
    off_target: tuple[float | None, ...] = ()
    target_ci: tuple[Interval | None, ...] = ()
    off_target_ci: tuple[Interval | None, ...] = ()
    sel: tuple[float | None, ...] = ()
    sel_ci: tuple[Interval | None, ...] = ()
    at_off_target: Mapping[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target": list(self.target), "off_target": list(self.off_target)}
        for name in ("target_ci", "off_target_ci", "sel", "sel_ci"):
            if getattr(self, name):
                out[name] = _plain(getattr(self, name))
        if self.at_off_target:
            out["at_off_target"] = dict(self.at_off_target)
        return out


@dataclass(frozen=True)
class Comparisons:
    """Methods compared on the same resamples of one benchmark (``crane.study.assemble``):
    ``paired`` A → B → L → ``{diff, ci}`` (Sel(A) − Sel(B)); ``efficiency`` method → L →
    ``{value, ci}`` (Sel / Sel* of ``optimise``); ``verdict`` method → L → ``selective`` or
    ``no selective set at k`` (against the layer-matched random control)."""

    paired: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]] = field(
        default_factory=dict
    )
    efficiency: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    verdict: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "paired": _plain(self.paired),
            "efficiency": _plain(self.efficiency),
            "verdict": _plain(self.verdict),
        }


@dataclass(frozen=True)
class Sweep:
    """Damage as the budget (a fraction of all neurons) grows: method → language → series."""

    budgets: tuple[float, ...] = ()
    benchmark: str | None = None
    verified: bool | None = None
    methods: Mapping[str, Mapping[str, SweepSeries]] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        head = {"budgets": list(self.budgets)}
        head |= _some(benchmark=self.benchmark, verified=self.verified)
        return {**head, "methods": _plain(self.methods), **_plain(self.extra)}


@dataclass(frozen=True)
class Overlap:
    """Jaccard indices: language → method × method, and method → language × language."""

    between_methods: Mapping[str, Matrix] = field(default_factory=dict)
    between_languages: Mapping[str, Matrix] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "between_methods": _plain(self.between_methods),
            "between_languages": _plain(self.between_languages),
        }


NO_METRIC = Metric()
NO_RELEVANCE = RelevanceEntry()


@dataclass(frozen=True)
class StudyResults:
    """Everything a study measured (docs/results.md); sections keyed by benchmark, method and
    language code, in the study's order."""

    model: ModelInfo
    languages: tuple[str, ...]
    methods: tuple[str, ...]
    format: str = FORMAT
    control_language: str | None = None
    """A Latin-script control for English (``control_language`` of the study), if any."""
    reference_method: str | None = None
    seed: int | None = None
    config: Mapping[str, Any] | None = None
    identify_corpus: str | None = None
    sets: Mapping[str, SetSummary] = field(default_factory=dict)
    verification: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    benchmarks: Mapping[str, BenchmarkResults] = field(default_factory=dict)
    metrics: Mapping[str, Mapping[str, Mapping[str, Metric]]] = field(default_factory=dict)
    comparisons: Mapping[str, Comparisons] = field(default_factory=dict)
    relevance: Mapping[str, Mapping[str, RelevanceEntry]] = field(default_factory=dict)
    relevance_source: str | None = None
    sweep: Sweep | None = None
    overlap: Overlap = field(default_factory=Overlap)
    notes: tuple[str, ...] = ()
    stage_seconds: Mapping[str, float | None] = field(default_factory=dict)
    seconds: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this version does not read

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "study.json") -> StudyResults:
        """Check ``data`` (parsed study.json) once and build the objects; ``where`` names the
        source in error messages. Raises ResultsError."""
        return _parse(data, where)

    @classmethod
    def load(cls, path: str | Path) -> StudyResults:
        """Read and check ``path`` (a study.json). Raises ResultsError."""
        path = Path(path)
        if not path.is_file():
            raise ResultsError(
                f"{path} does not exist; run crane demo or crane run first to produce a study's "
                "results, then build the report from its run directory."
            )
        try:
            data = parse_json(path.read_text(encoding="utf-8"), unique_keys=True)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            reason = getattr(exc, "msg", None) or getattr(exc, "strerror", None) or str(exc)
            raise ResultsError(
                f"{path} is not readable JSON ({reason}); run crane demo or crane run first to "
                "write it again."
            ) from None
        return _parse(data, str(path))

    def to_dict(self) -> dict[str, Any]:
        """The JSON structure of study.json (lists, dicts, numbers, strings and nulls)."""
        out: dict[str, Any] = {"format": self.format, "model": self.model.to_dict()}
        out |= {"languages": list(self.languages), "methods": list(self.methods)}
        out |= _some(control_language=self.control_language)
        out |= _some(reference_method=self.reference_method, seed=self.seed)
        out |= _some(config=_plain(self.config), identify_corpus=self.identify_corpus)
        for name in ("sets", "verification", "benchmarks", "metrics", "comparisons", "relevance"):
            out[name] = _plain(getattr(self, name))
        out |= _some(relevance_source=self.relevance_source)
        out |= _some(sweep=self.sweep.to_dict() if self.sweep is not None else None)
        out |= {"overlap": self.overlap.to_dict(), "notes": list(self.notes)}
        out |= {"stage_seconds": dict(self.stage_seconds), **_some(seconds=self.seconds)}
        return {**out, **_plain(self.extra)}


def _some(**values: Any) -> dict[str, Any]:
    """The given keys whose value is not ``None`` (optional keys a study may leave out)."""
    return {k: v for k, v in values.items() if v is not None}


def _plain(value: Any) -> Any:
    """``value`` as JSON data: objects through ``to_dict``, tuples as lists, mappings as dicts."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---- checking ---------------------------------------------------------------------------------
class _Check:
    """Checks parts of one parsed study.json; every failure names its place and the fix."""

    def __init__(self, where: str, languages: Sequence[str] = (), methods: Sequence[str] = ()):
        self.where, self.languages, self.methods = where, tuple(languages), tuple(methods)

    def fail(self, place: str, problem: str) -> NoReturn:
        raise ResultsError(
            f"{self.where} is not a crane study's results as this version reads them: {place} "
            f"{problem}; {_FIX}."
        )

    def obj(self, value: Any, place: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            self.fail(place, f"should be a JSON object, not {_kind(value)}")
        return value

    def number(self, value: Any, place: str, *, null: bool = True) -> Any:
        if value is None and null:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(place, f"should be a number{' or null' if null else ''}, not {_kind(value)}")
        return value

    def integer(self, value: Any, place: str, *, null: bool = False) -> Any:
        if value is None and null:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(place, f"should be a whole number, not {_kind(value)}")
        return value

    def text(self, value: Any, place: str, *, null: bool = True) -> Any:
        if (value is None and null) or isinstance(value, str):
            return value
        return self.fail(place, f"should be a string, not {_kind(value)}")

    def flag(self, value: Any, place: str) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        return self.fail(place, f"should be true or false, not {_kind(value)}")

    def interval(self, value: Any, place: str) -> Interval | None:
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            self.fail(place, f"should be an interval [low, high], not {_kind(value)}")
        return (self.number(value[0], f"{place}[0]"), self.number(value[1], f"{place}[1]"))

    def row(self, value: Any, place: str, leaf: Callable[[Any, str], T]) -> tuple[T, ...]:
        if not isinstance(value, (list, tuple)):
            self.fail(place, f"should be a list, not {_kind(value)}")
        return tuple(leaf(v, f"{place}[{i}]") for i, v in enumerate(value))

    def names(self, value: Any, place: str) -> tuple[str, ...]:
        names = self.row(value, place, lambda v, p: self.text(v, p, null=False))
        if len(set(names)) != len(names):
            self.fail(place, "lists a name twice")
        return names

    def nested(self, value: Any, place: str, kinds: Sequence[str], leaf: Leaf) -> Any:
        """Objects keyed by ``kinds`` (outermost first: "method", "language", ...) down to
        ``leaf``; language and method keys must be ones the study declares."""
        if not kinds:
            return leaf(value, place)
        known = {"language": self.languages, "method": self.methods}.get(kinds[0])
        out = {}
        for key, item in self.obj(value, place).items():
            if known is not None and key not in known:
                self.fail(
                    f"{place}.{key}",
                    f"names the {kinds[0]} {key!r}, which is not in the study's {kinds[0]}s "
                    f"({', '.join(known) or 'none'})",
                )
            out[key] = self.nested(item, f"{place}.{key}", kinds[1:], leaf)
        return out

    def under(self, data: Mapping[str, Any], key: str, place: str, kinds: str, leaf: Leaf) -> Any:
        """:meth:`nested` of ``data[key]`` (absent: empty) at ``place.key``."""
        return self.nested(
            data.get(key, {}), f"{place}.{key}" if place else key, kinds.split(), leaf
        )

    def exactly(self, value: Any, place: str, known: Sequence[str]) -> Mapping[str, Any]:
        """The object at ``place``, refusing keys outside ``known`` (sections crane writes
        whole, where an unknown key can only be damage)."""
        data = self.obj(value, place)
        unknown = [k for k in data if k not in known]
        if unknown:
            self.fail(f"{place}.{unknown[0]}", f"is not a key of {place} ({', '.join(known)})")
        return data

    def count(self, value: Any, place: str) -> Any:
        """A whole number ≥ 0 (a size, a number of layers)."""
        number = self.integer(value, place)
        if number < 0:
            self.fail(place, f"should not be negative, got {number}")
        return number

    def split(self, value: Any, place: str, known: Sequence[str]) -> tuple[Mapping, dict]:
        """The object at ``place`` and its keys outside ``known`` (kept, unread)."""
        data = self.obj(value, place)
        return data, {k: v for k, v in data.items() if k not in known}


def _kind(value: Any) -> str:
    """How an unexpected JSON value reads in a message."""
    if value is None:
        return "null"
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else f"{type(value).__name__} {text[:37]}..."


def _parse(data: Any, where: str) -> StudyResults:
    if not isinstance(data, Mapping) or not str(data.get("format", "")).startswith("crane-study/"):
        raise ResultsError(
            f"{where} is not a crane study's results (expected a JSON object with format "
            f"{FORMAT} and a 'languages' list); run crane demo or crane run first."
        )
    check = _Check(where)
    if data["format"] != FORMAT:
        check.fail("format", f"is {data['format']!r} (this version reads {FORMAT})")
    for key in ("model", "languages", "methods"):
        if key not in data:
            check.fail(f"the key {key!r}", "is missing")
    check = _Check(
        where, check.names(data["languages"], "languages"), check.names(data["methods"], "methods")
    )
    top, extra = check.split(data, "the top level", [f.name for f in fields(StudyResults)])
    text, sweep, config = check.text, top.get("sweep"), top.get("config")
    return StudyResults(
        model=_model(check, top["model"]),
        languages=check.languages,
        methods=check.methods,
        control_language=_control(check, top.get("control_language")),
        reference_method=text(top.get("reference_method"), "reference_method"),
        seed=check.integer(top.get("seed"), "seed", null=True),
        config=None if config is None else dict(check.obj(config, "config")),
        identify_corpus=text(top.get("identify_corpus"), "identify_corpus"),
        sets=check.under(top, "sets", "", "method", partial(_set, check)),
        verification=check.under(top, "verification", "", "method language", check.obj),
        benchmarks=check.under(top, "benchmarks", "", "benchmark", partial(_benchmark, check)),
        metrics=check.under(
            top, "metrics", "", "benchmark method language", partial(_metric, check)
        ),
        comparisons=check.under(
            top, "comparisons", "", "benchmark", partial(_comparisons, check)
        ),
        relevance=check.under(top, "relevance", "", "method language", partial(_relevance, check)),
        relevance_source=text(top.get("relevance_source"), "relevance_source"),
        sweep=None if sweep is None else _sweep(check, sweep),
        overlap=_overlap(check, top.get("overlap", {})),
        notes=check.row(top.get("notes", []), "notes", partial(check.text, null=False)),
        stage_seconds=check.under(top, "stage_seconds", "", "stage", check.number),
        seconds=check.number(top.get("seconds"), "seconds"),
        extra=extra,
    )


def _control(check: _Check, value: Any) -> str | None:
    code = check.text(value, "control_language")
    if code is not None and code not in check.languages:
        check.fail("control_language", f"is {code!r}, which is not in the study's languages")
    return code


def _model(check: _Check, value: Any) -> ModelInfo:
    data, details = check.split(value, "model", ("spec", "n_layers", "d_ff"))
    return ModelInfo(
        spec=check.text(data.get("spec"), "model.spec"),
        n_layers=None if data.get("n_layers") is None else check.count(
            data.get("n_layers"), "model.n_layers"
        ),
        d_ff=None if data.get("d_ff") is None else check.count(data.get("d_ff"), "model.d_ff"),
        details=details,
    )


def _set(check: _Check, value: Any, place: str) -> SetSummary:
    data, extra = check.split(value, place, ("sizes", "layer_counts", "file"))
    return SetSummary(
        sizes=check.under(data, "sizes", place, "language", check.count),
        layer_counts=check.under(
            data, "layer_counts", place, "language", lambda v, p: check.row(v, p, check.count)
        ),
        file=check.text(data.get("file"), f"{place}.file"),
        extra=extra,
    )


def _benchmark(check: _Check, value: Any, place: str) -> BenchmarkResults:
    data, extra = check.split(value, place, [f.name for f in fields(BenchmarkResults)])
    cube = "method language language"
    missing = [x for x in check.languages if x not in check.obj(data.get("none", {}), place)]
    if missing:
        check.fail(
            f"{place}.none", f"has no value for {', '.join(missing)}, a language of the study"
        )
    return BenchmarkResults(
        title=check.text(data.get("title"), f"{place}.title"),
        unit=check.text(data.get("unit"), f"{place}.unit"),
        higher_is_better=check.flag(data.get("higher_is_better"), f"{place}.higher_is_better"),
        items=check.under(data, "items", place, "language", partial(check.integer, null=True)),
        none=check.under(data, "none", place, "language", check.number),
        none_ci=check.under(data, "none_ci", place, "language", check.interval),
        value=check.under(data, "value", place, cube, check.number),
        delta=check.under(data, "delta", place, cube, check.number),
        delta_ci=check.under(data, "delta_ci", place, cube, check.interval),
        extra=extra,
    )


def _metric(check: _Check, value: Any, place: str) -> Metric:
    data, extra = check.split(value, place, _METRIC_FIELDS)

    def one(key: str, item: Any) -> Any:
        return (check.interval if key.endswith("_ci") else check.number)(item, f"{place}.{key}")

    for key, item in extra.items():
        one(key, item)
    return Metric(**{k: one(k, data.get(k)) for k in _METRIC_FIELDS}, extra=extra)


def _relevance(check: _Check, value: Any, place: str) -> RelevanceEntry:
    data, extra = check.split(value, place, ("rc", "rs"))
    rc = check.under(data, "rc", place, "language", check.number)
    return RelevanceEntry(rc=rc, rs=check.number(data.get("rs"), f"{place}.rs"), extra=extra)


def _sweep(check: _Check, value: Any) -> Sweep:
    data, extra = check.split(value, "sweep", ("budgets", "benchmark", "verified", "methods"))

    def series(v: Any, p: str) -> SweepSeries:
        entry = check.obj(v, p)
        rows = {
            name: check.row(entry.get(name, []), f"{p}.{name}", leaf)
            for name, leaf in (
                ("target", check.number), ("off_target", check.number), ("sel", check.number),
                ("target_ci", check.interval), ("off_target_ci", check.interval),
                ("sel_ci", check.interval),
            )
        }
        at = check.under(entry, "at_off_target", p, "level", check.number)
        return SweepSeries(**rows, at_off_target=at)

    budget = partial(check.number, null=False)
    return Sweep(
        budgets=check.row(data.get("budgets", []), "sweep.budgets", budget),
        benchmark=check.text(data.get("benchmark"), "sweep.benchmark"),
        verified=check.flag(data.get("verified"), "sweep.verified"),
        methods=check.under(data, "methods", "sweep", "method language", series),
        extra=extra,
    )


def _comparisons(check: _Check, value: Any, place: str) -> Comparisons:
    data = check.exactly(value, place, ("paired", "efficiency", "verdict"))

    def paired(v: Any, p: str) -> Mapping[str, Any]:
        entry = check.exactly(v, p, ("diff", "ci"))
        return {
            "diff": check.number(entry.get("diff"), f"{p}.diff"),
            "ci": check.interval(entry.get("ci"), f"{p}.ci"),
        }

    def ratio(v: Any, p: str) -> Mapping[str, Any]:
        entry = check.exactly(v, p, ("value", "ci"))
        return {
            "value": check.number(entry.get("value"), f"{p}.value"),
            "ci": check.interval(entry.get("ci"), f"{p}.ci"),
        }

    return Comparisons(
        paired=check.under(data, "paired", place, "method method language", paired),
        efficiency=check.under(data, "efficiency", place, "method language", ratio),
        verdict=check.under(
            data, "verdict", place, "method language", partial(check.text, null=False)
        ),
    )


def _overlap(check: _Check, value: Any) -> Overlap:
    data = check.exactly(value, "overlap", ("between_methods", "between_languages"))
    return Overlap(
        between_methods=check.under(
            data, "between_methods", "overlap", "language method method", check.number
        ),
        between_languages=check.under(
            data, "between_languages", "overlap", "method language language", check.number
        ),
    )


__all__ = [
    "FORMAT",
    "METRIC_NAMES",
    "MIN_UNITS",
    "NOT_SELECTIVE",
    "SELECTIVE",
    "NO_METRIC",
    "NO_RELEVANCE",
    "BenchmarkResults",
    "Comparisons",
    "Interval",
    "Matrix",
    "Metric",
    "ModelInfo",
    "Overlap",
    "RelevanceEntry",
    "ResultsError",
    "SetSummary",
    "StudyResults",
    "Sweep",
    "SweepSeries",
]
