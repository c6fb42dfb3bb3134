"""The method registry: one :class:`MethodSpec` per identification method.

A method is defined here and nowhere else: the statistics it needs (relevance from one
forward+backward pass, activations from one forward pass, or none for the layer-matched random
control), its scorer, its own-size rule (LAPE's and PLND's sets when no budget is given), the
site its sets live at, and whether causal verification applies. Scorers are named as
``"module:function"`` strings and imported on first use, so listing or validating methods (the
CLI does) costs no heavy import.

Adding a method is one module with a scorer plus one :func:`register_method` call
(docs/contributing.md has a worked example)::

    register_method(MethodSpec("mine", "activation", "my_pkg.mine:score", "what it does"))
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crane.errors import ConfigError

if TYPE_CHECKING:
    from crane.neurons import NeuronSet
    from crane.scoring.base import Scores
    from crane.scoring.budget import Budget
    from crane.stats import Stats

STATISTICS = ("relevance", "activation", "control")
"""What a method is computed from: relevance statistics (one forward+backward pass per
relevance method), the shared activation pass, or nothing (a control copies another set)."""

def _resolve(ref: str | Callable[..., Any]) -> Callable[..., Any]:
    """A callable, or ``"module:function"`` imported now."""
    if callable(ref):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class MethodSpec:
    """One identification method.

    Attributes:
        name: the name users type (``--method NAME``, ``methods = [...]``).
        statistics: ``relevance``, ``activation`` or ``control`` (see :data:`STATISTICS`).
        scorer: ``(stats, **options) -> Scores`` or its ``"module:function"`` name; ``None``
            for a control.
        description: one line for ``crane methods``.
        relevance: the relevance method of a ``relevance`` method (``attnlrp``, ``gradxact``).
        own_set: ``(stats, *, site, **options) -> NeuronSet``: the method's own set size when no
            budget is given (LAPE, PLND); ``None``: the method needs a budget.
        site: the site its sets live at when it differs from the run's (LAPE counts act > 0 at
            ``act``); ``None``: the run's site.
        verifiable: whether causal verification (group tests on held-out texts) applies.
        own_set_options: the scorer options the own-size rule accepts.
        builder: ``(loaded, fit, validation, init_scores, *, budget, site, batching,
            options, progress) -> (NeuronSet, reports)``: a method whose sets are built with
            the model on the fit texts (``optimise``) rather than read off its scores; its
            scorer then only gives the initial scores. ``None`` for every scored method.
    """

    name: str
    statistics: str
    scorer: str | Callable[..., Any] | None
    description: str
    relevance: str | None = None
    own_set: str | Callable[..., Any] | None = None
    site: str | None = None
    verifiable: bool = False
    own_set_options: tuple[str, ...] = ()
    builder: str | Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if self.statistics not in STATISTICS:
            raise ConfigError(
                f"Method {self.name!r} declares statistics {self.statistics!r}; use one of "
                f"{', '.join(STATISTICS)}."
            )
        if (self.statistics == "relevance") != (self.relevance is not None):
            raise ConfigError(
                f"Method {self.name!r}: a relevance method names its relevance method "
                "(relevance='attnlrp' or 'gradxact'), and only a relevance method does."
            )
        if (self.scorer is None) != (self.statistics == "control"):
            raise ConfigError(f"Method {self.name!r}: every method but a control has a scorer.")

    @property
    def has_own_size(self) -> bool:
        return self.own_set is not None

    def build(self, *args: Any, **kwargs: Any) -> Any:
        """Build the sets with the model (methods with a ``builder`` only)."""
        if self.builder is None:
            raise ConfigError(f"{self.name!r} reads its sets off its scores; it has no builder.")
        return _resolve(self.builder)(*args, **kwargs)

    def site_for(self, site: str) -> str:
        """The site of this method's sets in a run at ``site``."""
        return self.site or site

    def score(self, stats: Stats, **options: Any) -> Scores:
        """Per-language scores from ``stats`` (higher = more specific)."""
        if self.scorer is None:
            raise ConfigError(f"{self.name!r} is a control: it copies a set, it has no scores.")
        return _resolve(self.scorer)(stats, **options)

    def select(
        self,
        stats: Stats,
        *,
        budget: Budget | None,
        site: str,
        options: dict[str, Any] | None = None,
    ) -> NeuronSet:
        """The method's set from ``stats``: the top ``budget`` per language, or its own size
        when ``budget`` is ``None`` (0.5% of all neurons for methods without one)."""
        from crane.scoring.base import select_top
        from crane.scoring.budget import DEFAULT_FRACTION, Budget

        if self.builder is not None:
            raise ConfigError(
                f"{self.name!r} builds its sets with the model (crane.identification."
                "identify_methods), not from statistics alone; run it as a method of the run."
            )
        options = dict(options or {})
        if budget is None and self.own_set is not None:
            own = {k: v for k, v in options.items() if k in self.own_set_options}
            return _resolve(self.own_set)(stats, site=self.site_for(site), **own)
        chosen = budget if budget is not None else Budget(fraction=DEFAULT_FRACTION)
        scores = self.score(stats, **options)
        return select_top(
            scores, chosen, site=self.site_for(site), meta={"identified_with": self.name}
        )


_REGISTRY: dict[str, MethodSpec] = {}
PLUGIN_GROUP = "crane.methods"
"""Entry-point group of installed packages that register methods (each entry point names a
module or function; loading it registers its specs), so ``crane identify --method NAME`` and
``crane run`` find them too."""
_plugins_loaded = False


def load_plugins() -> None:
    """Import every installed ``crane.methods`` entry point once (lm-eval-style plug-ins); a
    plug-in that fails to load is a clear error naming it."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for point in entry_points(group=PLUGIN_GROUP):
        try:
            loaded = point.load()
        except Exception as exc:
            raise ConfigError(
                f"The method plug-in {point.name!r} ({point.value}) failed to load: {exc}; fix "
                "or uninstall the package that provides it."
            ) from None
        if callable(loaded) and not isinstance(loaded, type):
            loaded()


def register_method(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Make ``spec`` selectable by name. A name that is taken is an error unless ``replace``
    (a silent overwrite would change what a name means behind a user's back)."""
    name = spec.name.strip().lower()
    if not name or name == "all" or "," in name:
        raise ConfigError(f"{spec.name!r} cannot name a method; use a plain word such as 'mine'.")
    if name in _REGISTRY and not replace:
        raise ConfigError(
            f"A method named {name!r} is already registered; choose another name, or pass "
            "replace=True to replace it on purpose."
        )
    _REGISTRY[name] = spec
    return spec


def unregister_method(name: str) -> None:
    """Remove a registered method (for tests and plug-ins that clean up after themselves)."""
    _REGISTRY.pop(name, None)


def get_method(name: str) -> MethodSpec:
    """The spec registered as ``name``; an unknown name is a clear error listing the others."""
    load_plugins()
    try:
        return _REGISTRY[name.strip().lower()]
    except KeyError:
        raise ConfigError(
            f"Unknown method {name!r}; use one of {', '.join(_REGISTRY)} (crane methods lists "
            "them)."
        ) from None


def method_names(statistics: str | None = None) -> list[str]:
    """Registered names in registration order, optionally only those of one statistics kind."""
    load_plugins()
    return [n for n, s in _REGISTRY.items() if statistics is None or s.statistics == statistics]


def registered_methods() -> list[MethodSpec]:
    load_plugins()
    return list(_REGISTRY.values())


def parse_methods(spec: str) -> list[str]:
    """``"crane,lape"`` → ``["crane", "lape"]`` (order kept, duplicates dropped); ``"all"`` →
    every registered method that reads its sets off statistics (``optimise``, which optimises
    a mask through the model, runs only when named)."""
    load_plugins()
    names = [part.strip().lower() for part in spec.split(",") if part.strip()]
    if names == ["all"]:  # every method read off statistics; a builder (optimise) is slow
        return [n for n in method_names() if _REGISTRY[n].builder is None]
    unknown = [name for name in names if name not in _REGISTRY]
    if unknown or not names:
        raise ConfigError(
            f"Unknown method '{', '.join(unknown) or spec}'; use one or more of "
            f"{', '.join(_REGISTRY)} (comma-separated) or all."
        )
    return list(dict.fromkeys(names))


# ---- the built-in methods ---------------------------------------------------------------------
_CRANE_SCORER = "crane.scoring.crane_score:crane_scores"
for _spec in (
    MethodSpec(
        "crane", "relevance", _CRANE_SCORER,
        "CRANE: AttnLRP relevance profiles, language margin, verified by masking",
        relevance="attnlrp", verifiable=True,
    ),
    MethodSpec(
        "gradxact", "relevance", _CRANE_SCORER,
        "CRANE's scoring on plain gradient x activation (no LRP rules)",
        relevance="gradxact", verifiable=True,
    ),
    MethodSpec(
        "lape", "activation", "crane.scoring.lape:lape_scores",
        "LAPE (Tang et al. 2024): low entropy of P(act > 0) over languages",
        own_set="crane.scoring.lape:lape_set", site="act",
        own_set_options=("filter_rate", "top_rate", "activation_bar_ratio"),
    ),
    MethodSpec(
        "kojima", "activation", "crane.scoring.kojima:kojima_scores",
        "Kojima et al. 2024: average precision of per-text mean responses",
    ),
    MethodSpec(
        "plnd", "activation", "crane.scoring.plnd:plnd_scores",
        "PLND (Zhao et al. 2024): |a| x ||W_down[:, j]|| important on every text of L only",
        own_set="crane.scoring.plnd:plnd_set", own_set_options=("top_number",),
    ),
    MethodSpec(
        "actmean", "activation", "crane.scoring.actmean:actmean_scores",
        "Mean |activation| on L minus the largest other language",
    ),
    MethodSpec(
        "optimise", "activation", "crane.scoring.actmean:actmean_scores",
        "Reference optimum: a hard top-k mask optimised for Sel on the fit texts (slow)",
        builder="crane.optimise:optimise_sets",
    ),
    MethodSpec(
        "random", "control", None,
        "Layer-matched random control: same per-layer counts as the reference set, seeded",
    ),
):
    register_method(_spec)
