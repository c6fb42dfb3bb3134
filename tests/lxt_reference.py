"""AttnLRP reference numbers from lxt 2.1, for tests/unit/test_lrp_lxt.py.

Runs inside the reference environment (``make lxt-env``: .venv-lxt with transformers 4.57.6 and
lxt 2.1), never in the project's own environment, and imports nothing from crane:

    .venv-lxt/bin/python tests/lxt_reference.py WORKDIR

WORKDIR holds what the test wrote: ``cases.json`` (per case: config class and kwargs, model
class, attention implementation, where the decoder layers and the down projection are),
``<case>.safetensors`` (the exact weights) and ``inputs.safetensors`` (``input_ids [B, T]``).
For each case this script rebuilds the architecture from the config kwargs in float64, loads
the weights strictly, computes the plain logits, applies ``lxt.efficient.monkey_patch`` to the
model's modeling module and explains f = sum of gold next-token logits with gradient x input.

Writes ``lxt_out.safetensors`` (``<case>.logits``, ``<case>.input_relevance [B, T, d]``,
``<case>.down_in.<layer> [d_ff]``) and ``lxt_out.json`` (versions, timings).

lxt's patches are global and permanent (classes, module globals, torch.nn.Dropout and, for
GPT-2, torch.nn.LayerNorm), so every plain forward runs before the first patch, and each
modeling module is patched once. Different families live in different modeling modules, so
their patches do not interfere (only GPT-2 uses torch.nn.LayerNorm here).
"""

from __future__ import annotations

import json
import sys
import time
import types
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
import transformers  # before lxt: see _import_lxt
from safetensors.torch import load_file, save_file

warnings.filterwarnings("ignore")


def _import_lxt() -> Any:
    """lxt.efficient imports torchvision's vision_transformer (for its ViT rules) at import
    time and uses its ``nn`` attribute; a stub is enough, and it is removed afterwards."""
    vt = types.ModuleType("torchvision.models.vision_transformer")
    vt.nn = torch.nn
    tvm = types.ModuleType("torchvision.models")
    tvm.vision_transformer = vt
    tv = types.ModuleType("torchvision")
    tv.models = tvm
    stubs = {
        "torchvision": tv,
        "torchvision.models": tvm,
        "torchvision.models.vision_transformer": vt,
    }
    added = [name for name in stubs if name not in sys.modules]
    sys.modules.update({name: stubs[name] for name in added})
    try:
        import lxt.efficient as lxt_efficient
    finally:
        for name in added:
            sys.modules.pop(name, None)
    return lxt_efficient


def _resolve(root: Any, path: str) -> Any:
    for part in path.split("."):
        root = root[int(part)] if part.isdigit() else getattr(root, part)
    return root


def _build(case: dict[str, Any], weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    config = getattr(transformers, case["config_class"])(**case["config"])
    config._attn_implementation = case["attn_implementation"]
    model = getattr(transformers, case["model_class"])(config).to(torch.float64).eval()
    model.load_state_dict(weights, strict=True)
    for param in model.parameters():
        param.requires_grad_(False)
    if model.config._attn_implementation != case["attn_implementation"]:
        raise SystemExit(f"{case['name']}: attention implementation was not applied")
    return model


def _explain(model: torch.nn.Module, ids: torch.Tensor, case: dict[str, Any]) -> dict[str, Any]:
    """f = sum of gold next-token logits; relevance = activation x gradient."""
    relevance: dict[int, torch.Tensor] = {}
    handles = []
    for index, layer in enumerate(_resolve(model, case["layers"])):
        down = _resolve(layer, case["down_proj"])

        def pre_hook(_module: Any, args: tuple[Any, ...], index: int = index) -> None:
            a = args[0]
            if a.requires_grad:
                a_value = a.detach()
                a.register_hook(
                    lambda g: relevance.__setitem__(index, (a_value * g).sum(dim=(0, 1)))
                )

        handles.append(down.register_forward_pre_hook(pre_hook))
    try:
        emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        logits = model(inputs_embeds=emb, use_cache=False).logits
        logits[:, :-1].gather(-1, ids[:, 1:, None]).sum().backward()
    finally:
        for handle in handles:
            handle.remove()
    out = {"input_relevance": (emb * emb.grad).detach()}
    out.update({f"down_in.{i}": relevance[i] for i in sorted(relevance)})
    return out


def main(workdir: Path) -> None:
    started = time.perf_counter()
    cases = json.loads((workdir / "cases.json").read_text())["cases"]
    ids = load_file(str(workdir / "inputs.safetensors"))["input_ids"]
    models = {
        c["name"]: _build(c, load_file(str(workdir / f"{c['name']}.safetensors"))) for c in cases
    }
    tensors: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for case in cases:
            model = models[case["name"]]
            tensors[f"{case['name']}.logits"] = model(input_ids=ids, use_cache=False).logits
    built = time.perf_counter()

    lxt_efficient = _import_lxt()
    patched: set[str] = set()
    for case in cases:
        model = models[case["name"]]
        modeling = sys.modules[type(model).__module__]
        if modeling.__name__ not in patched:
            lxt_efficient.monkey_patch(modeling)
            patched.add(modeling.__name__)
        for key, value in _explain(model, ids, case).items():
            tensors[f"{case['name']}.{key}"] = value
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(workdir / "lxt_out.safetensors"))
    info = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "lxt": version("lxt"),
        "patched_modules": sorted(patched),
        "seconds_build_and_plain": round(built - started, 3),
        "seconds_lxt": round(time.perf_counter() - built, 3),
    }
    (workdir / "lxt_out.json").write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: lxt_reference.py WORKDIR")
    main(Path(sys.argv[1]))
