"""AttnLRP (Achtibat et al., ICML 2024) as reversible, per-model patches.

``with attnlrp(model): ...`` changes the backward pass of this model instance so that
activation x gradient equals AttnLRP relevance as computed by lxt 2.1 (``lxt.efficient``), and
restores the model on exit. :func:`lrp_support` says whether a model can be patched and why
(not). Normalisation layers are handled by rules registered by class name
(:func:`register_norm_rule`). See ``docs/lrp.md`` for the rules and their checks.
"""

from __future__ import annotations

from crane.errors import UnsupportedModelError
from crane.lrp.functions import identity_rule, scale_gradient, scale_gradient_columns
from crane.lrp.norms import NormRule, norm_rule, norm_rules, register_norm_rule
from crane.lrp.patch import LrpPlan, attnlrp, fused_qkv_columns, lrp_support, plan_attnlrp

__all__ = [
    "LrpPlan",
    "NormRule",
    "UnsupportedModelError",
    "attnlrp",
    "fused_qkv_columns",
    "identity_rule",
    "lrp_support",
    "norm_rule",
    "norm_rules",
    "plan_attnlrp",
    "register_norm_rule",
    "scale_gradient",
    "scale_gradient_columns",
]
