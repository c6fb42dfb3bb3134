"""Causal construction of a language's set (docs/method.md "verification v2", part): rounds of
masked re-estimation, exactly k neurons, and the set's damage measured on validation texts.

For each language L the set is built in R rounds: take the best k/R neurons by the score, mask
the set so far, collect the relevance statistics again *with the mask on* (neurons that
compensate for the masked ones show up now), rescore, add the next k/R. The set then always
holds exactly k neurons (when fewer are eligible, the rest come from L's exposure ranking, and
the report says how many). Finally the set is masked on the validation texts: the measured
change per language is reported beside the first-order prediction Σ_{n∈set} D_E(n) from the
unmasked statistics, with the forward and backward passes spent.

Then each member's share of the set's effect is estimated on the validation texts by
integrated gradients along the mask scale α ∈ (0, 1] (the midpoint rule over ``ig_steps``
points; the shares of a language sum to the set's change there up to the quadrature error,
reported as ``share_gap``). Members whose own-minus-others share is ≤ 0 are swapped out for the
next neurons of the last round's (masked-point) ranking, and the swap is kept only if the
validated Sel does not fall.
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
from crane.masked_loss import LanguageTexts, scaled_site
from crane.masked_loss import bits_per_byte as masked_bits_per_byte
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
    ig_steps: int = 2
    """Points of the integrated-gradient shares (0: no shares and no swaps)."""
    ig_texts: int = 8
    """Most validation texts per language the shares are estimated on (each point costs one
    backward pass over them per language; swaps are still judged on every validation text)."""
    swaps: bool = True
    """Swap out members with a share ≤ 0 when the validated Sel does not fall."""

    def validate(self) -> ConstructionOptions:
        if self.rounds < 1:
            raise ConfigError(f"construction rounds must be at least 1, got {self.rounds}.")
        if self.ig_steps < 0:
            raise ConfigError(f"ig_steps must be 0 or more, got {self.ig_steps}.")
        if self.ig_texts < 1:
            raise ConfigError(f"ig_texts must be at least 1, got {self.ig_texts}.")
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
    ig_steps: int = 0
    share_sum: dict[str, float] = field(default_factory=dict)
    """Σ of the members' integrated-gradient shares per language (bits/byte)."""
    share_gap: float = float("nan")
    """Largest |Σ shares − Δ| over languages, Δ from the same path's end points (quadrature
    error of the completeness check)."""
    nonpositive_shares: int = 0
    """Members whose own-minus-others share is ≤ 0."""
    swaps_tried: int = 0
    swaps_kept: int = 0
    sel_before_swaps: float = float("nan")
    backward_passes: int = 0
    """Backward passes of the shares (over validation texts)."""


def next_neurons(ranking: torch.Tensor, chosen: set[int], quota: int) -> list[int]:
    """The first ``quota`` neurons of ``ranking`` (flat indices) that are not in ``chosen``."""
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
    measure: bool = True,
) -> tuple[NeuronSet, dict[str, ConstructionReport]]:
    """Every language's set by rounds of masked re-estimation (see the module docstring), for
    any scored method: ``score(stats) -> Scores`` rescores statistics, ``recollect(masked)``
    collects them again under a mask, ``stats`` are the unmasked statistics (round one).
    ``batching`` gives the window and batch sizes of the validation evaluation; without
    ``measure`` the set is returned unmeasured, with no shares or swaps (the search's start)."""
    options = (options or ConstructionOptions()).validate()
    progress = progress or NullProgress()
    languages = stats.language_codes
    n_layers, d_ff = loaded.shape.n_layers, loaded.shape.d_ff
    reports: dict[str, ConstructionReport] = {}
    members: dict[str, list[int]] = {}
    last_ranking: dict[str, torch.Tensor] = {}
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
            picked = next_neurons(ranking, set(chosen), quota)
            chosen += picked
            report.per_round.append(len(picked))
            report.rounds += 1
        if len(chosen) < k:  # too few eligible: fill from L's own use of each neuron, recorded
            fill = next_neurons(_fill_order(stats, lang), set(chosen), k - len(chosen))
            report.filled_from_exposure = len(fill)
            chosen += fill
        members[lang], last_ranking[lang] = chosen, ranking
        report.predicted_delta = _predicted(stats, chosen)
        reports[lang] = report
    shape = (n_layers, d_ff)
    if not measure:
        return _neuron_set(members, site, shape), reports
    _measure(loaded, _neuron_set(members, site, shape), validation, batching, reports)
    if options.ig_steps:
        texts = {
            e: LanguageTexts(loaded, validation.texts[e][: options.ig_texts], batching)
            for e in languages
            if e in validation.languages
        }
        for lang in members:
            progress.message(f"construction: {lang}, integrated-gradient shares")
            members[lang] = _shares_and_swaps(
                loaded, lang, members[lang], texts, site, options, reports[lang],
                refill=[last_ranking[lang], _fill_order(stats, lang)],
                measure=lambda chosen, lang=lang: _measure(
                    loaded, _neuron_set({lang: chosen}, site, shape), validation, batching,
                    {lang: ConstructionReport(budget=len(chosen))},
                )[lang],
            )
    return _neuron_set(members, site, shape), reports


def _neuron_set(
    members: dict[str, list[int]], site: str, shape: tuple[int, int]
) -> NeuronSet:
    n_layers, d_ff = shape
    neurons = {
        lang: to_layer_indices(torch.tensor(sorted(chosen), dtype=torch.long), d_ff)
        for lang, chosen in members.items()
    }
    return NeuronSet(neurons, site, n_layers, d_ff, {})


def integrated_gradient_shares(
    loaded: LoadedModel,
    chosen: list[int],
    texts: dict[str, LanguageTexts],
    site: str,
    steps: int,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Each member's share of the set's change in bits per byte, per language: the integral
    over the mask scale α ∈ (0, 1] of ∂bpb_E/∂α_n (midpoint rule, ``steps`` points; the
    members' site values are multiplied by 1 − α_n). Returns (language → shares ``[|set|]``,
    language → the set's change from the same path's end points)."""
    n_layers, d_ff = loaded.shape.n_layers, loaded.shape.d_ff
    index = torch.tensor(chosen, dtype=torch.long)
    shares = {e: torch.zeros(len(chosen), dtype=torch.float64) for e in texts}
    for j in range(steps):
        point = (j + 0.5) / steps
        for e, t in texts.items():
            alpha = torch.full((len(chosen),), point, requires_grad=True)
            factor = torch.ones(n_layers * d_ff).index_put((index,), 1.0 - alpha)
            with scaled_site(loaded, site, factor.view(n_layers, d_ff)):
                bpb = masked_bits_per_byte(loaded, t)
            (grad,) = torch.autograd.grad(bpb, [alpha])
            shares[e] += grad.double() / steps
    zeroed = torch.ones(n_layers * d_ff)
    zeroed[index] = 0.0
    delta = {}
    with torch.no_grad():
        for e, t in texts.items():
            base = float(masked_bits_per_byte(loaded, t))
            with scaled_site(loaded, site, zeroed.view(n_layers, d_ff)):
                delta[e] = float(masked_bits_per_byte(loaded, t)) - base
    return shares, delta


def _shares_and_swaps(
    loaded: LoadedModel,
    lang: str,
    chosen: list[int],
    texts: dict[str, LanguageTexts],
    site: str,
    options: ConstructionOptions,
    report: ConstructionReport,
    *,
    refill: list[torch.Tensor],
    measure: Callable[[list[int]], ConstructionReport],
) -> list[int]:
    """Shares of ``lang``'s set, then one validated swap of its members with a share ≤ 0."""
    shares, delta = integrated_gradient_shares(loaded, chosen, texts, site, options.ig_steps)
    others = [e for e in shares if e != lang]
    report.ig_steps = options.ig_steps
    report.backward_passes += options.ig_steps * len(shares)
    report.share_sum = {e: float(v.sum()) for e, v in shares.items()}
    report.share_gap = max(abs(report.share_sum[e] - delta[e]) for e in shares)
    own = shares[lang] - torch.stack([shares[e] for e in others]).mean(0)
    drop = {chosen[i] for i in torch.nonzero(own <= 0).flatten().tolist()}
    report.nonpositive_shares = len(drop)
    report.sel_before_swaps = report.measured_sel
    if not drop or not options.swaps:
        return chosen
    kept = [n for n in chosen if n not in drop]
    taken = set(chosen)
    for order in refill:  # the masked-point ranking, then L's own use of each neuron
        more = next_neurons(order, taken, len(chosen) - len(kept))
        kept += more
        taken |= set(more)
    if len(kept) < len(chosen):
        return chosen  # nothing to refill with: keep exactly k
    report.swaps_tried = len(drop)
    trial = measure(kept)
    report.forward_passes += trial.forward_passes
    if trial.measured_sel >= report.measured_sel:
        report.swaps_kept = len(drop)
        report.measured_delta, report.measured_sel = trial.measured_delta, trial.measured_sel
        return kept
    return chosen


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
) -> dict[str, ConstructionReport]:
    """Mask each language's set on the validation texts of every language: measured Δ per
    language and Sel, written into ``reports`` (returned)."""
    from crane.evaluation.metrics import row_metrics

    evaluated = [lang for lang in validation.languages]
    masked = [lang for lang in sets.languages if lang in evaluated]
    benchmark = BitsPerByteBenchmark(
        loaded.model, loaded.tokenizer, validation.select(evaluated),
        batch_size=batching.batch_size, batch_tokens=batching.batch_tokens,
        max_length=batching.max_length,
    )
    conditions = [Condition(f"set:{lang}", sets, lang, "construction") for lang in masked]
    cells = run_conditions(
        loaded.model, [UNMASKED, *conditions], [benchmark], languages=evaluated,
        adapter=loaded.adapter,
    )[benchmark.name]
    per_eval = sum(benchmark.batches(lang) for lang in evaluated)
    for lang in masked:
        delta = {
            e: cells[(f"set:{lang}", e)].value - cells[("none", e)].value for e in evaluated
        }
        report = reports[lang]
        report.measured_delta = delta
        report.measured_sel = row_metrics(delta, lang)["sel"]
        report.forward_passes += per_eval  # its masked evaluation (the unmasked one is shared)
    return reports
