"""The study configuration: one nested file (TOML or YAML) or keyword arguments, checked once.

Sections (``[identify]``, ``[evaluate]``, ...) are for readability: keys are flat and unique, a
key given in two sections is an error (docs/study.md lists every key and its default).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crane.errors import ConfigError

FORMAT = "crane-study/1"
TABLE_KEYS = ("choice_files", "choice_fields")
IDENTIFY_KEYS = (
    "model", "languages", "control_language", "methods", "budget", "reference_budget",
    "identify_max_texts",
    "identify_corpus", "corpus_lang", "text_field", "lang_field", "site", "target", "score",
    "quantile", "profile", "normalize", "lam", "contrast_over", "z", "verify",
    "verify_methods", "verify_ratio", "verify_tests", "verify_mode", "rounds", "ig_steps",
    "ig_texts", "swaps", "search_methods", "search_passes", "search_pool", "search_swaps",
    "search_patience", "search_candidates", "max_length", "attn_implementation",
    "batch_size", "batch_tokens", "seed", "token_budget", "shard_texts", "sweep_budgets",
    "sweep_methods", "random_control", "random_seeds", "optimise_steps", "optimise_lr",
    "optimise_texts", "optimise_init", "optimise_start", "optimise_patience",
)
"""The keys a study's identify stage depends on (its cache key); not gradient checkpointing,
which changes memory, not results, nor the dtype, device and revision, which the model's
identity carries."""
SCORE_KEYS = ("score", "quantile", "profile", "normalize", "lam", "contrast_over", "z")
"""Keys that are options of the relevance methods' scorer (``IdentifyOptions`` fields)."""
RELEVANCE_KEYS = {
    "site": "site",
    "target": "target",
    "max_length": "max_length",
    "batch_size": "batch_size",
    "batch_tokens": "batch_tokens",
    "shard_texts": "shard_texts",
    "checkpoint": "gradient_checkpointing",
}
"""``RelevanceOptions`` field → the config key that sets it."""
"""Keys whose value is itself a table (every other table is a section of keys)."""
DEFAULT_METHODS = ("crane", "gradxact", "lape", "kojima", "plnd", "actmean")


@dataclass
class StudyConfig:
    """Everything a study does (a TOML/YAML file for ``crane run`` sets any of these keys)."""

    model: str = "gemma-3-270m"
    """Hub id (already in your cache), local model directory, ``.gguf`` file or ``gemma-3-270m``."""
    languages: list[str] = field(default_factory=lambda: ["en", "zh", "vi"])
    """Languages to compare (a list or ``"en,zh,vi"``), at least two."""
    control_language: str | None = None
    """A second Latin-script language (e.g. ``fr``, ``es``) added to ``languages`` as a control for
    English; the report puts the two side by side (docs/reading-numbers.md)."""
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    """Identification methods (``crane methods`` lists them); the random control is added by
    ``random_control``."""
    budget: str = "match:crane"
    """Neurons per language: ``match:METHOD`` (every method as large as METHOD's sets), a count, a
    fraction (``"0.5%"``), or ``own``."""
    reference_budget: str = "0.5%"
    """Size of the reference method's sets when ``budget`` is ``match:METHOD``."""
    dtype: str = "float32"
    """``float32`` | ``bfloat16`` | ``float16`` | ``auto`` (float32 on the CPU, else the
    checkpoint's own dtype)."""
    device: str = "cpu"
    """``cpu`` | ``cuda`` | ``cuda:N`` | ``mps`` | ``auto`` (CUDA, else MPS, else the CPU) |
    ``shard`` (one model over every GPU and the CPU, accelerate's ``device_map``); under
    torchrun ``cuda`` is GPU ``LOCAL_RANK``."""
    trust_remote_code: bool = False
    """Allow a model's own Python code (only for sources you trust)."""
    revision: str | None = None
    """Model revision: a hub branch, tag or commit (part of the model's identity)."""
    attn_implementation: str | None = None
    """Attention implementation: ``eager`` | ``sdpa`` | ``flash_attention_2`` (none: the model's
    default)."""
    seed: int = 0
    """Seed of the random control, the bootstrap and the built-in item and prompt draws."""

    # identification
    identify_corpus: str = "auto"
    """Identification texts: ``auto`` (gettext where it gives ≥ 100 sentences in every language of
    the run, else UDHR), a built-in name or a corpus path."""
    identify_max_texts: int | None = 150
    """Most identification texts per language (the first ones; none: all)."""
    text_field: str = "text"
    """Text field/column of a JSONL, CSV or Parquet corpus."""
    lang_field: str = "lang"
    """Language field/column of such a corpus."""
    corpus_lang: str | None = None
    """Language of plain-text corpus files."""
    site: str = "down_in"
    """Neuron site: ``down_in`` | ``act``."""
    target: str = "logprob"
    """Explained quantity of relevance: ``logprob`` (v2 default) | ``logit``."""
    score: str = "contrast"
    """CRANE score: ``margin`` | ``entropy`` (v1), ``contrast`` | ``effect`` | ``fisher`` (v2,
    method.md; need ``target = "logprob"`` to be in bits per byte of damage)."""
    quantile: float = 0.95
    """Relevance quantile a neuron must reach, in [0, 1)."""
    lam: float = 1.0
    """v2 scores: weight λ of the other languages' exposure (``fisher``: their second-order
    damage)."""
    contrast_over: str = "max"
    """v2 scores subtract the other languages' ``max`` | ``mean`` exposure."""
    z: float = 2.0
    """``effect`` score: a neuron is eligible when its expected damage exceeds z standard errors."""
    profile: str = "signed"
    """Relevance profile: ``signed`` | ``positive`` | ``absolute`` | ``exposure`` (per-position |e|,
    v2 statistics)."""
    normalize: str = "global"
    """z-scores over all neurons (``global``) or within each layer (``layer``)."""
    verify: bool = True
    """Confirm relevance candidates by masking (group tests on held-out texts)."""
    verify_methods: list[str] = field(default_factory=lambda: ["crane", "gradxact"])
    """Relevance methods whose candidates are confirmed (when ``verify``)."""
    verify_ratio: float = 1.0
    """A group passes when its own rise exceeds this × the others' mean."""
    verify_mode: str = "search"
    """``groups``: v1 group tests of the top candidates; ``rounds``: v2 causal construction (masked
    re-estimation in rounds, exactly k, damage measured on validation; needs v2 statistics);
    ``search``: v3, the construction's set (the top-k with ``rounds = 1``) improved by passes of
    measured swaps until validated Sel stops rising ([identify.md](identify.md))."""
    rounds: int = 1
    """Rounds of the construction (k/rounds neurons per round; 1: the top-k), the start of the
    ``search``."""
    ig_steps: int = 2
    """Points of the integrated-gradient shares of each member (``rounds``: 0 means no shares, no
    swaps)."""
    ig_texts: int = 8
    """Texts per language the shares are estimated on: validation texts in ``rounds``, a new slice
    of the fit texts in each pass of the ``search`` (each point costs one backward pass over them
    per language; swaps are judged on every validation text)."""
    search_methods: list[str] = field(default_factory=list)
    """Methods reported twice, as published and after the same set search from their published
    set (``<method>+search``): the comparison of proposals under an equal search."""
    search_passes: int = 8
    """Most estimation passes per language of the ``search`` (each followed by validated trials)."""
    search_pool: float = 0.0
    """Candidates of a search pass: 0, every neuron outside the set (one backward pass scores them
    all; chosen on validation texts, bench/SELECTIVITY.md); above 0, the next ``search_pool × k``
    neurons of the method's ranking outside the set."""
    search_swaps: float = 0.25
    """Fraction of k the search's first trial swaps (worst members by share for the best candidates
    by gain); a rejected trial halves it, and the search stops when one swap gains nothing."""
    search_patience: int = 1
    """Passes in a row that end with a failed single swap before the search stops (each failed pass
    estimates again on the next fit texts)."""
    search_candidates: str = "gradient"
    """A search pass's candidates: ``gradient`` (the pool ordered by their Sel gain at the current
    set), ``ranking`` (in the method's order) or ``masked``
    (the method's scores collected again on the pass's fit texts with the set masked)."""
    swaps: bool = True
    """The construction swaps out members whose own-minus-others share is ≤ 0 (refilled from the
    last round's ranking), kept only if validated Sel does not fall."""
    verify_tests: int = 24
    """Most group tests per language."""
    token_budget: int | None = None
    """Token budget: most identification tokens per language (none: no limit); not ``batch_tokens``.
    """
    shard_texts: int = 64
    """Texts per saved statistics shard: the unit of resumption and of data-parallel work."""
    gradient_checkpointing: bool = False
    """Recompute each layer's forward in relevance collection's backward pass: less memory, the same
    statistics."""

    optimise_steps: int = 100
    """Most steps of the ``optimise`` method's mask optimisation per language (the reference
    optimum, method.md); with ``optimise_patience`` it stops when validated Sel stops rising."""
    optimise_lr: float = 0.1
    """Its Adam step size on the standardised mask logits."""
    optimise_texts: int = 8
    """Fit texts of each language in one optimisation step."""
    optimise_init: str | None = None
    """The method whose scores start the optimisation (none: ``crane`` when the study runs it, else
    ``actmean``)."""
    optimise_start: str | None = "best"
    """The set the optimisation warm-starts from: ``best`` (per language, the study's verified or
    searched set with the highest validated Sel), a set's name (``actmean+search``), or none (the
    scores' top-k)."""
    optimise_patience: int = 3
    """Checks of validated Sel (one every 5 steps) without a rise before the optimisation stops (0:
    all ``optimise_steps``)."""

    allow_overlap: bool = False
    """Go on with a note when identification texts are among the bits-per-byte evaluation texts
    (otherwise a clear error; [data.md](data.md))."""

    # evaluation
    bpb_corpus: str = "udhr"
    """Held-out text for bits per byte: a built-in name or a path."""
    bpb_part: str = "heldout"
    """Part of a built-in corpus for bits per byte."""
    bpb_max_texts: int | None = None
    """Bits per byte on the first N texts per language (none: all)."""
    choice_builtin_items: int = 0
    """Items per language of the built-in parallel cloze test (held-out gettext messages, UDHR
    paragraphs without gettext; up to about 300) (0: not run)."""
    choice_files: dict[str, str] = field(default_factory=dict)
    """Language → MMLU-style question file (CSV or JSONL), a table."""
    choice_fields: dict[str, str] = field(default_factory=dict)
    """Column names of those files when they differ from the defaults, a table."""
    generation_prompts: int = 0
    """Prompts per language for generation fidelity (needs the langid extra; 0: not run)."""
    generation_tokens: int = 16
    """Tokens generated per prompt."""
    benchmark_methods: list[str] | None = None
    """Methods whose sets the benchmarks other than bits per byte (multiple choice, generation
    fidelity) evaluate, ``random`` for the first random control (none: every method and the first
    random control); these benchmarks cost far more per row."""
    random_control: bool = True
    """Add the layer-matched random copy of the reference method's sets."""
    random_seeds: int = 3
    """Random controls with seeds ``seed``, ``seed + 1``, … (``random``, ``random-1``, …); each
    set's verdict compares it with their mean Sel."""
    sweep_budgets: list[float] = field(default_factory=list)
    """Fractions of all neurons for the budget sweep (unverified sets; empty: no sweep)."""
    sweep_methods: list[str] = field(default_factory=lambda: ["crane"])
    """Methods of the budget sweep."""
    n_boot: int = 1000
    """Bootstrap resamples of every confidence interval."""
    max_length: int = 128
    """Tokens per window (identification and evaluation)."""
    batch_size: int = 16
    """Most windows per batch (identification)."""
    batch_tokens: int = 1024
    """Most padded tokens per batch."""
    eval_batch_size: int = 64
    """Most windows per batch in evaluation."""

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "the configuration") -> StudyConfig:
        """Build from a flat mapping (TOML tables are flattened); unknown keys are errors."""
        config = cls(**cls.checked_keys(data, source))
        config.validate()
        return config

    @classmethod
    def checked_keys(
        cls, data: dict[str, Any], source: str = "the configuration"
    ) -> dict[str, Any]:
        """The keys a mapping sets, flattened (sections dropped) and type-checked, without the
        defaults of the keys it leaves out (lists may be given as comma-separated strings)."""
        flat: dict[str, Any] = {}
        bad = [k for k in data if not isinstance(k, str)] + [
            k for v in data.values() if isinstance(v, dict) for k in v if not isinstance(k, str)
        ]
        if bad:
            raise ConfigError(
                f"Key {bad[0]!r} in {source} is not a name; write keys as text (e.g. seed = 1)."
            )
        for key, value in data.items():
            section = value if isinstance(value, dict) and key not in TABLE_KEYS else {key: value}
            for name, item in section.items():
                if name in flat:
                    raise ConfigError(
                        f"Key {name!r} is given twice in {source}; keep it in one section."
                    )
                flat[name] = item
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(flat) - known)
        if unknown:
            raise ConfigError(
                f"Unknown key(s) {', '.join(unknown)} in {source}; valid keys: "
                f"{', '.join(sorted(known))}."
            )
        for key in (
            "languages", "methods", "sweep_methods", "verify_methods", "benchmark_methods",
            "search_methods",
        ):
            if isinstance(flat.get(key), str):
                flat[key] = [part.strip() for part in flat[key].split(",") if part.strip()]
        hints = typing.get_type_hints(cls)
        for key, value in flat.items():
            if not _conforms(value, hints[key]):
                raise ConfigError(
                    f"Key '{key}' in {source} has the value {value!r}, but it must be "
                    f"{type_name(hints[key])}; fix its value."
                )
        return flat

    def validate(self) -> None:
        from crane.data.languages import parse_language_list
        from crane.methods import get_method, parse_methods

        repeated = sorted({x for x in self.languages if self.languages.count(x) > 1})
        if repeated:
            raise ConfigError(
                f"languages lists {', '.join(repeated)} twice; give each language once."
            )
        self.languages = parse_language_list(self.languages)
        if self.control_language is not None:
            (control,) = parse_language_list([self.control_language])
            self.control_language = control
            if control not in self.languages:
                self.languages = [*self.languages, control]
        if len(self.languages) < 2:
            raise ConfigError("A study compares languages: give at least two (e.g. en,zh).")
        self.methods = parse_methods(",".join(self.methods))
        if any(get_method(m).statistics == "control" for m in self.methods):
            raise ConfigError(
                "'random' is not a study method: the study adds a layer-matched random control "
                "itself (random_control = true)."
            )
        if self.random_control and self.random_seeds < 1:
            raise ConfigError(
                f"random_seeds must be at least 1 with random_control, got {self.random_seeds}."
            )
        for name in ("n_boot", "verify_tests", "choice_builtin_items", "generation_prompts"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}.")
        for name in ("eval_batch_size", "generation_tokens", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("bpb_max_texts",):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(
                    f"{name} must be a positive number (or left out: all), got "
                    f"{getattr(self, name)}."
                )
        for b in self.sweep_budgets:
            if not 0 < float(b) < 1:
                raise ConfigError(f"Sweep budgets are fractions in (0, 1), got {b}.")
        missing = [m for m in self.sweep_methods if m not in self.methods]
        if self.sweep_budgets and missing:
            raise ConfigError(
                f"Sweep method(s) {', '.join(missing)} are not among the study's methods."
            )
        if self.benchmark_methods is not None:
            allowed = [
                *self.methods, *(f"{m}+search" for m in self.search_methods),
                *(["random"] if self.random_control else []),
            ]
            stray = [m for m in self.benchmark_methods if m not in allowed]
            if stray:
                raise ConfigError(
                    f"benchmark_methods names {', '.join(stray)}, which the study does not run; "
                    f"choose among {', '.join(allowed)}."
                )
        self.validate_identification()

    def validate_identification(self) -> None:
        """The checks of the identification keys alone (``crane identify --config`` too)."""
        if self.seed < 0:
            raise ConfigError(f"seed must not be negative, got {self.seed}.")
        for name, flag in (("identify_max_texts", "--max-texts"), ("token_budget", "--max-tokens")):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(
                    f"{name} ({flag}) must be a positive number (or left out: no limit), got "
                    f"{getattr(self, name)}."
                )
        self.identify_options()  # site, target, sizes, verification options
        from crane.scoring.crane_score import CONTRASTS, NORMALIZATIONS, PROFILES, SCORES

        for name, allowed in (
            ("score", SCORES), ("profile", tuple(PROFILES)), ("normalize", NORMALIZATIONS),
            ("contrast_over", CONTRASTS),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"{name} = {getattr(self, name)!r} is not one of: {', '.join(allowed)}."
                )
        if not 0 <= self.quantile < 1:
            raise ConfigError(f"quantile must be in [0, 1), got {self.quantile}.")
        from crane.identification.relevance import VERIFY_MODES

        if self.verify_mode not in VERIFY_MODES:
            raise ConfigError(
                f"verify_mode = {self.verify_mode!r} is not one of: {', '.join(VERIFY_MODES)}."
            )
        if self.rounds < 1:
            raise ConfigError(f"rounds must be at least 1, got {self.rounds}.")
        if self.ig_steps < 0:
            raise ConfigError(f"ig_steps must be 0 or more, got {self.ig_steps}.")
        import math

        if self.search_methods:
            from crane.identification.run import check_search_methods
            from crane.methods import parse_methods

            check_search_methods(
                parse_methods(",".join(self.methods)), self.search_methods,
                self.identify_options(), self.verify_methods,
            )
        if self.verify_mode == "search" or self.search_methods:
            from crane.search import SearchOptions

            SearchOptions(
                passes=self.search_passes, pool=self.search_pool,
                swap_fraction=self.search_swaps, ig_steps=self.ig_steps, ig_texts=self.ig_texts,
                patience=self.search_patience, candidates=self.search_candidates,
            ).validate()

        for name in ("lam", "z", "verify_ratio", "quantile", "optimise_lr"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a finite number, got {getattr(self, name)}.")
        if self.lam < 0 or self.z < 0:
            raise ConfigError(f"lam and z must not be negative, got {self.lam} and {self.z}.")
        if self.optimise_init is not None:
            from crane.methods import get_method

            get_method(self.optimise_init)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def score_options(self) -> dict[str, Any]:
        """Options of the relevance methods' scorer (as :class:`IdentifyOptions` has them)."""
        return dict(self.identify_options().score_options())

    def identify_options(self) -> Any:
        """The :class:`crane.identification.IdentifyOptions` this study identifies with."""
        from crane.collect import RelevanceOptions
        from crane.identification import IdentifyOptions
        from crane.optimise import OptimiseOptions
        from crane.verify import VerifyOptions

        relevance = {field: getattr(self, key) for field, key in RELEVANCE_KEYS.items()}
        return IdentifyOptions(
            relevance=RelevanceOptions(**relevance).validate(),
            **{key: getattr(self, key) for key in SCORE_KEYS},
            verify=self.verify,
            verify_mode=self.verify_mode,
            rounds=self.rounds,
            ig_steps=self.ig_steps,
            ig_texts=self.ig_texts,
            swaps=self.swaps,
            search_passes=self.search_passes,
            search_pool=self.search_pool,
            search_swaps=self.search_swaps,
            search_patience=self.search_patience,
            search_candidates=self.search_candidates,
            max_texts=self.identify_max_texts,
            token_budget=self.token_budget,
            verification=VerifyOptions(
                ratio=self.verify_ratio, max_tests=self.verify_tests
            ).validate(),
            optimise=OptimiseOptions(
                steps=self.optimise_steps, lr=self.optimise_lr,
                texts_per_step=self.optimise_texts, init=self.optimise_init, seed=self.seed,
                start=self.optimise_start, patience=self.optimise_patience,
            ).validate(),
        )


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


def type_name(tp: Any) -> str:
    """``int | None`` → ``"a whole number or nothing"`` for error messages."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join("nothing" if a is type(None) else type_name(a) for a in args)
    if typing.get_origin(tp) is list:
        return f"a list (each {type_name(args[0])})"
    if typing.get_origin(tp) is dict:
        return f"a table (each value {type_name(args[1])})"
    names = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def load_config(path: str | Path) -> StudyConfig:
    """Read a study configuration from TOML (``.toml``) or YAML (``.yaml``/``.yml``)."""
    path = Path(path)
    config = StudyConfig.from_dict(_read_file(path), source=str(path))
    return _paths_relative_to(config, path.parent)


def read_config_keys(path: str | Path) -> dict[str, Any]:
    """The keys a configuration file sets (flat, type-checked, relative paths resolved against
    the file's folder), without defaults for the keys it leaves out: what ``crane identify
    --config`` lays over its own defaults. Whole-study checks are left to the caller."""
    path = Path(path)
    given = StudyConfig.checked_keys(_read_file(path), source=str(path))
    resolved = _paths_relative_to(dataclasses.replace(StudyConfig(), **given), path.parent)
    return {key: getattr(resolved, key) for key in given}


def _read_file(path: Path) -> dict[str, Any]:
    """The top-level table of a TOML or YAML file (errors name the file and the fix)."""
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
            data = yaml.load(text, Loader=_UniqueKeyLoader(yaml, path)) or {}
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
    return data


def _UniqueKeyLoader(yaml: Any, path: Path) -> Any:  # noqa: N802 (a class factory: yaml is imported lazily)
    """PyYAML's safe loader, refusing a mapping that gives a key twice (plain ``safe_load``
    keeps the last one silently)."""

    class Loader(yaml.SafeLoader):  # type: ignore[misc, name-defined]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, str) and key in seen:
                    raise ConfigError(
                        f"Key {key!r} is given twice in {path} (line "
                        f"{key_node.start_mark.line + 1}); keep one."
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return Loader


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
