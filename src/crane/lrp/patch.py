"""AttnLRP as a reversible, per-model patch: gradient x activation on the patched model is the
AttnLRP relevance (the rules of lxt 2.1's ``lxt.efficient``, placed without touching classes).

Inside :func:`attnlrp` (everything on this model's instances only, removed on exit):

- the adapter's MLP activation module gets a forward hook whose output carries the identity
  rule (``grad_x = grad_y * act(x) / (x + 1e-10)``);
- for gated MLPs, the down projection gets a forward pre-hook that halves the gradient of its
  input (uniform rule through ``act(gate(x)) * up(x)``): the hook's output, which every later
  pre-hook sees, carries the full gradient, the product below it half;
- every normalisation layer of the language model gets its :class:`~crane.lrp.norms.NormRule`
  (scale detached), checked against the original forward first;
- the q, k and v projections (or the matching columns of a fused projection) get forward hooks
  that divide the gradient by 4, 4 and 2 (uniform rule through ``q k^T`` and ``A v``);
- the model is in eval mode (no dropout anywhere), training flags are restored on exit.

Softmax, RoPE, linear layers, residuals, embedding scaling and soft-capping keep their plain
gradient, as in lxt.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from crane.errors import ConfigError, UnsupportedModelError
from crane.lrp.families import LXT_CHECKED, unsupported_reason
from crane.lrp.functions import identity_rule, scale_gradient, scale_gradient_columns
from crane.lrp.norms import NormRule, install_rule, is_norm, norm_rule, verify_rule
from crane.models.adapters import Adapter, get_adapter, resolve
from crane.models.placement import input_device
from crane.models.sites import down_proj, site_module

Q_DIVISOR = 4.0
"""The gradient at the queries (and keys) is divided by 4: half from ``A v``, half of that from
``q k^T``."""
V_DIVISOR = 2.0
"""The gradient at the values is divided by 2 (uniform rule through ``A v``)."""
PRODUCT_DIVISOR = 2.0
"""The gradient into the gated product ``act(gate) * up`` is halved (uniform rule)."""

_ACTIVE: weakref.WeakSet[nn.Module] = weakref.WeakSet()


@dataclass(frozen=True)
class _Projection:
    """A q/k/v projection whose output gradient is scaled: by ``1/divisor``, or column-wise
    by ``columns [W]`` for a fused projection."""

    module: nn.Module
    divisor: float = 1.0
    columns: torch.Tensor | None = None


@dataclass(frozen=True)
class LrpPlan:
    """Where the rules go in one model (found by :func:`plan_attnlrp`; nothing installed)."""

    family: str
    model_type: str
    norms: tuple[tuple[str, nn.Module, NormRule], ...]
    activations: tuple[nn.Module, ...]
    down_projections: tuple[nn.Module, ...]
    projections: tuple[_Projection, ...]
    dtype: torch.dtype
    device: torch.device


def _text_config(model: nn.Module) -> Any:
    config = getattr(model, "config", None)
    return getattr(config, "text_config", None) or config


def _unsupported(model_type: str, what: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"AttnLRP is not available for this '{model_type}' model: {what}; use --method gradxact."
    )


def _layers_and_scope(model: nn.Module, adapter: Adapter) -> tuple[nn.ModuleList, nn.Module, str]:
    """The decoder layers, the module that holds them (the language model: embeddings,
    layers, final norm) and its path. Vision towers and projectors of multimodal models are
    outside."""
    for path in adapter.layers:
        layers = resolve(model, path)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            parent_path = path.rpartition(".")[0]
            scope = resolve(model, parent_path) if parent_path else model
            if scope is None:
                return layers, model, ""
            return layers, scope, parent_path
    raise UnsupportedModelError(
        f"The '{adapter.family}' adapter does not match this model (no decoder-layer list at "
        f"{' or '.join(adapter.layers)}); register a corrected adapter."
    )


def _out_features(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.out_features
    nf = getattr(module, "nf", None)  # transformers' Conv1D
    if isinstance(nf, int):
        return nf
    weight = getattr(module, "weight", None)
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.dim() == 2 else None


def _head_counts(config: Any) -> tuple[int, int] | None:
    heads = None
    for key in ("num_attention_heads", "n_head", "num_heads"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            heads = value
            break
    if heads is None:
        return None
    kv_heads = getattr(config, "num_key_value_heads", None)
    return heads, kv_heads if isinstance(kv_heads, int) and kv_heads > 0 else heads


def fused_qkv_columns(width: int, heads: int, kv_heads: int, layout: str) -> torch.Tensor:
    """Column factors ``[width]`` (float64) of a fused q/k/v projection output: 1/4 on q and k
    columns, 1/2 on v columns.

    ``layout="blocks"``: ``[q (heads*d) | k (kv_heads*d) | v (kv_heads*d)]``;
    ``layout="heads"``: per head ``[q (d) | k (d) | v (d)]`` (requires ``kv_heads == heads``).
    Raises ``ValueError`` when ``width`` does not split that way.
    """
    q, v = 1.0 / Q_DIVISOR, 1.0 / V_DIVISOR
    if layout == "blocks":
        if width % (heads + 2 * kv_heads):
            raise ValueError(f"width {width} is not (heads + 2 * kv_heads) * head_dim")
        d = width // (heads + 2 * kv_heads)
        parts = [(heads * d, q), (kv_heads * d, q), (kv_heads * d, v)]
        return torch.cat([torch.full((n,), f, dtype=torch.float64) for n, f in parts])
    if layout == "heads":
        if kv_heads != heads or width % (3 * heads):
            raise ValueError(f"width {width} is not heads * 3 * head_dim")
        d = width // (3 * heads)
        per_head = torch.tensor([q, q, v], dtype=torch.float64).repeat_interleave(d)
        return per_head.repeat(heads)
    raise ValueError(f"unknown fused qkv layout {layout!r}; use 'blocks' or 'heads'")


def _projections(
    attn: nn.Module, adapter: Adapter, config: Any, model_type: str, where: str
) -> list[_Projection]:
    if adapter.qkv_proj:
        fused = resolve(attn, adapter.qkv_proj)
        if fused is None:
            raise _unsupported(
                model_type, f"'{where}' has no fused projection '{adapter.qkv_proj}'"
            )
        width, counts = _out_features(fused), _head_counts(config)
        if width is None or counts is None:
            raise _unsupported(model_type, f"the fused projection of '{where}' cannot be split")
        try:
            columns = fused_qkv_columns(width, *counts, adapter.qkv_layout)
        except ValueError as error:
            raise _unsupported(
                model_type, f"the fused projection of '{where}' cannot be split ({error})"
            ) from None
        return [_Projection(fused, columns=columns)]
    found = []
    for part, divisor in (
        (adapter.q_proj, Q_DIVISOR),
        (adapter.k_proj, Q_DIVISOR),
        (adapter.v_proj, V_DIVISOR),
    ):
        module = resolve(attn, part)
        if module is None:
            raise _unsupported(model_type, f"'{where}' has no projection '{part}'")
        found.append(_Projection(module, divisor=divisor))
    return found


def plan_attnlrp(model: nn.Module, adapter: Adapter | None = None) -> LrpPlan:
    """Find where every rule goes and check each norm rule against its module's forward.

    Installs nothing. Raises :class:`UnsupportedModelError` (one sentence, naming the part)
    when a part of the model has no rule.
    """
    adapter = adapter or get_adapter(model)
    config = _text_config(model)
    model_type = str(getattr(getattr(model, "config", None), "model_type", adapter.family))
    reason = unsupported_reason(model_type, config)
    if reason:
        raise _unsupported(model_type, reason)
    layers, scope, scope_path = _layers_and_scope(model, adapter)
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    device = input_device(model)  # param.device is meta when offloaded (device_map)

    activations: dict[int, nn.Module] = {}
    downs: dict[int, nn.Module] = {}
    projections: list[_Projection] = []
    for index, layer in enumerate(layers):
        act = site_module(layer, adapter, "act")
        activations.setdefault(id(act), act)
        if adapter.gated:
            down = down_proj(layer, adapter)
            downs.setdefault(id(down), down)
        attn = resolve(layer, adapter.attn)
        if attn is None:
            raise _unsupported(
                model_type, f"layer {index} has no attention module '{adapter.attn}'"
            )
        projections += _projections(attn, adapter, config, model_type, f"layer {index}")

    norms: list[tuple[str, nn.Module, NormRule]] = []
    for name, module in scope.named_modules():
        if module is scope or not is_norm(module):
            continue
        rule = norm_rule(module)
        cls = type(module).__name__
        name = f"{scope_path}.{name}" if scope_path else name
        if rule is None:
            raise UnsupportedModelError(
                f"AttnLRP has no rule for '{name}' ({cls}) in this '{model_type}' model; use "
                f"--method gradxact, or register one with crane.lrp.register_norm_rule('{cls}', "
                "crane.lrp.NormRule(...))."
            )
        verify_rule(module, rule, name, dtype, device)
        norms.append((name, module, rule))

    return LrpPlan(
        family=adapter.family,
        model_type=model_type,
        norms=tuple(norms),
        activations=tuple(activations.values()),
        down_projections=tuple(downs.values()),
        projections=tuple(projections),
        dtype=dtype,
        device=device,
    )


def lrp_support(model: nn.Module, adapter: Adapter | None = None) -> tuple[bool, str]:
    """``(supported, reason)``: whether :func:`attnlrp` can patch this model, and why (not)."""
    try:
        plan = plan_attnlrp(model, adapter)
    except UnsupportedModelError as error:
        return False, str(error)
    if plan.model_type in LXT_CHECKED:
        checked = "checked against lxt 2.1"
    else:
        checked = "the same rules as lxt's families; lxt has no reference for this one"
    return True, (
        f"AttnLRP rules cover every part of this '{plan.model_type}' model "
        f"({len(plan.norms)} norms, {len(plan.activations)} activations, "
        f"{len(plan.projections)} attention projections; {checked})."
    )


# ---------------------------------------------------------------------------------------------
# Hooks


def _identity_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
    x = args[0] if args else None
    if not isinstance(output, torch.Tensor) or not isinstance(x, torch.Tensor):
        raise UnsupportedModelError(
            f"The MLP activation module {type(module).__name__} does not map one tensor to one "
            "tensor, so the identity rule cannot be applied; use --method gradxact."
        )
    if output.shape != x.shape:
        raise UnsupportedModelError(
            f"The MLP activation module {type(module).__name__} is not element-wise (shape "
            f"{list(x.shape)} -> {list(output.shape)}); use --method gradxact."
        )
    if not (torch.is_grad_enabled() and x.requires_grad):
        return None
    return identity_rule(output, x)


def _halve_input_hook(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or not (torch.is_grad_enabled() and x.requires_grad):
        return None
    return (scale_gradient(x, PRODUCT_DIVISOR), *args[1:])


def _projection_hook(projection: _Projection) -> Callable[..., Any]:
    cache: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}

    def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
        if not isinstance(output, torch.Tensor) or not (
            torch.is_grad_enabled() and output.requires_grad
        ):
            return None
        if projection.columns is None:
            return scale_gradient(output, projection.divisor)
        key = (output.dtype, output.device)
        if key not in cache:
            cache[key] = projection.columns.to(dtype=output.dtype, device=output.device)
        return scale_gradient_columns(output, cache[key])

    return hook


def _restore_training(flags: list[tuple[nn.Module, bool]]) -> None:
    for module, flag in flags:
        module.training = flag  # not .train(): that would also reset the children


@contextmanager
def attnlrp(model: nn.Module, adapter: Adapter | None = None) -> Iterator[None]:
    """Patch ``model`` (this instance only) so that activation x gradient is AttnLRP relevance.

    Usage::

        with attnlrp(model):
            emb = model.get_input_embeddings()(ids).detach().requires_grad_()
            logits = model(inputs_embeds=emb).logits
            gold = logits[:, :-1].gather(-1, ids[:, 1:, None]).sum()
            gold.backward()
            relevance = (emb * emb.grad).sum(-1)  # [B, T]

    Relevance at the ``down_in`` site is read by a forward pre-hook on the down projection
    (registered before or after entering: the rule's pre-hook is placed first); at the ``act``
    site by a forward hook on the activation module. For gated MLPs ``R_act = R_down_in / 2``.

    The forward values are unchanged. Everything is restored on exit, also when the body
    raises. Raises :class:`UnsupportedModelError` when a part of the model has no rule, and
    :class:`ConfigError` when the model is already patched.
    """
    if model in _ACTIVE:
        raise ConfigError("This model is already inside attnlrp(); do not nest the patch.")
    plan = plan_attnlrp(model, adapter)
    undo: list[Callable[[], None]] = []
    try:
        _ACTIVE.add(model)
        undo.append(lambda: _ACTIVE.discard(model))
        training = [(module, module.training) for module in model.modules()]
        undo.append(lambda: _restore_training(training))
        model.eval()
        for _name, module, rule in plan.norms:
            undo.append(install_rule(module, rule))
        for act in plan.activations:
            undo.append(act.register_forward_hook(_identity_hook, prepend=True).remove)
        for down in plan.down_projections:
            undo.append(down.register_forward_pre_hook(_halve_input_hook, prepend=True).remove)
        for projection in plan.projections:
            hook = _projection_hook(projection)
            undo.append(projection.module.register_forward_hook(hook, prepend=True).remove)
        yield
    finally:
        for restore in reversed(undo):
            restore()
