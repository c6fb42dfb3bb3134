"""The whole v2 identification of CRANE against one bare relevance pass (issue 14, cost).

Baseline: one relevance collection (AttnLRP, the logprob target, ``collect_relevance``) over
the fit texts of every language: the work v1's unverified ranking needs, and the least any
relevance-based selection can do. Against it, on the same texts and in the same process:

- ``demo form``: ``identify_methods(["crane"])`` as ``crane demo`` runs it (one round: the
  relevance pass, the contrast score, exactly k neurons with their damage measured on the
  validation texts; no shares, no swaps);
- ``v2 default``: the same call with the library's defaults (2 rounds of masked
  re-estimation, integrated-gradient shares at ``ig_steps`` points on ``ig_texts`` validation
  texts, validated swaps).

Each identification writes into a fresh temporary run directory (nothing reused). The bare pass
runs before and after the two identifications; their mean is the baseline (the machine is
shared and noisy; the ratios are what to read). Texts: the built-in gettext messages (UDHR
without gettext) of en, zh, vi, ``--texts`` per language, of which ``crane identify`` holds out
the last fifth (at least 4, at most 24) as validation texts; the bare pass reads the other four
fifths, as the identifications do. Budget 0.5 % (184 neurons per language on Gemma 3 270M).

    .venv/bin/python bench/identification_cost.py [--texts 40] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace

import torch
from _relevance import demo_corpus  # noqa: I001  (bench/ is not a package)
from _results import machine, write_section

from crane.collect import collect_relevance
from crane.identification import IdentifyOptions, identify_methods, split_for_verification
from crane.models.loading import load_model


def _bare_pass(loaded, fit, options) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    collect_relevance(
        loaded.model, loaded.tokenizer, fit, options=options.relevance, adapter=loaded.adapter
    )
    return time.perf_counter() - started


def _identify(loaded, corpus, options) -> tuple[float, dict]:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        result = identify_methods(loaded, corpus, ["crane"], options=options, out_dir=run_dir)
        seconds = time.perf_counter() - started
    return seconds, dict(result.reports.get("crane") or {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=40, help="texts per language (1/5 held out)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    loaded = load_model("gemma-3-270m")
    corpus = demo_corpus(args.texts)
    default = IdentifyOptions()
    demo = replace(default, rounds=1, ig_steps=0)
    fit, validation = split_for_verification(
        corpus, default.verify_fraction, default.verify_min_texts, default.verify_max_texts
    )
    bare = [_bare_pass(loaded, fit, default)]
    demo_s, demo_meta = _identify(loaded, corpus, demo)
    full_s, full_meta = _identify(loaded, corpus, default)
    bare.append(_bare_pass(loaded, fit, default))
    base = sum(bare) / len(bare)
    load_after = os.getloadavg()

    def passes(reports: dict) -> str:
        """Forward and backward passes of the construction, summed over languages."""
        total = {"relevance_passes": 0, "forward_passes": 0, "backward_passes": 0}
        for report in reports.values():
            row = report if isinstance(report, dict) else vars(report)
            for key in total:
                total[key] += int(row.get(key, 0) or 0)
        return " / ".join(str(v) for v in total.values())

    rows = [
        "| run | seconds | ratio to the bare pass | construction: relevance re-collections / masked evaluations / share backward passes (all languages) |",
        "|---|---:|---:|---:|",
        f"| bare relevance pass (mean of 2: {bare[0]:.1f}, {bare[1]:.1f}) | {base:.1f} | 1.00 | — |",
        f"| demo form (1 round, no shares or swaps) | {demo_s:.1f} | {demo_s / base:.2f} | "
        f"{passes(demo_meta)} |",
        f"| v2 default ({default.rounds} rounds, shares at {default.ig_steps} points on "
        f"{default.ig_texts} texts, swaps) | {full_s:.1f} | {full_s / base:.2f} | "
        f"{passes(full_meta)} |",
    ]
    n_fit = min(len(fit[lang]) for lang in fit.languages)
    n_val = min(len(validation[lang]) for lang in validation.languages)
    body = (
        f"Gemma 3 270M (float32, CPU), gettext texts of en, zh, vi: {n_fit} fit and {n_val} "
        f"validation texts per language, budget 0.5 %. Command: `.venv/bin/python "
        f"bench/identification_cost.py --texts {args.texts} --threads {args.threads}`. Machine: "
        f"{machine()}; load average (1, 5, 15 min) before "
        f"{', '.join(f'{x:.2f}' for x in load_before)}, after "
        f"{', '.join(f'{x:.2f}' for x in load_after)} on {os.cpu_count()} CPUs.\n\n"
        + "\n".join(rows)
        + f"\n\n**v2 default / bare pass = {full_s / base:.2f}×; demo form / bare pass = "
        f"{demo_s / base:.2f}×.**"
    )
    print(body)
    write_section("identification: v2 against one bare relevance pass", body)


if __name__ == "__main__":
    main()
