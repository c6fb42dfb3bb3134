"""Identification: which neurons each language needs, by any registered method
(:mod:`crane.methods`), on the same texts for every method of a run.

- :func:`identify_methods` (:mod:`crane.identification.run`): the one entry — several methods,
  equal budgets, a shared fit/validation split, the random control, data parallelism;
- :func:`identify` (:mod:`crane.identification.relevance`): one relevance method alone;
- :class:`IdentifyOptions` (:mod:`crane.identification.options`): every choice, recorded.
"""

from __future__ import annotations

from crane.identification.options import IdentifyOptions, IdentifyResult, MethodsResult
from crane.identification.relevance import identify, split_for_verification, stats_dirname
from crane.identification.run import (
    budget_plan,
    collect_shards,
    identify_methods,
    reference_method,
)

__all__ = [
    "IdentifyOptions",
    "IdentifyResult",
    "MethodsResult",
    "budget_plan",
    "collect_shards",
    "identify",
    "identify_methods",
    "reference_method",
    "split_for_verification",
    "stats_dirname",
]
