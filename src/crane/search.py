"""Selection v3: the causal set search (docs/method.md "Selection v3").

The damage of zeroing a set is a property of the set (second order, superadditive), so the
step that measures the set decides how selective it is. For each language L the search starts
from a method's set (its top-k, or the rounds construction) and repeats passes:

1. **Estimate** on a slice of the *fit* texts (a new slice each pass): each member's share of
   the set's effect by integrated gradients along the mask scale α ∈ (0, 1] (midpoint rule,
   ``ig_steps`` points; own-minus-others, bits per byte), and for a pool of candidates (every
   neuron outside the set by default; with ``pool`` > 0, the next ``pool × k`` neurons of the
   method's ranking) the gain of adding each:
   minus the gradient of Sel with respect to its mask scale at the current set, all candidates
   from one backward pass per language.
2. **Trial**: swap the m worst members for the m best candidates and measure Sel on the
   *validation* texts. The trial is accepted when Sel rises (the next pass estimates again at
   the new set); otherwise m is halved and the same estimate is tried again.
3. **Stop** when a trial at m = 1 gains nothing, when no candidate is left, or at the pass
   budget. The set always holds exactly k neurons; the evaluation texts are never read.

Every trial is checkpointed (``state_dir``): a rerun with the same inputs resumes where the
last one stopped, and a finished search is read back. Each language's :class:`SearchReport`
records the passes, the trials (swaps, Sel on the pass's fit texts and on validation), the
backward and forward passes and the seconds.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from crane.collect import RelevanceOptions
from crane.construction import next_neurons
from crane.data.corpus import Corpus
from crane.errors import ConfigError
from crane.faults import kill_point
from crane.io import atomic_write_text, parse_json
from crane.manifest import inputs_key
from crane.masked_loss import LanguageTexts, bits_per_byte, scaled_site
from crane.models.loading import LoadedModel
from crane.neurons import NeuronSet
from crane.progress import NullProgress, Progress
from crane.scoring.base import Scores, to_layer_indices

CANDIDATES = ("gradient", "ranking", "masked")


@dataclass(frozen=True)
class SearchOptions:
    """How the set search runs (recorded in every searched set's provenance)."""

    passes: int = 8
    """Most estimation passes per language (each is followed by one or more validated
    trials); 0 keeps the start set."""
    pool: float = 0.0
    """Candidates of a pass: 0, every neuron outside the set (one backward pass scores them
    all); above 0, the next ``pool × k`` neurons of the method's ranking outside the set."""
    swap_fraction: float = 0.25
    """The first trial swaps ⌈swap_fraction · k⌉ members; a rejected trial halves it."""
    ig_steps: int = 2
    """Points of the members' integrated-gradient shares (0: each member's marginal value at
    the set instead, minus the gradient of Sel with respect to its mask scale, from the same
    backward pass as the candidates' gains)."""
    ig_texts: int = 8
    """Fit texts per language in one pass's estimate (the next slice of the fit texts)."""
    candidates: str = "gradient"
    """How the pool's candidates are chosen: ``gradient`` (the next of the method's ranking,
    ordered by their Sel gain at the current set), ``ranking`` (the method's own order) or
    ``masked`` (the method's scores collected again on the pass's fit texts with the set
    masked: neurons that compensate show up)."""
    patience: int = 1
    """Passes in a row whose trials all fail (down to one swap) before the search stops; after
    a failed pass the next estimates again on the next slice of fit texts."""

    def validate(self) -> SearchOptions:
        problems = [
            (self.passes >= 0, f"search passes must be 0 or more, got {self.passes}"),
            (
                math.isfinite(self.pool) and self.pool >= 0,
                f"search pool must be 0 (every neuron) or a positive multiple of k, got "
                f"{self.pool}",
            ),
            (
                math.isfinite(self.swap_fraction) and 0 < self.swap_fraction <= 1,
                f"search swap fraction must be in (0, 1], got {self.swap_fraction}",
            ),
            (self.ig_steps >= 0, f"search ig_steps must be 0 or more, got {self.ig_steps}"),
            (self.ig_texts >= 1, f"search ig_texts must be at least 1, got {self.ig_texts}"),
            (self.patience >= 1, f"search patience must be at least 1, got {self.patience}"),
            (
                self.candidates in CANDIDATES,
                f"search candidates must be one of {', '.join(CANDIDATES)}, got "
                f"{self.candidates!r}",
            ),
        ]
        for ok, message in problems:
            if not ok:
                raise ConfigError(f"{message}; see docs/identify.md (the set search).")
        return self


@dataclass
class SearchReport:
    """What the search did for one language (``verification`` in identify-*.json and
    study.json)."""

    budget: int
    start: str = ""
    """Where the search started: ``top-k`` or ``rounds:R`` (the construction's set)."""
    start_sel: float = float("nan")
    """Sel of the start set on the validation texts (bits per byte)."""
    measured_sel: float = float("nan")
    """Sel of the final set on the validation texts."""
    measured_delta: dict[str, float] = field(default_factory=dict)
    """Δ bits per byte of the final set per language on the validation texts."""
    passes: int = 0
    """Estimation passes spent."""
    trials: int = 0
    accepted: int = 0
    """Trials accepted (Sel on validation rose)."""
    swaps_kept: int = 0
    """Members swapped out by accepted trials (over all passes)."""
    changed: int = 0
    """Members of the final set that were not in the start set."""
    stopped: str = ""
    """Why the search stopped: ``converged`` (m = 1 gained nothing), ``pass budget`` or
    ``no candidates``."""
    backward_passes: int = 0
    """Backward passes of the estimates (over fit texts; one per language and point)."""
    forward_passes: int = 0
    """No-grad forward passes (unmasked fit slices and validation trials), per language."""
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    """One entry per trial: pass, swaps m, Sel of the current set on the pass's fit texts,
    Sel of the trial on validation, accepted."""


def _sel(delta: dict[str, float], lang: str) -> float:
    others = [v for e, v in delta.items() if e != lang]
    return delta[lang] - sum(others) / len(others)


class _Texts:
    """Fit and validation texts of every language, tokenized once, with the unmasked
    validation bits per byte."""

    def __init__(
        self,
        loaded: LoadedModel,
        fit: Corpus,
        validation: Corpus,
        batching: RelevanceOptions,
    ) -> None:
        self.languages = [e for e in fit.languages if e in validation.languages]
        self.fit_texts = {e: list(fit.texts[e]) for e in self.languages}
        self.fit = {e: LanguageTexts(loaded, fit.texts[e], batching) for e in self.languages}
        self.validation = {
            e: LanguageTexts(loaded, validation.texts[e], batching) for e in self.languages
        }
        for e in self.languages:
            if not self.fit[e].texts or not self.validation[e].texts:
                raise ConfigError(
                    f"The set search needs fit and validation texts with something to predict "
                    f"in '{e}'; give longer or more texts."
                )
        with torch.no_grad():
            self.base = {
                e: float(bits_per_byte(loaded, t)) for e, t in self.validation.items()
            }

    def fit_slice(self, lang: str, pass_index: int, size: int) -> list[int]:
        """The pass's slice of ``lang``'s fit texts (cycling through them)."""
        texts = self.fit[lang].texts
        size = min(size, len(texts))
        start = (pass_index * size) % len(texts)
        return [texts[(start + i) % len(texts)] for i in range(size)]


Rescore = Callable[[str, list[int], dict[str, list[str]]], torch.Tensor]
"""``rescore(lang, members, texts)``: the method's ranking for ``lang`` (flat indices, best
first) with ``members`` masked, from its statistics collected again on ``texts`` (language →
fit texts of the pass)."""


def _zeroed(loaded: LoadedModel, members: list[int]) -> torch.Tensor:
    factor = torch.ones(loaded.shape.n_layers * loaded.shape.d_ff)
    factor[torch.tensor(members, dtype=torch.long)] = 0.0
    return factor


def validation_delta(
    loaded: LoadedModel, texts: _Texts, members: list[int], site: str
) -> dict[str, float]:
    """Δ bits per byte per language on the validation texts when ``members`` are zeroed."""
    keep = _zeroed(loaded, members).view(loaded.shape.n_layers, loaded.shape.d_ff)
    with torch.no_grad(), scaled_site(loaded, site, keep):
        return {
            e: float(bits_per_byte(loaded, t)) - texts.base[e]
            for e, t in texts.validation.items()
        }


def _estimate(
    loaded: LoadedModel,
    lang: str,
    members: list[int],
    pool: list[int],
    texts: _Texts,
    chosen: dict[str, list[int]],
    site: str,
    steps: int,
    report: SearchReport,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(own-minus-others share of each member ``[|members|]``, Sel gain of adding each pool
    candidate ``[|pool|]``, Sel of the set on the pass's fit texts), all in bits per byte."""
    n_layers, d_ff = loaded.shape.n_layers, loaded.shape.d_ff
    index = torch.tensor(members, dtype=torch.long)
    candidates = torch.tensor(pool, dtype=torch.long)
    shares: dict[str, torch.Tensor] = {}
    gradients: dict[str, torch.Tensor] = {}
    delta: dict[str, float] = {}
    for e, t in texts.fit.items():
        share = torch.zeros(len(members), dtype=torch.float64)
        for j in range(steps):
            alpha = torch.full((len(members),), (j + 0.5) / steps, requires_grad=True)
            factor = torch.ones(n_layers * d_ff).index_put((index,), 1.0 - alpha)
            with scaled_site(loaded, site, factor.view(n_layers, d_ff)):
                bpb = bits_per_byte(loaded, t, chosen[e])
            (grad,) = torch.autograd.grad(bpb, [alpha])
            share += grad.double() / steps
        # at the set: members zeroed, candidates at scale 1, both scales differentiable
        kept = torch.zeros(len(members), requires_grad=True)
        scale = torch.ones(len(pool), requires_grad=True)
        factor = torch.ones(n_layers * d_ff).index_put((index,), kept)
        factor = factor.index_put((candidates,), scale)
        with scaled_site(loaded, site, factor.view(n_layers, d_ff)):
            bpb = bits_per_byte(loaded, t, chosen[e])
        member_grad, grad = torch.autograd.grad(bpb, [kept, scale])
        # steps = 0: a member's value is the first-order loss of restoring it at the set
        shares[e] = share if steps else -member_grad.double()
        gradients[e] = grad.double()
        with torch.no_grad():
            delta[e] = float(bpb.detach()) - float(bits_per_byte(loaded, t, chosen[e]))
        report.backward_passes += steps + 1
        report.forward_passes += 1
    others = [e for e in shares if e != lang]
    own = shares[lang] - torch.stack([shares[e] for e in others]).mean(0)
    # zeroing a candidate changes bpb_E by about −∂bpb_E/∂scale: its gain of Sel
    gain = -(gradients[lang] - torch.stack([gradients[e] for e in others]).mean(0))
    return own, gain, _sel(delta, lang)


def _state_key(
    loaded: LoadedModel,
    lang: str,
    start: list[int],
    ranking: torch.Tensor,
    options: SearchOptions,
    site: str,
    fit: Corpus,
    validation: Corpus,
    method: str,
) -> str:
    k = len(start)
    # the ranking the search can ever read
    reach = k + math.ceil(options.pool * k) if options.pool else len(ranking)
    return inputs_key(
        {
            "model": loaded.identity.key(),
            "method": method,
            "lang": lang,
            "site": site,
            "start": sorted(start),
            "ranking": ranking[:reach].tolist(),
            "options": asdict(options),
            "fit": [fit.provenance.get("sha256"), {e: len(fit[e]) for e in fit.languages}],
            "validation": validation.provenance.get("sha256"),
        }
    )


def _load_state(path: Path | None, key: str) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    try:
        state = parse_json(path.read_text(encoding="utf-8"))
        if state.get("key") != key:
            return None
        SearchReport(**state["report"])  # readable
        return state
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # unreadable: search again


def search_language(
    loaded: LoadedModel,
    lang: str,
    start: list[int],
    ranking: torch.Tensor,
    texts: _Texts,
    *,
    site: str,
    options: SearchOptions,
    start_label: str,
    state: Path | None = None,
    key: str = "",
    progress: Progress | None = None,
    rescore: Rescore | None = None,
) -> tuple[list[int], SearchReport]:
    """Search ``lang``'s set from ``start`` (flat indices, exactly k) with candidates from
    ``ranking`` (flat indices, best first; with ``candidates = "masked"``, from ``rescore``
    at the current set); returns the final members and the report."""
    progress = progress or NullProgress()
    k = len(start)
    saved = _load_state(state, key)
    estimate: tuple[torch.Tensor, torch.Tensor, float, list[int]] | None = None
    if saved is not None:
        members = [int(i) for i in saved["members"]]
        m, m_last, failed = int(saved["m"]), int(saved["m_last"]), int(saved["failed"])
        report = SearchReport(**saved["report"])
        if saved.get("done"):
            return members, report
        if saved.get("estimate") is not None:  # stopped between an estimate and its trials
            own, gain, fit_sel, pool = saved["estimate"]
            estimate = (
                torch.tensor(own, dtype=torch.float64), torch.tensor(gain, dtype=torch.float64),
                float(fit_sel), [int(i) for i in pool],
            )
    else:
        members, m = list(start), max(1, math.ceil(options.swap_fraction * k))
        m_last, failed = m, 0
        report = SearchReport(budget=k, start=start_label)
        delta = validation_delta(loaded, texts, members, site)
        report.start_sel = report.measured_sel = _sel(delta, lang)
        report.measured_delta = delta
        report.forward_passes += len(texts.languages)
    n_neurons = loaded.shape.n_layers * loaded.shape.d_ff
    pool_size = math.ceil(options.pool * k) if options.pool else n_neurons
    if not options.pool:  # every neuron: the method's ranking first, then the rest
        rest = torch.ones(n_neurons, dtype=torch.bool)
        rest[ranking] = False
        ranking = torch.cat([ranking, torch.nonzero(rest).flatten()])
    started = time.perf_counter() - report.seconds

    def save(done: bool) -> None:
        report.seconds = time.perf_counter() - started
        if state is not None:
            state.parent.mkdir(parents=True, exist_ok=True)
            payload = {
                "key": key, "members": members, "m": m, "m_last": m_last, "failed": failed,
                "done": done, "report": asdict(report),
                "estimate": None if estimate is None else [
                    estimate[0].tolist(), estimate[1].tolist(), estimate[2], estimate[3]
                ],
            }
            atomic_write_text(state, json.dumps(payload, default=float) + "\n")

    while True:
        if estimate is None:
            if report.passes >= options.passes:
                report.stopped = "pass budget"
                break
            progress.message(
                f"search: {lang}, pass {report.passes + 1}/{options.passes}, "
                f"validated Sel {report.measured_sel:+.3f}"
            )
            chosen = {
                e: texts.fit_slice(e, report.passes, options.ig_texts) for e in texts.languages
            }
            order = ranking
            if options.candidates == "masked":
                if rescore is None:
                    raise ConfigError(
                        "search candidates = masked needs the method's statistics collected "
                        "under the mask; use gradient or ranking here."
                    )
                slices = {e: [texts.fit_texts[e][i] for i in chosen[e]] for e in chosen}
                order = rescore(lang, members, slices)
            pool = next_neurons(order, set(members), pool_size)
            if not pool:
                report.stopped = "no candidates"
                break
            own, gain, fit_sel = _estimate(
                loaded, lang, members, pool, texts, chosen, site, options.ig_steps, report
            )
            report.passes += 1
            estimate = (own, gain, fit_sel, pool)
            save(done=False)
        own, gain, fit_sel, pool = estimate
        swaps = min(m, len(pool), k)
        worst = {members[i] for i in torch.argsort(own, stable=True)[:swaps].tolist()}
        if options.candidates == "gradient":
            best = [pool[i] for i in torch.argsort(-gain, stable=True)[:swaps].tolist()]
        else:  # the method's own order (unmasked, or collected again under the mask)
            best = pool[:swaps]
        trial = [n for n in members if n not in worst] + best
        delta = validation_delta(loaded, texts, trial, site)
        sel = _sel(delta, lang)
        report.trials += 1
        report.forward_passes += len(texts.languages)
        accepted = sel > report.measured_sel
        report.history.append(
            {"pass": report.passes, "swaps": swaps, "fit_sel": fit_sel,
             "validation_sel": sel, "accepted": accepted}
        )
        if accepted:
            members, failed, m_last = trial, 0, swaps
            report.accepted += 1
            report.swaps_kept += swaps
            report.measured_sel, report.measured_delta = sel, delta
            estimate = None  # estimate again at the new set
        elif swaps <= 1:
            failed += 1
            if failed >= options.patience:
                report.stopped = "converged"
                break
            estimate, m = None, m_last  # a fresh estimate on the next slice of fit texts
        else:
            m = max(1, swaps // 2)
        report.changed = len(set(members) - set(start))
        save(done=False)
        kill_point(f"search:{lang}")
    report.changed = len(set(members) - set(start))
    save(done=True)
    return members, report


def search_sets(
    loaded: LoadedModel,
    starts: dict[str, list[int]],
    rankings: dict[str, torch.Tensor],
    fit: Corpus,
    validation: Corpus,
    *,
    site: str,
    batching: RelevanceOptions,
    options: SearchOptions | None = None,
    start_label: str = "top-k",
    method: str = "",
    state_dir: str | Path | None = None,
    progress: Progress | None = None,
    rescore: Rescore | None = None,
) -> tuple[dict[str, list[int]], dict[str, SearchReport]]:
    """Every language's searched set (see the module docstring): language → flat members and
    language → report. ``starts`` hold exactly k neurons per language; ``rankings`` the
    method's candidates, best first; checkpoints go to ``state_dir`` (``None``: none)."""
    options = (options or SearchOptions()).validate()
    texts = _Texts(loaded, fit, validation, batching)
    if len(texts.languages) < 2:
        raise ConfigError("The set search compares languages: give at least two (e.g. en,zh).")
    folder = Path(state_dir) if state_dir is not None else None
    members: dict[str, list[int]] = {}
    reports: dict[str, SearchReport] = {}
    for lang in starts:
        key = _state_key(
            loaded, lang, starts[lang], rankings[lang], options, site, fit, validation, method
        )
        state = folder / f"{method or 'set'}-{lang}.json" if folder is not None else None
        members[lang], reports[lang] = search_language(
            loaded, lang, starts[lang], rankings[lang], texts, site=site, options=options,
            start_label=start_label, state=state, key=key, progress=progress,
            rescore=rescore,
        )
    return members, reports


def search_neuron_set(
    loaded: LoadedModel,
    start: NeuronSet,
    scores: Scores,
    fit: Corpus,
    validation: Corpus,
    *,
    batching: RelevanceOptions,
    options: SearchOptions | None = None,
    start_label: str = "top-k",
    method: str | None = None,
    state_dir: str | Path | None = None,
    progress: Progress | None = None,
    rescore: Rescore | None = None,
) -> tuple[NeuronSet, dict[str, SearchReport]]:
    """:func:`search_sets` on a :class:`NeuronSet` (the start) with candidates from
    ``scores``' rankings; the result keeps the start's site and shape, and its ``meta``
    records the search options."""
    options = (options or SearchOptions()).validate()
    d_ff = loaded.shape.d_ff
    starts = {lang: sorted(start.flat(lang, d_ff)) for lang in start.languages}
    rankings = {lang: scores.ranking(lang) for lang in starts}
    members, reports = search_sets(
        loaded, starts, rankings, fit, validation, site=start.site, batching=batching,
        options=options, start_label=start_label, method=method or scores.method or "set",
        state_dir=state_dir, progress=progress, rescore=rescore,
    )
    neurons = {
        lang: to_layer_indices(torch.tensor(sorted(chosen), dtype=torch.long), d_ff)
        for lang, chosen in members.items()
    }
    meta = {**start.meta, "search": {**asdict(options), "start": start_label}}
    return NeuronSet(neurons, start.site, start.n_layers, start.d_ff, meta), reports
