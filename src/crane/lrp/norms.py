"""Normalisation layers under AttnLRP: the normalising scale is treated as a constant.

LRP treats a normalisation layer as linear: the factor ``1/rms(x)`` (RMSNorm) or ``1/std(x)``
(LayerNorm) is detached, so its gradient is not propagated; LayerNorm's mean subtraction keeps
its gradient (it is linear). The forward value does not change.

A :class:`NormRule` replaces one method of a norm module *on that instance* while
:func:`crane.lrp.attnlrp` is active. Rules are registered by the module's class name
(``type(module).__name__``); register one for a norm class crane does not know::

    from crane.lrp import NormRule, register_norm_rule

    def my_norm(module, x):  # same forward value, scale detached
        scale = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + module.eps)
        return module.weight * (x * scale.detach())

    register_norm_rule("MyRMSNorm", NormRule(my_norm, description="RMSNorm, scale detached"))

On entry every overridden norm is checked on a small random input: it must reproduce the
module's original forward output, or :class:`~crane.errors.UnsupportedModelError` is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from crane.errors import UnsupportedModelError
from crane.models.placement import module_device

NormFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]
"""``fn(module, x) -> tensor``: the replacement method, called with the norm module as ``self``."""

_HALF = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class NormRule:
    """How one normalisation class is linearised.

    Attributes:
        fn: the replacement for ``module.<method>``, ``fn(module, x)``; it must return the
            same value as the original method and detach only the normalising scale.
        method: the method replaced: ``"forward"``, or ``"_norm"`` for Gemma-style norms whose
            ``forward`` (float32 upcast, ``* (1 + weight)``, cast back) stays the original.
        description: one line shown to users (``crane.lrp.norm_rules()``).
    """

    fn: NormFn
    method: str = "forward"
    description: str = ""


_RULES: dict[str, NormRule] = {}


def register_norm_rule(class_name: str, rule: NormRule, *, overwrite: bool = False) -> NormRule:
    """Register ``rule`` for norm modules whose class is named ``class_name``; returns it.

    An existing rule is only replaced with ``overwrite=True``.
    """
    if rule.method not in ("forward", "_norm"):
        raise ValueError(f"NormRule.method must be 'forward' or '_norm', not {rule.method!r}.")
    if class_name in _RULES and not overwrite and _RULES[class_name] != rule:
        raise UnsupportedModelError(
            f"An AttnLRP norm rule for '{class_name}' is already registered; "
            "pass overwrite=True to replace it."
        )
    _RULES[class_name] = rule
    return rule


def norm_rule(module: nn.Module) -> NormRule | None:
    """The rule registered for ``type(module).__name__``, or ``None``."""
    return _RULES.get(type(module).__name__)


def norm_rules() -> dict[str, NormRule]:
    """Every registered rule by class name (a copy)."""
    return dict(sorted(_RULES.items()))


def is_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a normalisation layer that needs a rule (torch's norm classes,
    or a class whose name contains "norm", as every Hugging Face norm class does)."""
    norm_types = (nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
    norm_types += (nn.modules.batchnorm._NormBase,)  # batch and instance norms
    rms = getattr(nn, "RMSNorm", None)
    if rms is not None:
        norm_types += (rms,)
    return isinstance(module, norm_types) or "norm" in type(module).__name__.lower()


# ---------------------------------------------------------------------------------------------
# Built-in rules. Each mirrors the original forward's arithmetic and dtype handling exactly;
# the only change is ``.detach()`` on the normalising scale.


def rms_norm_weight_after_cast(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Llama-style RMSNorm: float32 statistics, ``weight * normed.to(dtype)``."""
    dtype = x.dtype
    h = x.to(torch.float32)
    scale = torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + module.variance_epsilon)
    return module.weight * (h * scale.detach()).to(dtype)


def rms_norm_weight_before_cast(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """OLMo-2-style RMSNorm: float32 statistics, ``(weight * normed).to(dtype)``."""
    dtype = x.dtype
    h = x.to(torch.float32)
    scale = torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + module.variance_epsilon)
    return (module.weight * (h * scale.detach())).to(dtype)


def gemma_rms_norm_core(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Gemma-style ``_norm``: ``x * rsqrt(mean(x^2) + eps)`` with the rsqrt detached; the
    original ``forward`` (``x.float()``, ``* (1 + weight)``, cast back) is kept."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + module.eps).detach()


def _layer_norm(
    x: torch.Tensor,
    dims: tuple[int, ...],
    eps: float,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    mean = x.mean(dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dims, keepdim=True)
    std = (var + eps).sqrt()
    y = (x - mean) / std.detach()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def layer_norm(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``torch.nn.LayerNorm``: ``(x - mean) / std * weight + bias`` with ``std`` detached and
    the mean kept. Computed in the input dtype (lxt's formula); float16/bfloat16 inputs are
    computed in float32 and cast back, as torch's own kernel does internally."""
    dims = tuple(range(-len(module.normalized_shape), 0))
    dtype = x.dtype
    h = x.float() if dtype in _HALF else x
    return _layer_norm(h, dims, module.eps, module.weight, module.bias).to(dtype)


def olmo_layer_norm(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """OLMo's parameter-free LayerNorm: float32, eps 1e-5, std detached, cast back."""
    dims = tuple(range(-len(module.normalized_shape), 0))
    return _layer_norm(x.to(torch.float32), dims, 1e-5, None, None).to(x.dtype)


def torch_rms_norm(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``torch.nn.RMSNorm``: ``x * rsqrt(mean(x^2) + eps) * weight`` with the rsqrt detached
    (float16/bfloat16 computed in float32 and cast back)."""
    dims = tuple(range(-len(module.normalized_shape), 0))
    dtype = x.dtype
    h = x.float() if dtype in _HALF else x
    eps = module.eps if module.eps is not None else torch.finfo(dtype).eps
    y = h * torch.rsqrt(h.pow(2).mean(dims, keepdim=True) + eps).detach()
    if module.weight is not None:
        y = y * module.weight
    return y.to(dtype)


_WEIGHT_AFTER_CAST = NormRule(
    rms_norm_weight_after_cast, description="RMSNorm (float32 statistics), 1/rms detached"
)
for _name in (
    "LlamaRMSNorm",
    "MistralRMSNorm",
    "Qwen2RMSNorm",
    "Qwen3RMSNorm",
    "GraniteRMSNorm",
    "Phi3RMSNorm",
):
    register_norm_rule(_name, _WEIGHT_AFTER_CAST)
register_norm_rule(
    "Olmo2RMSNorm",
    NormRule(
        rms_norm_weight_before_cast, description="RMSNorm (weight before cast), 1/rms detached"
    ),
)
_GEMMA = NormRule(gemma_rms_norm_core, method="_norm", description="Gemma RMSNorm, 1/rms detached")
for _name in ("GemmaRMSNorm", "Gemma2RMSNorm", "Gemma3RMSNorm"):
    register_norm_rule(_name, _GEMMA)
register_norm_rule(
    "LayerNorm", NormRule(layer_norm, description="LayerNorm, std detached, mean kept")
)
register_norm_rule(
    "OlmoLayerNorm",
    NormRule(olmo_layer_norm, description="parameter-free LayerNorm, std detached, mean kept"),
)
register_norm_rule(
    "RMSNorm", NormRule(torch_rms_norm, description="torch.nn.RMSNorm, 1/rms detached")
)


# ---------------------------------------------------------------------------------------------
# Installing a rule on one instance, and checking it against the original forward.


def rule_target(module: nn.Module, rule: NormRule) -> str:
    """The instance attribute a rule overrides: ``rule.method``, except that a forward rule on
    a module wrapped by accelerate's hooks (which keep the real forward in ``_old_forward``)
    replaces ``_old_forward`` so device placement keeps working."""
    if rule.method == "forward" and "_old_forward" in vars(module):
        return "_old_forward"
    return rule.method


_MISSING = object()


def install_rule(module: nn.Module, rule: NormRule) -> Callable[[], None]:
    """Override the rule's method on this instance; returns the function that restores it."""
    target = rule_target(module, rule)
    previous = vars(module).get(target, _MISSING)
    fn = rule.fn

    def method(x: torch.Tensor) -> torch.Tensor:
        return fn(module, x)

    method.__name__ = f"attnlrp_{rule.method.lstrip('_')}"
    object.__setattr__(module, target, method)

    def restore() -> None:
        if previous is _MISSING:
            vars(module).pop(target, None)
        else:
            object.__setattr__(module, target, previous)

    return restore


def _probe_shape(module: nn.Module) -> tuple[int, ...] | None:
    shape = getattr(module, "normalized_shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape)
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() >= 1:
        return tuple(weight.shape)
    return None


def _tolerance(dtype: torch.dtype) -> float:
    if dtype in _HALF:
        return 2e-2
    if dtype == torch.float64:
        return 1e-10
    return 1e-5


@torch.no_grad()
def verify_rule(
    module: nn.Module, rule: NormRule, name: str, dtype: torch.dtype, device: torch.device
) -> None:
    """Raise :class:`UnsupportedModelError` unless ``rule`` reproduces ``module``'s forward.

    Runs the module's forward (without hooks) on a random ``[2, 3, *shape]`` input before and
    after installing the rule on the instance; the rule is removed again in any case.
    """
    cls = type(module).__name__
    shape = _probe_shape(module)
    if shape is None:
        raise UnsupportedModelError(
            f"Cannot check the AttnLRP rule for '{name}' ({cls}): it has neither "
            "normalized_shape nor a weight; use --method gradxact."
        )
    param = next(module.parameters(), None)
    if param is not None:
        dtype = param.dtype
        device = module_device(module)  # not param.device: meta when offloaded (device_map)
    generator = torch.Generator().manual_seed(0)
    x = (torch.randn((2, 3, *shape), generator=generator) + 0.5).to(device=device, dtype=dtype)
    reference = module.forward(x)
    restore = install_rule(module, rule)
    try:
        ours = module.forward(x)
    finally:
        restore()
    scale = float(reference.abs().max().clamp_min(1.0)) if reference.numel() else 1.0
    same_shape = isinstance(ours, torch.Tensor) and ours.shape == reference.shape
    err = float((ours.float() - reference.float()).abs().max()) if same_shape else float("inf")
    if not err <= _tolerance(dtype) * scale:
        raise UnsupportedModelError(
            f"The AttnLRP rule registered for {cls} does not reproduce the forward output of "
            f"'{name}' (max difference {err:.3g}); the class has changed, register a corrected "
            f"rule with crane.lrp.register_norm_rule('{cls}', ..., overwrite=True) or use "
            "--method gradxact."
        )
