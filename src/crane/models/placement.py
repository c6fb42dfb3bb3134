"""Where a module computes, for models dispatched by accelerate (``device_map``, offloading).

A model loaded with ``device_map="auto"`` (or passed through ``accelerate.dispatch_model`` /
``cpu_offload``) carries an ``AlignDevicesHook`` on its modules: inputs are moved to the
hook's ``execution_device`` before each forward, and an *offloaded* module (weights kept in
CPU memory or in an offload folder on disk) holds its parameters on the ``meta`` device
between calls, loading them only for its own forward. So ``parameter.device`` is not where a
module runs, and ``parameter`` itself may hold no data. These helpers answer both questions
without assuming that accelerate is in use: a plain model gives its parameters' device, and
reading its weights changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from crane.errors import ModelLoadError

META = torch.device("meta")


def _hook_device(module: nn.Module) -> torch.device | None:
    hook = getattr(module, "_hf_hook", None)
    hooks = getattr(hook, "hooks", None) or ([hook] if hook is not None else [])
    for h in hooks:  # a SequentialHook holds several; the AlignDevicesHook has the device
        device = getattr(h, "execution_device", None)
        if isinstance(device, int):  # accelerate records a bare index for cuda:N
            return torch.device("cuda", device)
        if device is not None:
            return torch.device(device)
    return None


def module_device(module: nn.Module) -> torch.device:
    """The device ``module`` computes on: its accelerate hook's execution device, else the
    device of its first parameter or buffer that holds data, else the CPU."""
    device = _hook_device(module)
    if device is not None:
        return device
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.device != META:
            return tensor.device
    return torch.device("cpu")


def input_device(model: nn.Module) -> torch.device:
    """Where token ids go: the device of the input embeddings (``model.device`` is the first
    parameter's device, which is ``meta`` when the embeddings are offloaded)."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if isinstance(embeddings, nn.Module):
        return module_device(embeddings)
    return module_device(model)


def is_offloaded(module: nn.Module) -> bool:
    """Whether any of ``module``'s own parameters lie on the ``meta`` device (offloaded)."""
    return any(p.device == META for p in module.parameters(recurse=False))


@contextlib.contextmanager
def materialized(module: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, ``module``'s own parameters hold data on its execution device, also
    when accelerate offloaded them (they return to the offload afterwards). Read-only use:
    for a module that is not offloaded this does nothing."""
    if not is_offloaded(module):
        yield module
        return
    from accelerate.utils import align_module_device, has_offloaded_params

    if not has_offloaded_params(module):
        raise ModelLoadError(
            f"{type(module).__name__} has parameters on the meta device but no accelerate "
            "offload hook to load them from; load the model with its weights."
        )
    with align_module_device(module):
        yield module
