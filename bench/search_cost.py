"""The set search (selection v3) against one bare relevance pass over the same fit texts.

Baseline: one relevance collection (AttnLRP, the logprob target, ``collect_relevance``) over
the fit texts of every language: what an unverified top-k needs, and the least any relevance
selection can do. Against it, in the same process and on the same texts: the set search of
CRANE's sets from their top-k (``crane.search.search_sets``), in the demo's setting
(``crane.demo.demo_config``) and in the library's default setting (``IdentifyOptions``), each
from the same start sets and rankings. The bare pass runs before and after; their mean is the
baseline (the machine is shared and noisy: read the ratios). Texts: the built-in gettext
messages of en, zh, vi, ``--texts`` per language (the demo reads 100), of which the last fifth
(at most 24) are the validation texts; budget 0.5 % (184 neurons per language on Gemma 3 270M).
Also printed: where the search spends its time (estimates: backward passes over fit texts;
trials: forward passes over validation texts), counted from the reports.

    .venv/bin/python bench/search_cost.py [--texts 100] [--threads 2] [--skip-default]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import torch
from _relevance import demo_corpus  # noqa: I001  (bench/ is not a package)
from _results import machine, write_section

from crane.collect import collect_relevance
from crane.demo import demo_config
from crane.identification import IdentifyOptions, split_for_verification
from crane.identification.relevance import collected_texts
from crane.methods import get_method
from crane.models.loading import load_model
from crane.search import search_sets


def _bare_pass(loaded, fit, options) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    stats = collect_relevance(
        loaded.model, loaded.tokenizer, fit, options=options.relevance, adapter=loaded.adapter
    )
    return time.perf_counter() - started, stats


def _search(loaded, stats, fit, validation, options):  # type: ignore[no-untyped-def]
    scores = get_method("crane").score(stats, **options.score_options())
    k = options.budget.for_language("en", loaded.shape.n_neurons)
    starts = {lang: scores.ranking(lang)[:k].tolist() for lang in fit.languages}
    rankings = {lang: scores.ranking(lang) for lang in fit.languages}
    started = time.perf_counter()
    _, reports = search_sets(
        loaded, starts, rankings, fit, validation, site="down_in", batching=options.relevance,
        options=options.search(), method="crane",
    )
    return time.perf_counter() - started, reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=100, help="texts per language")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-default", action="store_true", help="the demo setting only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    loaded = load_model("gemma-3-270m")
    corpus = demo_corpus(args.texts)
    demo = demo_config().identify_options()
    default = replace(IdentifyOptions(), relevance=demo.relevance)
    fit, validation = split_for_verification(
        corpus, demo.verify_fraction, demo.verify_min_texts, demo.verify_max_texts
    )
    fit = collected_texts(loaded, fit, demo)
    first, stats = _bare_pass(loaded, fit, demo)
    settings = [("demo", demo)] + ([] if args.skip_default else [("library default", default)])
    measured = [(name, options, *_search(loaded, stats, fit, validation, options))
                for name, options in settings]
    second, _ = _bare_pass(loaded, fit, demo)
    base = (first + second) / 2
    load_after = os.getloadavg()

    rows = [
        "| search | options | seconds | ratio to the bare pass | passes / trials / accepted "
        "(all languages) | backward (fit) / forward (validation) passes | validated Sel "
        "start → final per language |",
        "|---|---|---:|---:|---:|---:|---|",
        f"| bare relevance pass (mean of 2: {first:.1f}, {second:.1f}) | | {base:.1f} | 1.00 "
        "| | | |",
    ]
    for name, options, seconds, reports in measured:
        search = options.search()
        total = {key: sum(getattr(r, key) for r in reports.values())
                 for key in ("passes", "trials", "accepted", "backward_passes", "forward_passes")}
        sels = ", ".join(
            f"{lang} {r.start_sel:+.2f} → {r.measured_sel:+.2f}" for lang, r in reports.items()
        )
        rows.append(
            f"| {name} | {search.ig_steps} share points, {search.ig_texts} fit texts per pass, "
            f"≤ {search.passes} passes | {seconds:.1f} | {seconds / base:.2f} | "
            f"{total['passes']} / {total['trials']} / {total['accepted']} | "
            f"{total['backward_passes']} / {total['forward_passes']} | {sels} |"
        )
    n_fit = min(len(fit[lang]) for lang in fit.languages)
    n_val = min(len(validation[lang]) for lang in validation.languages)
    body = (
        f"Gemma 3 270M (float32, CPU), gettext texts of en, zh, vi: {n_fit} fit and {n_val} "
        f"validation texts per language, budget 0.5 %, CRANE's top-k as the start. Command: "
        f"`.venv/bin/python bench/search_cost.py --texts {args.texts} --threads {args.threads}"
        f"{' --skip-default' if args.skip_default else ''}`. Machine: {machine()}; load "
        f"average (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load_before)}, after "
        f"{', '.join(f'{x:.2f}' for x in load_after)} on {os.cpu_count()} CPUs.\n\n"
        + "\n".join(rows)
        + "\n\n**"
        + "; ".join(f"{name} search / bare pass = {s / base:.2f}×" for name, _, s, _ in measured)
        + ".**"
    )
    print(body)
    write_section("set search: against one bare relevance pass", body)


if __name__ == "__main__":
    main()
