"""``optimise``: the reference optimum of selectivity at a budget, by mask optimisation
(docs/method.md "Reference optimum and the selectivity frontier").

For each language L: one logit θ_n per neuron, initialised from a method's scores S_L
(standardised); the forward pass masks the hard top-k of θ (exactly k neurons zeroed, the same
masking the evaluation uses) and the backward pass uses a straight-through sigmoid centred at
the top-k threshold, σ((θ − t)/τ), with the temperature τ annealed geometrically. The loss is
−Sel on the fit texts in bits per byte, −bpb_L + λ · mean_{E≠L} bpb_E (the unmasked values are
constants), on a seeded minibatch of texts per language and step. At the end the initial and
the optimised top-k are both measured on all fit texts and the better one is kept (never the
validation or evaluation texts); its Δ and Sel on the validation texts are then reported.

It is a reference, not a bound: the problem is not convex. Every method's efficiency
Sel / Sel* is reported on the same evaluation texts (``crane.study.assemble``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from crane.collect import RelevanceOptions
from crane.data.corpus import Corpus
from crane.errors import ConfigError
from crane.masked_loss import LanguageTexts, bits_per_byte, scaled_site
from crane.models.loading import LoadedModel
from crane.neurons import NeuronSet
from crane.progress import NullProgress, Progress
from crane.scoring.base import Scores, to_layer_indices
from crane.scoring.budget import Budget


@dataclass(frozen=True)
class OptimiseOptions:
    """How the reference optimum is searched (recorded in the set's provenance)."""

    steps: int = 30
    lr: float = 0.1
    texts_per_step: int = 8
    """Texts of each language in one step's minibatch."""
    temperature: tuple[float, float] = (1.0, 0.05)
    """τ at the first and at the last step (annealed geometrically)."""
    lam: float = 1.0
    """Weight of the mean off-target damage (1: the loss is −Sel)."""
    init: str | None = None
    """The method whose scores initialise θ (None: crane when the run has it, else actmean)."""
    seed: int = 0

    def validate(self) -> OptimiseOptions:
        start, end = self.temperature
        problems = [
            (self.steps >= 0, f"optimise steps must be 0 or more, got {self.steps}"),
            (math.isfinite(self.lr) and self.lr > 0, f"optimise lr must be > 0, got {self.lr}"),
            (self.texts_per_step >= 1, "optimise texts per step must be at least 1"),
            (
                all(math.isfinite(t) and t > 0 for t in (start, end)),
                f"optimise temperatures must be > 0, got {self.temperature}",
            ),
            (math.isfinite(self.lam) and self.lam >= 0, f"optimise λ must be ≥ 0, got {self.lam}"),
        ]
        for ok, message in problems:
            if not ok:
                raise ConfigError(f"{message}; see docs/study.md (optimise options).")
        return self

    def temperature_at(self, step: int) -> float:
        start, end = self.temperature
        if self.steps <= 1:
            return end
        return start * (end / start) ** (step / (self.steps - 1))


@dataclass
class OptimiseReport:
    """What the optimisation did for one language (``verification`` in study.json)."""

    budget: int
    steps: int = 0
    init: str = ""
    objective: list[float] = field(default_factory=list)
    """−loss of each step's hard mask on its minibatch: bpb_L − λ·mean bpb_E (bits/byte)."""
    fit_sel_init: float = float("nan")
    fit_sel_final: float = float("nan")
    kept: str = ""
    """Which top-k was kept on the fit texts: ``optimised`` or ``initial``."""
    changed: int = 0
    """Neurons of the kept set that were not in the initial top-k."""
    forward_passes: int = 0
    backward_passes: int = 0
    seconds: float = 0.0
    measured_delta: dict[str, float] = field(default_factory=dict)
    measured_sel: float = float("nan")


def _standardised(scores: Scores, lang: str) -> torch.Tensor:
    """S_L flattened and standardised (ineligible neurons just below the lowest eligible)."""
    flat = scores.values[lang].flatten().double()
    finite = torch.isfinite(flat)
    if not bool(finite.any()):
        return torch.zeros_like(flat)
    low = flat[finite].min()
    flat = torch.where(finite, flat, low - 1.0)
    std = flat.std().clamp_min(1e-12)
    return (flat - flat.mean()) / std


def _hard_mask(theta: torch.Tensor, k: int, tau: float) -> torch.Tensor:
    """1 on the top-k of θ in the forward pass; the gradient of σ((θ − t)/τ) in the backward
    pass, t halfway between the k-th and the (k+1)-th largest θ."""
    values, index = torch.topk(theta.detach(), min(k + 1, theta.numel()))
    hard = torch.zeros_like(theta)
    hard[index[:k]] = 1.0
    threshold = (values[k - 1] + values[k]) / 2 if values.numel() > k else values[-1] - 1.0
    soft = torch.sigmoid((theta - threshold) / tau)
    return hard + (soft - soft.detach())  # exactly the hard mask in the forward pass


def _fit_sel(
    loaded: LoadedModel,
    texts: dict[str, LanguageTexts],
    lang: str,
    chosen: torch.Tensor,
    base: dict[str, float],
    site: str,
    lam: float,
) -> float:
    """Sel on all fit texts of the hard set ``chosen`` (flat indices) for ``lang``."""
    n_layers, d_ff = loaded.shape.n_layers, loaded.shape.d_ff
    keep = torch.ones(n_layers * d_ff)
    keep[chosen] = 0.0
    delta = {}
    with torch.no_grad(), scaled_site(loaded, site, keep.view(n_layers, d_ff)):
        for e, t in texts.items():
            delta[e] = float(bits_per_byte(loaded, t)) - base[e]
    others = [delta[e] for e in texts if e != lang]
    return delta[lang] - lam * (sum(others) / len(others))


def optimise_sets(
    loaded: LoadedModel,
    fit: Corpus,
    validation: Corpus | None,
    init: Scores,
    *,
    budget: Budget,
    site: str,
    batching: RelevanceOptions,
    options: OptimiseOptions | None = None,
    progress: Progress | None = None,
) -> tuple[NeuronSet, dict[str, OptimiseReport]]:
    """Every language's reference set at ``budget`` (see the module docstring): exactly k
    neurons per language, with a report per language; measured on ``validation`` when given."""
    from crane.construction import ConstructionReport, _measure

    options = (options or OptimiseOptions()).validate()
    progress = progress or NullProgress()
    languages = [lang for lang in fit.languages if lang in init.values]
    if len(languages) < 2:
        raise ConfigError("optimise compares languages: give at least two (e.g. en,zh).")
    n_layers, d_ff = loaded.shape.n_layers, loaded.shape.d_ff
    texts = {lang: LanguageTexts(loaded, fit.texts[lang], batching) for lang in languages}
    with torch.no_grad():
        base = {e: float(bits_per_byte(loaded, t)) for e, t in texts.items()}
    generator = torch.Generator().manual_seed(options.seed)
    neurons: dict[str, dict[int, list[int]]] = {}
    reports: dict[str, OptimiseReport] = {}
    for lang in languages:
        started = time.perf_counter()
        k = budget.for_language(lang, n_layers * d_ff)
        report = OptimiseReport(budget=k, init=init.method)
        theta0 = _standardised(init, lang).float()
        initial = torch.topk(theta0, k).indices
        theta = theta0.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([theta], lr=options.lr)
        others = [e for e in languages if e != lang]
        weight = {lang: -1.0, **{e: options.lam / len(others) for e in others}}
        for step in range(options.steps):
            progress.message(f"optimise: {lang}, step {step + 1}/{options.steps}")
            optimiser.zero_grad()
            tau = options.temperature_at(step)
            objective = 0.0
            for e, t in texts.items():
                order = torch.randperm(len(t.texts), generator=generator).tolist()
                chosen = [t.texts[i] for i in order[: options.texts_per_step]]
                # a fresh graph through the mask per language: the model is frozen, only θ
                # receives a gradient
                keep = 1.0 - _hard_mask(theta, k, tau).view(n_layers, d_ff)
                with scaled_site(loaded, site, keep):
                    bpb = bits_per_byte(loaded, t, chosen)
                (weight[e] * bpb).backward()
                objective -= weight[e] * float(bpb.detach())
                report.forward_passes += 1
                report.backward_passes += 1
            optimiser.step()
            report.objective.append(objective)
        report.steps = options.steps
        final = torch.topk(theta.detach(), k).indices
        report.fit_sel_init = _fit_sel(loaded, texts, lang, initial, base, site, options.lam)
        report.fit_sel_final = _fit_sel(loaded, texts, lang, final, base, site, options.lam)
        report.forward_passes += 2 * len(languages)
        better = report.fit_sel_final >= report.fit_sel_init
        kept = final if better else initial
        report.kept = "optimised" if better else "initial"
        report.changed = len(set(kept.tolist()) - set(initial.tolist()))
        neurons[lang] = to_layer_indices(kept, d_ff)
        report.seconds = time.perf_counter() - started
        reports[lang] = report
    meta = {
        "identified_with": "optimise",
        "optimise": {
            "steps": options.steps, "lr": options.lr, "texts_per_step": options.texts_per_step,
            "temperature": list(options.temperature), "lam": options.lam, "init": init.method,
            "seed": options.seed,
        },
    }
    result = NeuronSet(neurons, site, n_layers, d_ff, meta)
    if validation is not None:
        measured = {lang: ConstructionReport(budget=r.budget) for lang, r in reports.items()}
        _measure(loaded, result, validation, batching, measured)
        for lang, m in measured.items():
            reports[lang].measured_delta = m.measured_delta
            reports[lang].measured_sel = m.measured_sel
            reports[lang].forward_passes += m.forward_passes
    return result, reports
