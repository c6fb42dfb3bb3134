"""The options and results of identification (every choice is recorded in the outputs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crane.collect import RelevanceOptions
from crane.data.corpus import Corpus
from crane.methods import registered_methods
from crane.neurons import NeuronSet
from crane.optimise import OptimiseOptions
from crane.scoring import Budget
from crane.stats import Stats
from crane.verify import LanguageReport, VerifyOptions

if TYPE_CHECKING:
    from crane.construction import ConstructionOptions
    from crane.search import SearchOptions


@dataclass(frozen=True)
class IdentifyOptions:
    """Every choice of an identification run (all recorded in its outputs)."""

    relevance: RelevanceOptions = field(
        default_factory=lambda: RelevanceOptions(target="logprob")
    )
    """Relevance collection; the explained quantity defaults to the gold log-probability
    (selection v2: scores in bits per byte of damage)."""
    score: str = "contrast"
    """Default chosen on validation texts by the selectivity grid (bench/SELECTIVITY.md)."""
    quantile: float = 0.95
    profile: str = "signed"
    normalize: str = "global"
    lam: float = 1.0
    """λ of the v2 scores (``contrast``, ``effect``, ``fisher``): weight of the other languages'
    exposure (``fisher``: their second-order damage)."""
    contrast_over: str = "max"
    """Which other languages the v2 scores subtract: the largest (``max``) or their ``mean``."""
    z: float = 2.0
    """``effect``: a neuron is eligible when its expected damage exceeds z standard errors."""
    budget: Budget = field(default_factory=lambda: Budget(fraction=0.005))
    verify: bool = True
    verify_fraction: float = 0.2
    verify_min_texts: int = 4
    verify_max_texts: int = 24
    verification: VerifyOptions = field(default_factory=VerifyOptions)
    verify_mode: str = "search"
    """How candidates are confirmed: ``groups`` (v1 group tests), ``rounds`` (v2 causal
    construction: masked re-estimation, exactly k, measured Δ) or ``search`` (v3: the
    construction's set, then passes of measured swaps until validated Sel stops rising)."""
    rounds: int = 1
    """Rounds of the construction (``rounds``, and the start of ``search``; 1: the top-k)."""
    ig_steps: int = 2
    """Points of the integrated-gradient shares (``rounds``: 0 means no shares, no swaps)."""
    ig_texts: int = 8
    """Texts per language the shares are estimated on: validation texts in ``rounds``, a new
    slice of the fit texts in every pass of ``search``."""
    search_passes: int = 8
    """Most estimation passes per language of the ``search``."""
    search_pool: float = 0.0
    """Candidates of a search pass: 0, every neuron outside the set; above 0, the next
    ``search_pool × k`` neurons of the method's ranking."""
    search_swaps: float = 0.25
    """The search's first trial swaps this fraction of k; a rejected trial halves it."""
    search_patience: int = 1
    """Passes in a row that end with a failed single swap before the search stops."""
    search_candidates: str = "gradient"
    """How a search pass picks its candidates: ``gradient``, ``ranking`` or ``masked``
    (:class:`crane.search.SearchOptions`)."""
    swaps: bool = True
    """The construction swaps out members with a share ≤ 0 when validated Sel does not fall."""
    optimise: OptimiseOptions = field(default_factory=OptimiseOptions)
    """How the ``optimise`` method searches its mask."""
    max_texts: int | None = None
    """Most texts per language (the first ones)."""
    token_budget: int | None = None
    """Most tokens per language (``crane identify --max-tokens``); not ``batch_tokens``, the
    padded tokens of one batch."""

    def construction(self) -> ConstructionOptions:
        """The options of the ``rounds`` construction (causal verification v2)."""
        from crane.construction import ConstructionOptions

        return ConstructionOptions(
            rounds=self.rounds, ig_steps=self.ig_steps, ig_texts=self.ig_texts, swaps=self.swaps
        ).validate()

    def search(self) -> SearchOptions:
        """The options of the ``search`` (selection v3)."""
        from crane.search import SearchOptions

        return SearchOptions(
            passes=self.search_passes, pool=self.search_pool, swap_fraction=self.search_swaps,
            ig_steps=self.ig_steps, ig_texts=self.ig_texts, patience=self.search_patience,
            candidates=self.search_candidates,
        ).validate()

    def score_options(self) -> dict[str, object]:
        """The options of the relevance methods' scorer (``crane_scores``)."""
        return {
            "score": self.score,
            "quantile": self.quantile,
            "profile": self.profile,
            "normalize": self.normalize,
            "lam": self.lam,
            "contrast_over": self.contrast_over,
            "z": self.z,
        }

    @property
    def method_name(self) -> str:
        """The registered method of this relevance method (``crane`` for AttnLRP,
        ``gradxact`` for plain gradient × activation)."""
        return next(
            spec.name
            for spec in registered_methods()
            if spec.relevance == self.relevance.method
        )


@dataclass
class IdentifyResult:
    neurons: NeuronSet
    stats: Stats
    reports: dict[str, LanguageReport]
    seconds: float


@dataclass
class MethodsResult:
    """Neuron sets of several methods from one run, with verification reports and timings."""

    sets: dict[str, NeuronSet]
    reports: dict[str, dict[str, Any]]
    """Method → language → its verification report (group tests or construction)."""
    seconds: dict[str, float]
    stats: dict[str, Stats] = field(default_factory=dict)
    """Statistics each method was scored on (activation methods share one object)."""
    fit: Corpus | None = None
    """The texts every method was fitted on (methods built with the model need them)."""
    validation: Corpus | None = None
