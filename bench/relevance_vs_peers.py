"""crane's relevance collection against what a researcher would write with the usual tools.

(a) lxt 2.1's own AttnLRP (``lxt.efficient.monkey_patch`` on Gemma 3's modeling module) with
user-written hooks capturing each down_proj input and its gradient, explaining the same summed
gold logits: ``model(...).logits`` (full vocabulary, lxt's examples) and, to separate the head
from the rules, the body plus the gold unembedding rows only. lxt needs transformers 4.x, so it
runs in .venv-lxt in a worker process (bench/_lxt_worker.py) that loads the same converted
safetensors weights; the token ids go to it as a file (transformers 4.57.6 builds a wrong Gemma
3 tokenizer from the GGUF). Each side times its own batches; the two processes take turns batch
by batch, so both see the same load.

(b) Gradient × activation of the full-vocabulary loss (what Captum's LayerGradientXActivation
on the MLP down projections with the cross-entropy loss computes): the full logits, the
log-softmax NLL of the gold tokens, one backward, hooks capturing down_proj inputs and their
gradients. Written by hand, and, when captum is installed, Captum itself
(``.venv/bin/python -m pip install captum`` — a bench-only extra, not a crane dependency; the
row is left out without it).

All variants run back to back on each batch (order rotated per batch and repeat); ratios
compare medians over repeats of the summed batch times. Before timing, the relevance of batch 0
is compared across implementations of the same quantity (crane attnlrp vs lxt, hand-written
full-vocabulary vs Captum).

    .venv/bin/python bench/relevance_vs_peers.py [--texts 16] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from crane.collect import (
    IGNORE,
    RelevanceOptions,
    _relevance_context,
    accumulate_relevance,
    batch_relevance,
)
from crane.models.demo import demo_cache_path
from crane.models.loading import load_model
from crane.models.sites import decoder_layers, down_proj
from crane.stats import LanguageStats

from _relevance import (  # noqa: I001  (bench/ is not a package)
    alternate,
    demo_corpus,
    load_line,
    n_scored,
    relevance_batches,
)
from _results import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
LXT_PYTHON = ROOT / ".venv-lxt" / "bin" / "python"


class LxtWorker:
    """The lxt side, in .venv-lxt; each call runs one batch there and returns its seconds."""

    def __init__(self, workdir: Path, batches: list, threads: int) -> None:
        save_file(
            {
                f"{i}.{k}": getattr(b, k).contiguous()
                for i, b in enumerate(batches)
                for k in ("input_ids", "attention_mask", "labels")
            },
            str(workdir / "batches.safetensors"),
        )
        job = {"model_dir": str(demo_cache_path()), "n_batches": len(batches)}
        (workdir / "job.json").write_text(json.dumps(job))
        self.workdir = workdir
        self.proc = subprocess.Popen(
            [str(LXT_PYTHON), str(ROOT / "bench" / "_lxt_worker.py"), str(workdir), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._line() != "ready":
            raise SystemExit("the lxt worker did not start; see its error output above")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the lxt worker stopped; see its error output above")
        return line.strip()

    def call(self, command: str, variant: str, i: int) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command} {variant} {i}\n")
        self.proc.stdin.flush()
        return float(self._line())

    def relevance(self, variant: str, i: int) -> torch.Tensor:
        self.call("save", variant, i)
        return load_file(str(self.workdir / f"{variant}-{i}.safetensors"))["relevance"]

    def close(self) -> None:
        if self.proc.stdin is not None and self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=16, help="texts per language")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (every side)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    if not LXT_PYTHON.exists():
        raise SystemExit("the lxt reference environment .venv-lxt is missing; run `make lxt-env`")
    try:
        from captum.attr import LayerGradientXActivation
    except ImportError:
        LayerGradientXActivation = None  # noqa: N806

    loaded = load_model("gemma-3-270m")
    model, adapter = loaded.model, loaded.adapter
    n_layers = loaded.shape.n_layers
    options = RelevanceOptions()
    batches = relevance_batches(loaded.tokenizer, demo_corpus(args.texts), options)
    downs = [down_proj(layer, adapter) for layer in decoder_layers(model, adapter)]
    stats = LanguageStats()
    last: dict[str, torch.Tensor] = {}  # the latest relevance [L, F] (summed over rows) per variant

    def crane(name: str) -> Callable[[int], None]:
        def run(i: int) -> None:
            rel = batch_relevance(
                model,
                adapter,
                batches[i],
                site=options.site,
                target=options.target,
                n_layers=n_layers,
            )
            accumulate_relevance(stats, rel, batches[i])
            last[name] = rel.sum(0)

        return run

    def full_vocab(i: int) -> None:
        """Hand-written: hooks on down_proj, full logits, NLL over the vocabulary, backward."""
        b = batches[i]
        rows: dict[int, torch.Tensor] = {}

        def pre_hook(_m: object, hook_args: tuple[torch.Tensor, ...], index: int) -> None:
            a = hook_args[0]
            a_value = a.detach()
            a.register_hook(lambda g: rows.__setitem__(index, (a_value * g).sum(dim=1)))

        handles = [
            d.register_forward_pre_hook(lambda m, a, index=index: pre_hook(m, a, index))
            for index, d in enumerate(downs)
        ]
        try:
            with torch.enable_grad():
                emb = model.get_input_embeddings()(b.input_ids).detach().requires_grad_(True)
                logits = model(
                    inputs_embeds=emb, attention_mask=b.attention_mask, use_cache=False
                ).logits
                loss = F.cross_entropy(
                    logits.flatten(0, 1), b.labels.flatten(), ignore_index=IGNORE, reduction="sum"
                )
                loss.backward()
        finally:
            for h in handles:
                h.remove()
        rel = torch.stack([rows[k] for k in range(n_layers)], dim=1)
        stats.add("full_vocab", rel.double().sum(0))
        last["full-vocab"] = rel.sum(0)

    def captum_run(i: int) -> None:
        b = batches[i]

        def forward(ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            nll = F.cross_entropy(
                logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="none"
            )
            return nll.view(labels.shape).sum(dim=1)  # [B]: one scalar per example

        attributions = LayerGradientXActivation(forward, downs).attribute(
            b.input_ids,
            additional_forward_args=(b.attention_mask, b.labels),
            attribute_to_layer_input=True,
        )
        rel = torch.stack([a.sum(dim=1) for a in attributions], dim=1)
        stats.add("captum", rel.double().sum(0))
        last["captum"] = rel.sum(0)

    with tempfile.TemporaryDirectory(prefix="crane-bench-lxt-") as tmp:
        worker = LxtWorker(Path(tmp), batches, args.threads)
        try:
            variants: dict[str, Callable[[int], float | None]] = {
                "crane attnlrp": crane("crane attnlrp"),
                "crane gradxact": crane("crane gradxact"),
                "lxt AttnLRP, full logits (lxt's examples)": lambda i: worker.call("run", "lxt", i),
                "lxt AttnLRP, gold unembedding rows only": lambda i: worker.call(
                    "run", "lxt-gold", i
                ),
                "full-vocabulary NLL grad×act, hand-written hooks": full_vocab,
            }
            if LayerGradientXActivation is not None:
                variants["Captum LayerGradientXActivation (full-vocabulary NLL)"] = captum_run
            contexts = {"crane attnlrp": lambda: _relevance_context(model, adapter, "attnlrp")}

            # Same quantity, same numbers? (batch 0; also the warm-up of every variant)
            with contexts["crane attnlrp"]():
                variants["crane attnlrp"](0)
            checks = [
                f"crane attnlrp vs lxt (full logits): max |Δ| / max |R| = "
                f"{rel_diff(last['crane attnlrp'], worker.relevance('lxt', 0)):.1e}",
                f"crane attnlrp vs lxt (gold rows): "
                f"{rel_diff(last['crane attnlrp'], worker.relevance('lxt-gold', 0)):.1e}",
            ]
            variants["crane gradxact"](0)
            full_vocab(0)
            if LayerGradientXActivation is not None:
                captum_run(0)
                checks.append(
                    f"hand-written full-vocabulary grad×act vs Captum: "
                    f"{rel_diff(last['full-vocab'], last['captum']):.1e}"
                )
            timings = alternate(variants, len(batches), args.repeats, contexts)
        finally:
            worker.close()

    names = list(variants)
    full = "full-vocabulary NLL grad×act, hand-written hooks"
    lines = [
        f"Gemma 3 270M (float32, CPU, sdpa attention on both sides), {args.texts} gettext texts "
        f"per language (en, zh, vi), {len(batches)} batches as `crane identify` builds them, "
        f"{n_scored(batches)} scored tokens, site down_in; crane and lxt explain the summed gold "
        f"logits, the full-vocabulary rows the summed NLL. {args.repeats} repeats, all variants "
        "back to back on each batch (order rotated); crane and the grad×act peers run in this "
        "process (transformers 5.x), lxt in .venv-lxt (transformers 4.57.6, lxt 2.1, same torch), "
        f"timing its own batches. Machine: {machine()}; {load_line(load_before)}.",
        "",
        "| variant | median s | crane attnlrp / this | crane gradxact / this | this / full-vocab hand-written |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:
        lines.append(
            f"| {name} | {timings.median(name):.2f} | {timings.ratio('crane attnlrp', name):.3f} | "
            f"{timings.ratio('crane gradxact', name):.3f} | {timings.ratio(name, full):.3f} |"
        )
    lxt = "lxt AttnLRP, full logits (lxt's examples)"
    lines += [
        "",
        f"Paired (median per-batch ratio): crane attnlrp / lxt {timings.paired('crane attnlrp', lxt):.3f}, "
        f"crane attnlrp / lxt gold rows {timings.paired('crane attnlrp', 'lxt AttnLRP, gold unembedding rows only'):.3f}, "
        f"crane attnlrp / full-vocab {timings.paired('crane attnlrp', full):.3f}, "
        f"crane gradxact / full-vocab {timings.paired('crane gradxact', full):.3f}.",
        "",
        "Agreement on batch 0 (relevance per neuron, summed over rows): " + "; ".join(checks) + ".",
    ]
    if LayerGradientXActivation is None:
        lines.append(
            "Captum is not installed, so its row is missing (`.venv/bin/python -m pip install captum`)."
        )
    body = "\n".join(lines)
    print(body)
    print(
        f"wrote {write_section('relevance collection vs lxt and full-vocabulary grad×act', body)}"
    )


if __name__ == "__main__":
    sys.exit(main())
