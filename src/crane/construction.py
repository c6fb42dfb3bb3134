"""Causal construction of a language's set (METHOD.md "verification v2", part): rounds of
masked re-estimation, exactly k neurons, and the set's damage measured on validation texts.

For each language L the set is built in R rounds: take the best k/R neurons by the score, mask
the set so far, collect the relevance statistics again *with the mask on* (neurons that
compensate for the masked ones show up now), rescore, add the next k/R. The set then always
holds exactly k neurons (when fewer are eligible, the rest come from L's exposure ranking, and
the report says how many). Finally the set is masked on the validation texts: the measured
change per language is reported beside the first-order prediction Σ_{n∈set} D_E(n) from the
unmasked statistics, with the forward and backward passes spent.

Not built yet (see the closing notes of issue 14): integrated-gradient shares along the mask
scale, swaps validated on Sel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from crane.collect import RelevanceOptions
from crane.data.corpus import Corpus
from crane.errors import ConfigError
from crane.evaluation.benchmarks import BitsPerByteBenchmark
from crane.evaluation.conditions import UNMASKED, Condition, run_conditions
from crane.models.loading import LoadedModel
from crane.neurons import NeuronSet
from crane.progress import NullProgress, Progress
from crane.scoring.base import Scores, to_layer_indices
from crane.scoring.budget import Budget
from crane.scoring.crane_score import per_byte
from crane.stats import Stats


@dataclass(frozen=True)
class ConstructionOptions:
    """How a set is constructed (recorded in its provenance)."""

    rounds: int = 4

    def validate(self) -> ConstructionOptions:
        if self.rounds < 1:
            raise ConfigError(f"construction rounds must be at least 1, got {self.rounds}.")
        return self


@dataclass
class ConstructionReport:
    """What the construction did for one language."""

    budget: int
    rounds: int = 0
    per_round: list[int] = field(default_factory=list)
    filled_from_exposure: int = 0
    relevance_passes: int = 0
    """Passes over the fit texts collected again under a mask (relevance: forward+backward;
    activation methods: forward only)."""
    forward_passes: int = 0
    predicted_delta: dict[str, float] = field(default_factory=dict)
    measured_delta: dict[str, float] = field(default_factory=dict)
    measured_sel: float = float("nan")


def _next_neurons(ranking: torch.Tensor, chosen: set[int], quota: int) -> list[int]:
    out: list[int] = []
    for index in ranking.tolist():
        if len(out) == quota:
            break
        if index not in chosen:
            out.append(int(index))
    return out


def _quotas(k: int, rounds: int) -> list[int]:
    """k split into ``rounds`` near-equal parts (earlier rounds take the remainder)."""
    rounds = max(1, min(rounds, k))
    base, extra = divmod(k, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


Recollect = Callable[[NeuronSet], Stats]
"""The statistics of the fit texts collected again while a set is masked."""


def construct_sets(
    loaded: LoadedModel,
    stats: Stats,
    validation: Corpus,
    *,
    score: Callable[[Stats], Scores],
    recollect: Recollect,
    budget: Budget,
    site: str,
    batching: RelevanceOptions,
    options: ConstructionOptions | None = None,
    progress: Progress | None = None,
) -> tuple[NeuronSet, dict[str, ConstructionReport]]:
    """Every language's set by rounds of masked re-estimation (see the module docstring), for
    any scored method: ``score(stats) -> Scores`` rescores statistics, ``recollect(masked)``
    collects them again under a mask, ``stats`` are the unmasked statistics (round one).
    ``batching`` gives the window and batch sizes of the validation evaluation."""
    options = (options or ConstructionOptions()).validate()
    progress = progress or NullProgress()
    languages = stats.language_codes
    n_layers, d_ff = loaded.shape.n_layers, loaded.shape.d_ff
    neurons: dict[str, dict[int, list[int]]] = {}
    reports: dict[str, ConstructionReport] = {}
    first: Scores = score(stats)
    for lang in languages:
        k = budget.for_language(lang, n_layers * d_ff)
        report = ConstructionReport(budget=k)
        chosen: list[int] = []
        for r, quota in enumerate(_quotas(k, options.rounds)):
            if r == 0:
                ranking = first.ranking(lang)
            else:
                progress.message(f"construction: {lang}, round {r + 1}, masked re-estimation")
                masked = NeuronSet(
                    {lang: to_layer_indices(torch.tensor(chosen), d_ff)}, site, n_layers, d_ff
                )
                ranking = score(recollect(masked)).ranking(lang)
                report.relevance_passes += 1
            picked = _next_neurons(ranking, set(chosen), quota)
            chosen += picked
            report.per_round.append(len(picked))
            report.rounds += 1
        if len(chosen) < k:  # too few eligible: fill from L's own use of each neuron, recorded
            fill = _next_neurons(_fill_order(stats, lang), set(chosen), k - len(chosen))
            report.filled_from_exposure = len(fill)
            chosen += fill
        neurons[lang] = to_layer_indices(torch.tensor(sorted(chosen), dtype=torch.long), d_ff)
        report.predicted_delta = _predicted(stats, chosen)
        reports[lang] = report
    result = NeuronSet(neurons, site, n_layers, d_ff, {})
    _measure(loaded, result, validation, batching, reports)
    return result, reports


def _fill_order(stats: Stats, lang: str) -> torch.Tensor:
    """Flat neuron order for filling a set: the language's exposure (relevance statistics),
    else its mean |activation| (activation statistics), largest first."""
    tensors = stats[lang].tensors
    name = "exp_sum" if "exp_sum" in tensors else "site_abs_sum"
    if name not in tensors:
        raise ConfigError(
            f"Statistics of '{lang}' hold neither exposure nor |activation| sums to fill a set."
        )
    return torch.sort(-tensors[name].double().flatten(), stable=True).indices


def _predicted(stats: Stats, chosen: list[int]) -> dict[str, float]:
    """First-order change per language, Σ_{n∈set} D_E(n) (relevance statistics of the
    log-probability only; empty otherwise)."""
    try:
        damage = per_byte(stats, "rel_sum").flatten(1)
    except ConfigError:
        return {}
    index = torch.tensor(chosen, dtype=torch.long)
    return {e: float(damage[j, index].sum()) for j, e in enumerate(stats.language_codes)}


def _measure(
    loaded: LoadedModel,
    sets: NeuronSet,
    validation: Corpus,
    batching: RelevanceOptions,
    reports: dict[str, ConstructionReport],
) -> None:
    """Mask each language's set on the validation texts: measured Δ per language and Sel."""
    from crane.evaluation.metrics import row_metrics

    languages = [lang for lang in sets.languages if lang in validation.languages]
    benchmark = BitsPerByteBenchmark(
        loaded.model, loaded.tokenizer, validation.select(languages),
        batch_size=batching.batch_size, batch_tokens=batching.batch_tokens,
        max_length=batching.max_length,
    )
    conditions = [Condition(f"set:{lang}", sets, lang, "construction") for lang in languages]
    cells = run_conditions(
        loaded.model, [UNMASKED, *conditions], [benchmark], languages=languages,
        adapter=loaded.adapter,
    )[benchmark.name]
    per_eval = sum(benchmark.batches(lang) for lang in languages)
    for lang in languages:
        delta = {
            e: cells[(f"set:{lang}", e)].value - cells[("none", e)].value for e in languages
        }
        report = reports[lang]
        report.measured_delta = delta
        report.measured_sel = row_metrics(delta, lang)["sel"]
        report.forward_passes = per_eval  # its masked evaluation (the unmasked one is shared)
