"""How many neurons each language gets: a count, a fraction of all neurons, or another set's."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from crane.errors import ConfigError

DEFAULT_FRACTION = 0.005
"""0.5% of all MLP neurons per language (docs/method.md)."""


@dataclass(frozen=True)
class Budget:
    """Per-language neuron budget. Exactly one of ``count``, ``fraction``, ``match`` is set."""

    count: int | None = None
    fraction: float | None = None
    match: dict[str, int] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        given = sum(x is not None and x != {} for x in (self.count, self.fraction, self.match))
        if given != 1:
            raise ConfigError("A budget needs exactly one of a count, a fraction or a set to match.")
        if self.count is not None and self.count < 1:
            raise ConfigError(f"The neuron budget must be at least 1, got {self.count}.")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise ConfigError(
                f"The neuron budget fraction must be in (0, 1], got {self.fraction}; "
                "e.g. 0.005 or 0.5% for half a percent."
            )

    def for_language(self, language: str, n_neurons: int) -> int:
        """The number of neurons ``language`` gets in a model with ``n_neurons`` neurons."""
        if self.match:
            if language not in self.match:
                raise ConfigError(
                    f"The budget matches {self.source or 'another set'}, which has no language "
                    f"'{language}'; it has: {', '.join(self.match)}."
                )
            k = self.match[language]
        elif self.count is not None:
            k = self.count
        else:
            assert self.fraction is not None
            k = max(1, round(self.fraction * n_neurons))
        if k > n_neurons:
            raise ConfigError(
                f"The budget asks for {k} neurons but the model has only {n_neurons}; "
                "use a smaller count or fraction."
            )
        return k

    def check_languages(self, languages: Iterable[str]) -> None:
        """Raise ConfigError now, before any work, unless a budget matching a set *file* gives
        every language of the run at least one neuron (a file that lacks a language, or has
        none of its neurons, cannot size that language's set). Count and fraction budgets
        pass. Not for a set of the same run (``match:METHOD``): LAPE's own sets may leave a
        language empty, and matching them is a legitimate equal budget."""
        if not self.match:
            return
        source = self.source or "another set"
        missing = [lang for lang in languages if lang not in self.match]
        if missing:
            raise ConfigError(
                f"The budget matches {source}, which has no language "
                f"{', '.join(repr(m) for m in missing)}; it has: {', '.join(self.match)}. Match a "
                "set of this run's languages, or give a count or fraction."
            )
        empty = [lang for lang in languages if self.match[lang] < 1]
        if empty:
            raise ConfigError(
                f"The budget matches {source}, which has no neurons for {', '.join(empty)}; "
                "match a set with neurons in every language, or give a count or fraction."
            )

    def describe(self) -> dict[str, object]:
        if self.match:
            return {"match": self.match, "source": self.source}
        return {"count": self.count} if self.count is not None else {"fraction": self.fraction}


def parse_budget(spec: str | int | float | None) -> Budget:
    """``"0.5%"``, ``"0.005"`` (fractions), ``"184"`` (a count) or ``"match:PATH"`` (a saved
    NeuronSet whose per-language sizes are copied)."""
    if spec is None:
        return Budget(fraction=DEFAULT_FRACTION)
    if isinstance(spec, bool):
        raise ConfigError(f"Invalid neuron budget {spec!r}.")
    if isinstance(spec, int):
        return Budget(count=spec)
    if isinstance(spec, float):
        return Budget(fraction=spec) if spec < 1 else Budget(count=int(spec))
    text = spec.strip()
    if text.startswith("match:"):
        from crane.neurons import NeuronSet

        path = Path(text[len("match:") :])
        if not path.exists() and path.suffix == "" and len(path.parts) == 1:
            raise ConfigError(
                f"Budget '{text}' matches '{path}', which is neither a method of this run nor a "
                "neuron-set file; add the method (e.g. --method crane,lape) or give a file."
            )
        other = NeuronSet.load(path)
        return Budget(match={lang: other.size(lang) for lang in other.languages}, source=str(path))
    number = re.fullmatch(r"([-+]?\d+(?:\.\d*)?|[-+]?\.\d+)(%?)", text)
    if not number:
        raise ConfigError(
            f"Invalid neuron budget '{spec}'; use a count (184), a fraction (0.005 or 0.5%) "
            "or match:PATH to copy another neuron set's sizes."
        )
    value = float(number.group(1))
    if number.group(2):
        return Budget(fraction=value / 100)
    if "." in number.group(1):
        return Budget(fraction=value)
    return Budget(count=int(value))
