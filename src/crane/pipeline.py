"""A study: identify neurons with several methods at equal budget, evaluate every benchmark per
language under every set and a layer-matched random control, compute metrics with bootstrap
intervals, and write ``study.json`` and the report.

Stages of a run directory (recorded in ``RUN_DIR/manifest.json``; a rerun reuses every stage
whose inputs are unchanged and whose outputs are intact):

- ``identify``: ``neurons-<method>.json`` per method, ``neurons-random.json`` (layer-matched
  to the reference method's sets), ``relevance.json`` (relevance capture of every set) and the
  budget-sweep sets under ``sweep/``; relevance and activation shards resume on their own;
- ``evaluate:<benchmark>``: one file per masking condition, ``eval/<benchmark>/<row>.json``,
  with the per-text (or per-question) numbers; each condition is saved as soon as it is done;
- ``study.json`` (docs/results.md) and ``report/`` (figures and ``index.html``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import re
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crane.errors import ConfigError
from crane.faults import checkpoint
from crane.io import atomic_write_text
from crane.manifest import Manifest, inputs_key
from crane.progress import NullProgress, Progress

FORMAT = "crane-study/1"
DEFAULT_METHODS = ("crane", "gradxact", "lape", "kojima", "plnd", "actmean")


@dataclass
class StudyConfig:
    """Everything a study does (a TOML/YAML file for ``crane run`` sets any of these keys)."""

    model: str = "gemma-3-270m"
    languages: list[str] = field(default_factory=lambda: ["en", "zh", "vi"])
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    budget: str = "match:crane"
    """Per-language set size: ``match:METHOD`` (every method as large as METHOD's sets),
    a count, or a fraction such as ``0.5%``."""
    reference_budget: str = "0.5%"
    """Size of the reference method's sets when ``budget`` is ``match:METHOD``."""
    dtype: str = "float32"
    device: str = "cpu"
    trust_remote_code: bool = False
    seed: int = 0

    # identification
    identify_corpus: str = "auto"
    identify_max_texts: int | None = 150
    text_field: str = "text"
    lang_field: str = "lang"
    corpus_lang: str | None = None
    site: str = "down_in"
    target: str = "logit"
    score: str = "margin"
    quantile: float = 0.95
    profile: str = "signed"
    normalize: str = "global"
    verify: bool = True
    verify_methods: list[str] = field(default_factory=lambda: ["crane", "gradxact"])
    """Relevance methods whose candidates are confirmed by masking (when ``verify``)."""
    verify_ratio: float = 1.0
    verify_tests: int = 24

    # evaluation
    bpb_corpus: str = "udhr"
    bpb_part: str = "heldout"
    bpb_max_texts: int | None = None
    """Evaluate bits per byte on the first N texts per language (None: all)."""
    choice_builtin_items: int = 0
    """Items of the built-in parallel continuation test per language (0: not run)."""
    choice_files: dict[str, str] = field(default_factory=dict)
    """Language → MMLU-style question file (CSV or JSONL)."""
    choice_fields: dict[str, str] = field(default_factory=dict)
    """Column names of those files when they differ from the defaults, e.g.
    ``{"question_field": "Question", "answer_field": "Answer"}`` (see ``read_choice_file``)."""
    generation_prompts: int = 0
    """Prompts per language for generation fidelity (needs the langid extra; 0: not run)."""
    generation_tokens: int = 16
    random_control: bool = True
    sweep_budgets: list[float] = field(default_factory=list)
    """Fractions of all neurons for the budget sweep (unverified sets; empty: no sweep)."""
    sweep_methods: list[str] = field(default_factory=lambda: ["crane"])
    n_boot: int = 1000
    max_length: int = 128
    batch_size: int = 16
    batch_tokens: int = 1024
    eval_batch_size: int = 64

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "the configuration") -> StudyConfig:
        """Build from a flat mapping (TOML tables are flattened); unknown keys are errors."""
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, dict) and key not in ("choice_files", "choice_fields"):
                flat.update(value)
            else:
                flat[key] = value
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(flat) - known)
        if unknown:
            raise ConfigError(
                f"Unknown key(s) {', '.join(unknown)} in {source}; valid keys: "
                f"{', '.join(sorted(known))}."
            )
        for key in ("languages", "methods", "sweep_methods", "verify_methods"):
            if isinstance(flat.get(key), str):
                flat[key] = [part.strip() for part in flat[key].split(",") if part.strip()]
        hints = typing.get_type_hints(cls)
        for key, value in flat.items():
            if not _conforms(value, hints[key]):
                raise ConfigError(
                    f"Key '{key}' in {source} has the value {value!r}, but it must be "
                    f"{_type_name(hints[key])}; fix its value."
                )
        config = cls(**flat)
        config.validate()
        return config

    def validate(self) -> None:
        from crane.data.languages import parse_language_list
        from crane.methods import get_method, parse_methods

        self.languages = parse_language_list(self.languages)
        if len(self.languages) < 2:
            raise ConfigError("A study compares languages: give at least two (e.g. en,zh).")
        self.methods = parse_methods(",".join(self.methods))
        if any(get_method(m).statistics == "control" for m in self.methods):
            raise ConfigError(
                "'random' is not a study method: the study adds a layer-matched random control "
                "itself (random_control = true)."
            )
        for name in ("n_boot", "verify_tests"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}.")
        for b in self.sweep_budgets:
            if not 0 < float(b) < 1:
                raise ConfigError(f"Sweep budgets are fractions in (0, 1), got {b}.")
        missing = [m for m in self.sweep_methods if m not in self.methods]
        if self.sweep_budgets and missing:
            raise ConfigError(
                f"Sweep method(s) {', '.join(missing)} are not among the study's methods."
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _conforms(value: Any, tp: Any) -> bool:
    """Whether a config value (from TOML/YAML) has the declared type (ints pass as floats)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if tp is type(None):
        return value is None
    if tp is Any:
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            _conforms(k, args[0]) and _conforms(v, args[1]) for k, v in value.items()
        )
    return True


def _type_name(tp: Any) -> str:
    """``int | None`` → ``"a whole number or nothing"`` for error messages."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join("nothing" if a is type(None) else _type_name(a) for a in args)
    if typing.get_origin(tp) is list:
        return f"a list (each {_type_name(args[0])})"
    if typing.get_origin(tp) is dict:
        return f"a table (each value {_type_name(args[1])})"
    names = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def load_config(path: str | Path) -> StudyConfig:
    """Read a study configuration from TOML (``.toml``) or YAML (``.yaml``/``.yml``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"Configuration file {path} does not exist; give the path to a .toml file."
        )
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"Configuration file {path} cannot be read as UTF-8 text ({exc}); save it as UTF-8."
        ) from None
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ConfigError(
                    "Reading YAML needs PyYAML (pip install pyyaml); or write the config as TOML."
                ) from None
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"Unknown configuration format {path.suffix!r}; use .toml or .yaml.")
    except ConfigError:
        raise
    except Exception as exc:  # tomllib/yaml parse errors
        raise ConfigError(
            f"Cannot parse {path}: {str(exc).splitlines()[0]}; fix the file."
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a table of settings at the top level.")
    config = StudyConfig.from_dict(data, source=str(path))
    return _paths_relative_to(config, path.parent)


PATH_KEYS = ("model", "identify_corpus", "bpb_corpus")
"""Config keys that may name a file or directory (besides the values of ``choice_files``)."""


def _paths_relative_to(config: StudyConfig, base: Path) -> StudyConfig:
    """Resolve relative file paths of a config file against the file's own folder, so a
    config and its data can live together; names (``udhr``, ``gemma-3-270m``, hub ids) and
    paths that exist from the working directory are left as they are."""

    def resolve(value: str) -> str:
        candidate = base / value
        if Path(value).is_absolute() or Path(value).exists() or not candidate.exists():
            return value
        return str(candidate)

    changes: dict[str, Any] = {key: resolve(getattr(config, key)) for key in PATH_KEYS}
    changes["choice_files"] = {lang: resolve(f) for lang, f in config.choice_files.items()}
    return dataclasses.replace(config, **changes)


@dataclass
class StudyResult:
    run_dir: Path
    results: dict[str, Any]
    report: Path | None
    seconds: float


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@+-]", "_", name)


# ---- stages ---------------------------------------------------------------------------------
def _identify_stage(
    config: StudyConfig,
    loaded: Any,
    out: Path,
    manifest: Manifest,
    progress: Progress,
    notes: list[str],
) -> dict[str, Any]:
    """Sets of every method (and the random control and sweep sets), saved in ``out``."""
    from crane.collect import RelevanceOptions
    from crane.data.builtin import GettextUnavailable, gettext_corpus, load_corpus
    from crane.evaluation.metrics import relevance_capture
    from crane.identification import IdentifyOptions, identify_methods, reference_method
    from crane.neurons import NeuronSet
    from crane.verify import VerifyOptions

    spec = config.identify_corpus
    if spec == "auto":
        try:
            gettext_corpus("identify")
            spec = "gettext"
        except GettextUnavailable as exc:
            notes.append(f"{exc} Identification used the UDHR corpus instead.")
            spec = "udhr"
    corpus = load_corpus(
        spec,
        part="identify",
        lang=config.corpus_lang,
        text_field=config.text_field,
        lang_field=config.lang_field,
    ).select(config.languages)
    keys = [
        "model",
        "languages",
        "methods",
        "budget",
        "reference_budget",
        "identify_max_texts",
        "site",
        "target",
        "score",
        "quantile",
        "profile",
        "normalize",
        "verify",
        "verify_methods",
        "verify_ratio",
        "verify_tests",
        "max_length",
        "batch_size",
        "batch_tokens",
        "seed",
        "sweep_budgets",
        "sweep_methods",
        "random_control",
    ]
    key = inputs_key(
        {
            "config": {k: getattr(config, k) for k in keys},
            "model": loaded.source,
            "corpus": corpus.provenance,
        }
    )
    reference = reference_method(config.methods, config.budget)
    if manifest.complete("identify", key):
        sets = {m: NeuronSet.load(out / f"neurons-{m}.json") for m in config.methods}
        extra = json.loads((out / "identify-stage.json").read_text(encoding="utf-8"))
        if config.random_control:
            sets["random"] = NeuronSet.load(out / "neurons-random.json")
        return {"sets": sets, "reference": reference, **extra}

    started = time.perf_counter()
    options = IdentifyOptions(
        relevance=RelevanceOptions(
            site=config.site,
            target=config.target,
            max_length=config.max_length,
            batch_size=config.batch_size,
            batch_tokens=config.batch_tokens,
        ).validate(),
        score=config.score,
        quantile=config.quantile,
        profile=config.profile,
        normalize=config.normalize,
        verify=config.verify,
        max_texts=config.identify_max_texts,
        verification=VerifyOptions(
            ratio=config.verify_ratio, max_tests=config.verify_tests
        ).validate(),
    )
    found = identify_methods(
        loaded,
        corpus,
        [*config.methods, *(["random"] if config.random_control else [])],
        budget=config.budget,
        options=options,
        out_dir=out,
        progress=progress,
        verify_methods=config.verify_methods,
        reference_budget=config.reference_budget,
        seed=config.seed,
    )
    sets = dict(found.sets)
    outputs = [out / f"neurons-{m}.json" for m in sets]
    relevance_stats = found.stats.get("crane") or found.stats.get("gradxact")
    relevance = (
        {name: relevance_capture(relevance_stats, s) for name, s in sets.items()}
        if relevance_stats is not None
        else {}
    )
    sweep_files = _sweep_sets(config, found, loaded, out)
    outputs += [out / f for per in sweep_files.values() for f in per.values()]
    extra = {
        "relevance": relevance,
        "relevance_source": "crane" if found.stats.get("crane") is not None else "gradxact",
        "sweep_files": sweep_files,
        "identify_corpus": spec,
        "verification": {
            m: {lang: dataclasses.asdict(r) for lang, r in reports.items()}
            for m, reports in found.reports.items()
        },
        "method_seconds": found.seconds,
    }
    stage_file = atomic_write_text(
        out / "identify-stage.json", json.dumps(extra, indent=1, default=str) + "\n"
    )
    checkpoint("identified")
    manifest.record("identify", key, [*outputs, stage_file], time.perf_counter() - started)
    return {"sets": sets, "reference": reference, **extra}


def _sweep_sets(
    config: StudyConfig, found: Any, loaded: Any, out: Path
) -> dict[str, dict[str, str]]:
    """Unverified sets of the sweep methods at each sweep budget: method → budget → file."""
    from crane.methods import get_method
    from crane.scoring import Budget

    files: dict[str, dict[str, str]] = {}
    for method in config.sweep_methods if config.sweep_budgets else []:
        files[method] = {}
        for fraction in config.sweep_budgets:
            budget = Budget(count=max(1, round(float(fraction) * loaded.shape.n_neurons)))
            options = (
                {
                    "score": config.score,
                    "quantile": config.quantile,
                    "profile": config.profile,
                    "normalize": config.normalize,
                }
                if get_method(method).statistics == "relevance"
                else None
            )
            neurons = get_method(method).select(
                found.stats[method], budget=budget, site=config.site, options=options
            )
            neurons.meta.update({"method": method, "sweep_fraction": float(fraction)})
            name = f"sweep/neurons-{method}@{float(fraction):g}.json"
            neurons.save(out / name)
            files[method][f"{float(fraction):g}"] = name
    return files


@dataclass
class Benchmark:
    """One benchmark: how to evaluate a language under the current masks, and its labels."""

    name: str
    title: str
    unit: str
    higher_is_better: bool
    items: dict[str, int]
    evaluate: Callable[[str], dict[str, list[float]]]
    """language → ``{"num": [...], "den": [...], ...}`` per unit, under whatever masks are on."""
    key: dict[str, Any]


def _bpb_benchmark(config: StudyConfig, loaded: Any, progress: Progress) -> Benchmark:
    from crane.data.batching import pad_token_id, tokenize_texts
    from crane.data.builtin import load_corpus
    from crane.evaluation.bpb import text_nats

    corpus = load_corpus(config.bpb_corpus, part=config.bpb_part).select(config.languages)
    if config.bpb_max_texts:
        corpus = corpus.take(config.bpb_max_texts)
    tokenized = {
        lang: tokenize_texts(loaded.tokenizer, corpus[lang], max_length=config.max_length)
        for lang in config.languages
    }
    pad = pad_token_id(loaded.tokenizer)

    def evaluate(lang: str) -> dict[str, list[float]]:
        tok = tokenized[lang]
        nats = text_nats(
            loaded.model,
            tok,
            batch_size=config.eval_batch_size,
            max_tokens=config.batch_tokens,
            pad_id=pad,
            progress=progress,
        )
        return {"num": (nats / math.log(2)).tolist(), "den": [float(b) for b in tok.n_bytes]}

    part = f" ({config.bpb_part})" if config.bpb_corpus in ("udhr", "gettext") else ""
    return Benchmark(
        "bpb",
        f"Bits per byte, {config.bpb_corpus}{part}",
        "bits/byte",
        False,
        {lang: len(corpus[lang]) for lang in config.languages},
        evaluate,
        {"corpus": corpus.provenance, "max_length": config.max_length},
    )


def _choice_benchmarks(config: StudyConfig, loaded: Any, progress: Progress) -> list[Benchmark]:
    from crane.data.choice_files import builtin_continuation_set, load_choice_set
    from crane.evaluation.choice import choice_scores

    sets = []
    if config.choice_builtin_items:
        sets.append(
            (
                "choice",
                "Parallel continuation test (4 options, accuracy, length-normalised)",
                builtin_continuation_set(
                    config.languages, n_items=config.choice_builtin_items, seed=config.seed
                ),
            )
        )
    if config.choice_files:
        files = {lang: Path(p) for lang, p in config.choice_files.items()}
        sets.append(
            (
                "mc",
                "Multiple choice (your files, accuracy, length-normalised)",
                load_choice_set(files, **config.choice_fields),
            )
        )
    out = []
    for name, title, choice_set in sets:
        languages = [lang for lang in config.languages if lang in choice_set.languages]
        if len(languages) < len(config.languages):
            raise ConfigError(
                f"The {name} benchmark has no questions for "
                f"{', '.join(set(config.languages) - set(languages))}; give a file per language."
            )

        def evaluate(lang: str, choice_set: Any = choice_set) -> dict[str, list[float]]:
            scores = choice_scores(
                loaded.model,
                loaded.tokenizer,
                choice_set[lang],
                style=choice_set.style,
                language=lang,
                batch_size=config.eval_batch_size,
                max_tokens=config.batch_tokens,
                max_length=config.max_length,
                progress=progress,
            )
            norm = scores.correct(norm=True).astype(float).tolist()
            return {
                "num": norm,
                "den": [1.0] * len(norm),
                "correct_raw": scores.correct(norm=False).astype(float).tolist(),
            }

        out.append(
            Benchmark(
                name,
                title,
                "accuracy",
                True,
                {lang: len(choice_set[lang]) for lang in languages},
                evaluate,
                {"provenance": choice_set.provenance, "max_length": config.max_length},
            )
        )
    return out


def _generation_benchmark(config: StudyConfig, loaded: Any, progress: Progress) -> Benchmark:
    """Greedy continuations of the parallel prompts, identified offline (langid extra)."""
    from crane.data.choice_files import builtin_continuation_set
    from crane.evaluation.generation import generation_fidelity, language_identifier

    identify = language_identifier()
    prompts = builtin_continuation_set(
        config.languages, n_items=config.generation_prompts, seed=config.seed
    )

    def evaluate(lang: str) -> dict[str, list[float]]:
        result = generation_fidelity(
            loaded.model,
            loaded.tokenizer,
            [item.prompt for item in prompts[lang]],
            lang,
            identify,
            max_new_tokens=config.generation_tokens,
            batch_size=config.eval_batch_size,
            progress=progress,
        )
        correct = result.correct.astype(float).tolist()
        return {
            "num": correct,
            "den": [1.0] * len(correct),
            "generated": result.texts,
            "identified": result.identified,
        }

    return Benchmark(
        "generation",
        f"Generation fidelity (greedy, {config.generation_tokens} tokens, share in the language)",
        "share",
        True,
        {lang: len(prompts[lang]) for lang in config.languages},
        evaluate,
        {"provenance": prompts.provenance, "tokens": config.generation_tokens},
    )


def _conditions(stage: dict[str, Any], config: StudyConfig) -> dict[str, tuple[Any, str, str]]:
    """Masking rows: name → (NeuronSet, language whose neurons are masked, set label)."""
    from crane.neurons import NeuronSet

    rows: dict[str, tuple[Any, str, str]] = {}
    for method, neuron_set in stage["sets"].items():
        for lang in config.languages:
            if lang in neuron_set.languages:
                rows[f"{method}:{lang}"] = (neuron_set, lang, method)
    for method, per_budget in stage.get("sweep_files", {}).items():
        for fraction, name in per_budget.items():
            neuron_set = NeuronSet.load(stage["run_dir"] / name)
            for lang in config.languages:
                rows[f"sweep-{method}@{fraction}:{lang}"] = (neuron_set, lang, method)
    return rows


def _evaluate_stage(
    benchmark: Benchmark,
    rows: dict[str, tuple[Any, str, str]],
    loaded: Any,
    out: Path,
    manifest: Manifest,
    config: StudyConfig,
    progress: Progress,
) -> dict[tuple[str, str], dict[str, list[float]]]:
    """Every masking row of one benchmark; each row is saved (and reused) on its own."""
    from crane.intervene import mask_neurons

    folder = out / "eval" / benchmark.name
    base = {"benchmark": benchmark.key, "model": loaded.source, "languages": config.languages}
    cells: dict[tuple[str, str], dict[str, list[float]]] = {}
    files = []
    started = time.perf_counter()
    stage_key = inputs_key(
        {**base, "rows": {r: _set_key(s, lang) for r, (s, lang, _) in rows.items()}}
    )
    for row in ["none", *rows]:
        key = inputs_key(
            {**base, "row": row, "set": None if row == "none" else _set_key(*rows[row][:2])}
        )
        path = folder / f"{_safe(row)}.json"
        saved = _read_row(path, key)
        if saved is None:
            progress.message(f"{benchmark.name}: evaluating {row}")
            saved = {}
            masks = (
                contextlib.nullcontext()
                if row == "none"
                else mask_neurons(
                    loaded.model, rows[row][0], languages=[rows[row][1]], adapter=loaded.adapter
                )
            )
            with masks:
                for lang in config.languages:
                    saved[lang] = benchmark.evaluate(lang)
                    checkpoint("eval-lang")
            record = {"key": key, "row": row, "cells": saved, "sha256": _cells_sha256(saved)}
            atomic_write_text(path, json.dumps(record) + "\n")
            checkpoint("eval-row")
        files.append(path)
        for lang, units in saved.items():
            cells[(row, lang)] = units
    if not manifest.complete(f"evaluate:{benchmark.name}", stage_key):
        manifest.record(
            f"evaluate:{benchmark.name}", stage_key, files, time.perf_counter() - started
        )
    return cells


def _set_key(neuron_set: Any, lang: str) -> dict[str, Any]:
    return {"site": neuron_set.site, "lang": lang, "neurons": neuron_set.layers(lang)}


def _cells_sha256(cells: Any) -> str:
    """Checksum of a row's numbers as written (``json.dumps`` round-trips them exactly)."""
    return hashlib.sha256(json.dumps(cells).encode("utf-8")).hexdigest()


def _read_row(path: Path, key: str) -> dict[str, Any] | None:
    """A saved row when it is intact (its checksum matches) and was computed for ``key``;
    else ``None`` (recompute): a truncated, edited or foreign file is never read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or "cells" not in data:
        return None
    return data["cells"] if data.get("sha256") == _cells_sha256(data["cells"]) else None


# ---- study.json -------------------------------------------------------------------------------
def _benchmark_results(
    benchmark: Benchmark,
    cells: dict[tuple[str, str], dict[str, list[float]]],
    rows: dict[str, tuple[Any, str, str]],
    config: StudyConfig,
) -> tuple[dict[str, Any], dict[str, Any]]:
    from crane.evaluation.metrics import Units, matrix_metrics

    units = {
        k: Units(np.asarray(v["num"], float), np.asarray(v["den"], float)) for k, v in cells.items()
    }
    main_rows: dict[str, dict[str, str]] = {}
    for row, (_, lang, method) in rows.items():
        if not row.startswith("sweep-"):
            main_rows.setdefault(method, {})[lang] = row
    out = matrix_metrics(
        units,
        main_rows,
        config.languages,
        higher_is_better=benchmark.higher_is_better,
        n_boot=config.n_boot,
        seed=config.seed,
    )
    metrics = out.pop("metrics")
    return (
        {
            "title": benchmark.title,
            "unit": benchmark.unit,
            "higher_is_better": benchmark.higher_is_better,
            "items": benchmark.items,
            **out,
        },
        metrics,
    )


def _sweep_results(
    cells: dict[tuple[str, str], dict[str, list[float]]],
    stage: dict[str, Any],
    config: StudyConfig,
) -> dict[str, Any]:
    def value(row: str, lang: str) -> float:
        c = cells[(row, lang)]
        return sum(c["num"]) / sum(c["den"])

    methods: dict[str, Any] = {}
    budgets = [float(b) for b in config.sweep_budgets]
    for method, per_budget in stage.get("sweep_files", {}).items():
        methods[method] = {}
        for lang in config.languages:
            target, off = [], []
            for fraction in per_budget:
                row = f"sweep-{method}@{fraction}"
                d = {e: value(f"{row}:{lang}", e) - value("none", e) for e in config.languages}
                target.append(d[lang])
                off.append(float(np.mean([d[e] for e in config.languages if e != lang])))
            methods[method][lang] = {"target": target, "off_target": off}
    return {"budgets": budgets, "benchmark": "bpb", "verified": False, "methods": methods}


def _finite(value: Any) -> Any:
    """Results as strict JSON: NaN and infinities (an undefined ratio) become ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _overlap(sets: dict[str, Any], languages: list[str]) -> dict[str, Any]:
    between_methods = {
        lang: {
            a: {
                b: sets[a].overlap(sets[b], lang)["jaccard"]
                for b in sets
                if lang in sets[b].languages
            }
            for a in sets
            if lang in sets[a].languages
        }
        for lang in languages
    }
    between_languages = {name: s.jaccard_matrix() for name, s in sets.items()}
    return {"between_methods": between_methods, "between_languages": between_languages}


def run_study(
    config: StudyConfig,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    report: bool = True,
) -> StudyResult:
    """Run (or resume) the study described by ``config`` in ``out_dir``."""
    from crane.models.loading import load_model

    config.validate()
    progress = progress or NullProgress()
    started = time.perf_counter()
    out = Path(out_dir)
    manifest = Manifest(out)
    notes: list[str] = []
    progress.message(f"loading {config.model}")
    loaded = load_model(
        config.model,
        dtype=config.dtype,
        device=config.device,
        trust_remote_code=config.trust_remote_code,
        progress=progress.message,
    )
    benchmarks = [
        _bpb_benchmark(config, loaded, progress),
        *_choice_benchmarks(config, loaded, progress),
    ]
    if config.generation_prompts:
        benchmarks.append(_generation_benchmark(config, loaded, progress))
    stage = _identify_stage(config, loaded, out, manifest, progress, notes)
    stage["run_dir"] = out
    rows = _conditions(stage, config)
    results: dict[str, Any] = {
        "format": FORMAT,
        "model": {**loaded.source, "n_layers": loaded.shape.n_layers, "d_ff": loaded.shape.d_ff},
        "languages": config.languages,
        "methods": [*config.methods, *(["random"] if config.random_control else [])],
        "reference_method": stage["reference"],
        "seed": config.seed,
        "config": config.to_dict(),
        "identify_corpus": stage.get("identify_corpus"),
        "sets": {
            name: {
                "sizes": {lang: s.size(lang) for lang in s.languages},
                "layer_counts": {
                    lang: s.layer_counts(lang, loaded.shape.n_layers) for lang in s.languages
                },
                "file": f"neurons-{name}.json",
            }
            for name, s in stage["sets"].items()
        },
        "verification": stage.get("verification", {}),
        "benchmarks": {},
        "metrics": {},
        "relevance": stage.get("relevance", {}),
        "relevance_source": stage.get("relevance_source"),
    }
    for benchmark in benchmarks:
        bench_rows = (
            rows
            if benchmark.name == "bpb"
            else {r: v for r, v in rows.items() if not r.startswith("sweep-")}
        )
        cells = _evaluate_stage(benchmark, bench_rows, loaded, out, manifest, config, progress)
        results["benchmarks"][benchmark.name], results["metrics"][benchmark.name] = (
            _benchmark_results(benchmark, cells, bench_rows, config)
        )
        if benchmark.name == "bpb" and stage.get("sweep_files"):
            results["sweep"] = _sweep_results(cells, stage, config)
    results["overlap"] = _overlap(stage["sets"], config.languages)
    results["notes"] = notes
    seconds = manifest.seconds()  # this run's stages, in pipeline order (resumed or not)
    order = ["identify", *(f"evaluate:{b.name}" for b in benchmarks)]
    results["stage_seconds"] = {name: seconds[name] for name in order if name in seconds}
    results["seconds"] = time.perf_counter() - started
    results = _finite(json.loads(json.dumps(results, default=str)))
    checkpoint("study-json")
    atomic_write_text(out / "study.json", json.dumps(results, indent=1, allow_nan=False) + "\n")
    report_path = None
    if report:
        from crane.report import build_report

        report_path = build_report(out, results=results)
    return StudyResult(out, results, report_path, results["seconds"])


__all__ = ["StudyConfig", "StudyResult", "load_config", "run_study"]
