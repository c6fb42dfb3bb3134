"""``optimise``: the reference optimum of selectivity at a budget, by mask optimisation
(docs/method.md "Reference optimum and the selectivity frontier").

For each language L: one logit θ_n per neuron, initialised from a method's scores S_L
(standardised); the forward pass masks the hard top-k of θ (exactly k neurons zeroed, the same
masking the evaluation uses) and the backward pass uses a straight-through sigmoid centred at
the top-k threshold, σ((θ − t)/τ), with the temperature τ annealed geometrically. The loss is
−Sel on the fit texts in bits per byte, −bpb_L + λ · mean_{E≠L} bpb_E (the unmasked values are
constants), on a seeded minibatch of texts per language and step. θ can be warm-started from a
set of the run (the best searched one: the first hard mask is that set), and with a patience
the hard mask is checked on the validation texts every few steps and the optimisation stops
when it no longer rises. At the end the initial and the optimised top-k, and every other set of
the run at the same size and site, are measured on all fit texts and the best is kept (never
the evaluation texts): Sel* on the fit texts is at least every one of those sets'. Its Δ and
Sel on the validation texts are then reported.

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

    steps: int = 100
    """Most optimisation steps per language (with ``patience``, it usually stops earlier)."""
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
    start: str | None = "best"
    """Warm start: θ is raised on a set of the run so that the first hard mask is that set:
    ``best`` (per language, the run's set with the highest validated Sel among the verified
    and searched ones) or a set's name (``crane``, ``actmean+search``); None: the scores'
    top-k (also when the run has no verified or searched set)."""
    patience: int = 3
    """Stop when validated Sel of the hard mask has not risen for this many checks (one every
    ``check_every`` steps; ``steps`` is then the most); 0: run all ``steps``."""
    check_every: int = 5

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
            (self.patience >= 0, f"optimise patience must be 0 or more, got {self.patience}"),
            (self.check_every >= 1, f"optimise check_every must be ≥ 1, got {self.check_every}"),
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
    """Which set was kept, the best on all fit texts: ``optimised``, ``initial`` or a rival
    set of the run (``rival:<name>``)."""
    start: str = ""
    """The set the first hard mask was (``top-k`` of the scores, or a set of the run)."""
    validation_checks: list[float] = field(default_factory=list)
    """Validated Sel of the hard mask at each check (with ``patience``)."""
    fit_sel_rivals: dict[str, float] = field(default_factory=dict)
    """Sel on all fit texts of every set of the run at this budget (the kept set's fit Sel is
    at least each of those at the optimum's site)."""
    fit_sel_kept: float = float("nan")
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
    starts: dict[str, tuple[str, list[int]]] | None = None,
    rivals: dict[str, NeuronSet] | None = None,
) -> tuple[NeuronSet, dict[str, OptimiseReport]]:
    """Every language's reference set at ``budget`` (see the module docstring): exactly k
    neurons per language, with a report per language; measured on ``validation`` when given.

    ``starts``: language → (label, flat members) of a warm start (the first hard mask);
    ``rivals``: the run's other sets, each measured on all fit texts: the kept set is the best
    there among the optimised, the initial and the rivals at the optimum's site, so Sel* on
    the fit texts is at least theirs. With ``options.patience`` the hard mask is checked on
    ``validation`` every ``check_every`` steps and the best checked one is the optimised."""
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
    checks: dict[str, LanguageTexts] = {}
    check_base: dict[str, float] = {}
    if options.patience and validation is not None:
        checks = {e: LanguageTexts(loaded, validation.texts[e], batching) for e in languages}
        with torch.no_grad():
            check_base = {e: float(bits_per_byte(loaded, t)) for e, t in checks.items()}
    rivals = rivals or {}
    neurons: dict[str, dict[int, list[int]]] = {}
    reports: dict[str, OptimiseReport] = {}
    for lang in languages:
        started = time.perf_counter()
        k = budget.for_language(lang, n_layers * d_ff)
        report = OptimiseReport(budget=k, init=init.method, start="top-k")
        theta0 = _standardised(init, lang).float()
        warm = (starts or {}).get(lang)
        if warm is not None:  # the first hard mask is the warm-start set
            label, members = warm
            index = torch.tensor(sorted(members), dtype=torch.long)
            theta0[index] = theta0.max() + 1.0 + theta0[index] - theta0[index].min()
            report.start = label
        initial = torch.topk(theta0, k).indices
        theta = theta0.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([theta], lr=options.lr)
        others = [e for e in languages if e != lang]
        weight = {lang: -1.0, **{e: options.lam / len(others) for e in others}}
        best_checked: tuple[float, torch.Tensor] | None = None
        waited = 0
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
            report.steps = step + 1
            if checks and (step + 1) % options.check_every == 0:
                current = torch.topk(theta.detach(), k).indices
                sel = _fit_sel(loaded, checks, lang, current, check_base, site, options.lam)
                report.validation_checks.append(sel)
                report.forward_passes += len(languages)
                if best_checked is None or sel > best_checked[0]:
                    best_checked, waited = (sel, current), 0
                else:
                    waited += 1
                    if waited >= options.patience:
                        break
        final = torch.topk(theta.detach(), k).indices
        if best_checked is not None:  # the hard mask that validated best
            final = best_checked[1]
        report.fit_sel_init = _fit_sel(loaded, texts, lang, initial, base, site, options.lam)
        report.fit_sel_final = _fit_sel(loaded, texts, lang, final, base, site, options.lam)
        report.forward_passes += 2 * len(languages)
        candidates = [("optimised", final, report.fit_sel_final),
                      ("initial", initial, report.fit_sel_init)]
        for name, rival in rivals.items():
            if lang not in rival.languages or rival.size(lang) != k:
                continue
            flat = torch.tensor(sorted(rival.flat(lang, d_ff)), dtype=torch.long)
            sel = _fit_sel(loaded, texts, lang, flat, base, rival.site, options.lam)
            report.fit_sel_rivals[name] = sel
            report.forward_passes += len(languages)
            if rival.site == site:
                candidates.append((f"rival:{name}", flat, sel))
        kept_name, kept, report.fit_sel_kept = max(candidates, key=lambda c: c[2])
        report.kept = kept_name
        report.changed = len(set(kept.tolist()) - set(initial.tolist()))
        neurons[lang] = to_layer_indices(kept, d_ff)
        report.seconds = time.perf_counter() - started
        reports[lang] = report
    meta = {
        "identified_with": "optimise",
        "optimise": {
            "steps": options.steps, "lr": options.lr, "texts_per_step": options.texts_per_step,
            "temperature": list(options.temperature), "lam": options.lam, "init": init.method,
            "seed": options.seed, "start": options.start, "patience": options.patience,
            "check_every": options.check_every,
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
