"""Relevance collection against the bare frozen-weight forward+backward on the same batches.

Goal (issue 7): crane's AttnLRP relevance collection (the per-batch code path of
``crane identify``: rules installed, site hooks, the a·g reduction in the backward, the
accumulators) costs at most 1.10× the practical limit: the plain model (no rules, no hooks,
weights frozen) running the body forward, the gold next-token logits of the scored positions
and one backward of their sum to the input embeddings. Also reported: plain gradient ×
activation (``gradxact``) against the same limit, the same limit with the backward stopped
where crane's stops (at layer 0's down-projection input; crane needs no gradient below its
first site), and the whole ``collect_relevance`` call (tokenizing, sharding, entering the
rules) against the bare pass over the same corpus.

The variants run back to back on each batch (order rotated per batch and repeat), so load
changes on a shared machine hit all of them alike; ratios compare medians over repeats of the
summed batch times, and "paired" is the median of per-batch ratios.

    .venv/bin/python bench/relevance_overhead.py [--texts 32] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from crane.collect import (
    RelevanceOptions,
    _relevance_context,
    accumulate_relevance,
    batch_relevance,
    collect_relevance,
)
from crane.models.loading import load_model
from crane.models.sites import decoder_layers, down_proj
from crane.stats import LanguageStats

from _relevance import (  # noqa: I001  (bench/ is not a package)
    alternate,
    bare_backward,
    demo_corpus,
    load_line,
    n_scored,
    relevance_batches,
)
from _results import machine, write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=32, help="texts per language")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    loaded = load_model("gemma-3-270m")
    model, adapter = loaded.model, loaded.adapter
    n_layers = loaded.shape.n_layers
    corpus = demo_corpus(args.texts)
    options = RelevanceOptions()
    batches = relevance_batches(loaded.tokenizer, corpus, options)
    layer0_down = down_proj(decoder_layers(model, adapter)[0], adapter)
    stats = LanguageStats()

    def crane(i: int) -> None:
        rel = batch_relevance(
            model, adapter, batches[i], site=options.site, target=options.target, n_layers=n_layers
        )
        accumulate_relevance(stats, rel, batches[i])

    variants = {
        "bare forward+backward": lambda i: bare_backward(model, batches[i]),
        "bare, backward stopped at layer 0's down_proj input": lambda i: bare_backward(
            model, batches[i], stop=layer0_down
        ),
        "crane attnlrp": crane,
        "crane gradxact": crane,
    }
    contexts = {"crane attnlrp": lambda: _relevance_context(model, adapter, "attnlrp")}
    bare_backward(model, batches[0])  # warm-up
    with contexts["crane attnlrp"]():
        crane(0)
    timings = alternate(variants, len(batches), args.repeats, contexts)

    entries = []  # the once-per-call cost of entering and leaving the rules (plan, checks)
    for _ in range(5):
        started = time.perf_counter()
        with _relevance_context(model, adapter, "attnlrp"):
            pass
        entries.append(time.perf_counter() - started)

    whole: dict[str, list[float]] = {
        "bare forward+backward (all batches)": [],
        "collect_relevance (attnlrp)": [],
    }
    for _ in range(args.repeats):
        started = time.perf_counter()
        for b in batches:
            bare_backward(model, b)
        whole["bare forward+backward (all batches)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        collect_relevance(model, loaded.tokenizer, corpus, options=options, adapter=adapter)
        whole["collect_relevance (attnlrp)"].append(time.perf_counter() - started)

    base = "bare forward+backward"
    goals = {"crane attnlrp": "≤ 1.10"}
    lines = [
        f"Gemma 3 270M (float32, CPU), {args.texts} gettext texts per language (en, zh, vi), "
        f"{len(batches)} batches as `crane identify` builds them (max_length {options.max_length}, "
        f"batch_size {options.batch_size}, batch_tokens {options.batch_tokens}), {n_scored(batches)} "
        f"scored tokens; target: summed gold logits; site {options.site}. {args.repeats} repeats, "
        "the variants back to back on each batch (order rotated); ratio = median over repeats of "
        "the summed batch times; paired = median over (repeat, batch) of the per-batch ratio. "
        f"Machine: {machine()}; {load_line(load_before)}.",
        "",
        "| variant | median s | ratio to bare | paired | goal |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in variants:
        lines.append(
            f"| {name} | {timings.median(name):.2f} | {timings.ratio(name, base):.3f} | "
            f"{timings.paired(name, base):.3f} | {goals.get(name, '')} |"
        )
    stop = "bare, backward stopped at layer 0's down_proj input"
    lines += [
        "",
        f"Against the limit whose backward also stops at layer 0's site: crane attnlrp "
        f"{timings.ratio('crane attnlrp', stop):.3f} (paired {timings.paired('crane attnlrp', stop):.3f}), "
        f"crane gradxact {timings.ratio('crane gradxact', stop):.3f} "
        f"(paired {timings.paired('crane gradxact', stop):.3f}). Entering and leaving the AttnLRP "
        f"rules (plan, norm-rule checks), once per call: median {statistics.median(entries) * 1e3:.0f} ms.",
        "",
        "Whole call, alternating per repeat (tokenizing, shards, rules entered once):",
        "",
        "| variant | median s | ratio |",
        "|---|---:|---:|",
    ]
    wbase = statistics.median(whole["bare forward+backward (all batches)"])
    for name, seconds in whole.items():
        lines.append(
            f"| {name} | {statistics.median(seconds):.2f} | {statistics.median(seconds) / wbase:.3f} |"
        )
    body = "\n".join(lines)
    print(body)
    print(f"wrote {write_section('relevance collection vs bare forward+backward', body)}")


if __name__ == "__main__":
    main()
