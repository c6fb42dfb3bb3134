"""The lxt side of bench/relevance_vs_peers.py: AttnLRP as a researcher writes it with lxt 2.1.

Runs in the reference environment (.venv-lxt: transformers 4.57.6 + lxt 2.1), never in the
project's own, and imports nothing from crane:

    .venv-lxt/bin/python bench/_lxt_worker.py WORKDIR THREADS

WORKDIR/job.json names the converted demo model directory (safetensors; its tokenizer is not
used: transformers 4.x builds a wrong Gemma 3 tokenizer, so the token ids come from crane's
side) and the batch count; WORKDIR/batches.safetensors holds ``<i>.input_ids``,
``<i>.attention_mask`` and ``<i>.labels`` (-100 where nothing is predicted).

The model is loaded with sdpa attention (as crane's side), weights frozen, and Gemma 3's
modeling module is patched with ``lxt.efficient.monkey_patch``. User-written hooks capture each
layer's down_proj input and its gradient and sum a·g over positions, per row. Two variants:

- ``lxt``: ``model(inputs_embeds=...).logits`` (the full vocabulary at every position), gold
  logits gathered, their sum backpropagated: the code of lxt's examples;
- ``lxt-gold``: the body, then only the gold rows of the unembedding (crane's head trick), to
  separate the cost of the full-vocabulary head from that of the rules.

Protocol on stdin/stdout, one line each: ``run VARIANT I`` → seconds of that batch (timed
here); ``save VARIANT I`` → runs it and writes ``WORKDIR/VARIANT-I.safetensors`` (``relevance
[L, d_ff]`` summed over rows, ``f``); ``quit``. ``ready`` is printed once loaded.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from lxt_reference import _import_lxt  # noqa: E402  (the torchvision stub lxt needs)

IGNORE = -100


def main(workdir: Path, threads: int) -> None:
    torch.set_num_threads(threads)
    from transformers import Gemma3ForCausalLM
    from transformers.models.gemma3 import modeling_gemma3

    job = json.loads((workdir / "job.json").read_text())
    model = Gemma3ForCausalLM.from_pretrained(
        job["model_dir"], dtype=torch.float32, attn_implementation="sdpa"
    ).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    _import_lxt().monkey_patch(modeling_gemma3)
    tensors = load_file(str(workdir / "batches.safetensors"))
    batches = [
        {k: tensors[f"{i}.{k}"] for k in ("input_ids", "attention_mask", "labels")}
        for i in range(job["n_batches"])
    ]
    layers = model.model.layers
    rows: dict[int, torch.Tensor] = {}

    def pre_hook(_module: object, args: tuple[torch.Tensor, ...], index: int) -> None:
        a = args[0]
        if a.requires_grad:
            a_value = a.detach()
            a.register_hook(lambda g: rows.__setitem__(index, (a_value * g).sum(dim=1)))

    for index, layer in enumerate(layers):
        layer.mlp.down_proj.register_forward_pre_hook(
            lambda m, args, index=index: pre_hook(m, args, index)
        )
    totals = torch.zeros(len(layers), model.config.intermediate_size, dtype=torch.float64)

    def explain(variant: str, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, float]:
        rows.clear()
        ids, mask, labels = b["input_ids"], b["attention_mask"], b["labels"]
        emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        scored = labels != IGNORE
        if variant == "lxt":
            logits = model(inputs_embeds=emb, attention_mask=mask, use_cache=False).logits
            gold = logits.gather(-1, labels.clamp_min(0)[..., None])[..., 0]
            f = gold[scored].sum()
        else:
            hidden = model.model(
                inputs_embeds=emb, attention_mask=mask, use_cache=False
            ).last_hidden_state
            w = model.lm_head.weight[labels[scored]]
            f = (hidden[scored] * w).sum()
        f.backward()
        rel = torch.stack([rows[i] for i in range(len(layers))], dim=1)  # [B, L, F]
        totals.add_(rel.double().sum(0))  # what a researcher accumulates per language
        return rel, float(f)

    explain("lxt", batches[0])  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        command, variant, i = parts[0], parts[1], int(parts[2])
        started = time.perf_counter()
        rel, f = explain(variant, batches[i])
        seconds = time.perf_counter() - started
        if command == "save":
            save_file(
                {"relevance": rel.sum(0).contiguous(), "f": torch.tensor(f, dtype=torch.float64)},
                str(workdir / f"{variant}-{i}.safetensors"),
            )
        print(f"{seconds:.6f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: _lxt_worker.py WORKDIR THREADS")
    main(Path(sys.argv[1]), int(sys.argv[2]))
