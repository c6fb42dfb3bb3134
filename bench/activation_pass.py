"""The activation-statistics pass against a bare forward pass over the same batches.

Goal (issue 4): one pass that fills every activation baseline's statistics (LAPE counts, sums,
squares, |a|, per-text Kojima/PLND tensors) costs at most 1.2× a bare forward pass of the
model body over the same batches. Also reported: a masked forward against an unmasked one
(goal 1.05×). Repeats alternate the variants in one process; medians are compared.

    .venv/bin/python bench/activation_pass.py [--texts 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from crane.activations import ActivationOptions, collect_activations
from crane.data.batching import iter_batches, pad_token_id, tokenize_texts
from crane.data.builtin import gettext_corpus
from crane.intervene import mask_neurons
from crane.models.head import final_hidden
from crane.models.loading import load_model
from crane.neurons import NeuronSet

from _results import machine, write_section  # noqa: I001  (bench/ is not a package)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=100, help="texts per language")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    loaded = load_model("gemma-3-270m")
    model, tokenizer = loaded.model, loaded.tokenizer
    corpus = gettext_corpus("identify").select(["en", "zh", "vi"]).take(args.texts)
    options = ActivationOptions()
    pad = pad_token_id(tokenizer)
    batches = [  # the batches the activation pass builds: shards of 64 texts, same limits
        batch
        for lang in corpus.languages
        for lo in range(0, len(corpus[lang]), options.shard_texts)
        for batch in iter_batches(
            tokenize_texts(
                tokenizer, corpus[lang][lo : lo + options.shard_texts], max_length=options.max_length
            ),
            batch_size=options.batch_size,
            pad_id=pad,
            max_tokens=options.batch_tokens,
        )
    ]
    n_tokens = int(sum(b.attention_mask.sum() for b in batches))

    def bare() -> None:
        with torch.no_grad():
            for b in batches:
                final_hidden(model, b.input_ids, b.attention_mask)

    def activation_pass() -> None:
        collect_activations(model, tokenizer, corpus, options=options, adapter=loaded.adapter)

    random_set = NeuronSet.random(loaded.shape, round(0.005 * loaded.shape.n_neurons), seed=0)

    def masked() -> None:
        with mask_neurons(model, random_set, adapter=loaded.adapter):
            bare()

    variants: dict[str, Callable[[], None]] = {
        "bare forward": bare,
        "activation pass": activation_pass,
        "masked forward (0.5%)": masked,
    }
    bare()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    median = {name: statistics.median(t) for name, t in times.items()}
    base = median["bare forward"]
    lines = [
        f"Gemma 3 270M (float32, CPU), {args.texts} gettext texts per language (en, zh, vi), "
        f"{len(batches)} batches, {n_tokens} tokens; median of {args.repeats} alternating "
        f"repeats. Machine: {machine()}.",
        "",
        "| variant | median s | ratio to bare forward | goal |",
        "|---|---:|---:|---:|",
    ]
    goals = {"activation pass": "≤ 1.20", "masked forward (0.5%)": "≤ 1.05"}
    for name, seconds in median.items():
        lines.append(f"| {name} | {seconds:.2f} | {seconds / base:.3f} | {goals.get(name, '')} |")
    body = "\n".join(lines)
    print(body)
    print(f"wrote {write_section('activation pass vs bare forward', body)}")


if __name__ == "__main__":
    main()
