"""Causal verification: group testing against ablating the candidates one by one.

``crane identify`` verifies each language's top candidates by masking them in groups on
held-out texts (src/crane/verify.py): a group that hurts its own language more than the others
is kept, a failing one is split and retested, the set is refilled from the ranking. The
alternative is to ablate every candidate alone, one masked evaluation of every language's
held-out texts each. Counted: forward passes (batches) of both. Timed: the real group-testing
call (once: it takes minutes), and single-neuron ablations (the same evaluator, all languages
each) run before, between the group tests and after, whose median time is extrapolated to the
candidates one-by-one ablation would need — running them all would take well over an hour.

Setup close to ``crane demo``: Gemma 3 270M, gettext identification texts of en, zh, vi
(``--texts`` per language, default 80; the last fifth, 16, held out for verification, as
``crane identify`` splits them), crane scores (margin, AttnLRP relevance on
the first ``--collect-texts`` of the rest, not timed), budget 0.5 % (184 neurons per language),
``--tests`` group tests per language at most (8, as ``crane demo``; ``crane identify``'s default
is 24: ``--tests 24`` takes about twice as long and writes its own section). A language that
reaches the limit keeps its untested candidates as ranked (flagged in the report); one-by-one
testing would still ablate them, so the output says how many there were.

    .venv/bin/python bench/verification_passes.py [--texts 80] [--tests 8] [--singles 6] [--every 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from _relevance import demo_corpus, load_line  # noqa: I001  (bench/ is not a package)
from _results import machine, write_section

from crane.collect import collect_relevance
from crane.identification import IdentifyOptions, split_for_verification
from crane.methods import get_method
from crane.models.loading import load_model
from crane.progress import NullProgress
from crane.verify import VerifyOptions, _Evaluator, verify_candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=80, help="texts per language (1/5 held out)")
    parser.add_argument("--tests", type=int, default=8, help="group tests per language")
    parser.add_argument("--singles", type=int, default=6, help="single ablations timed")
    parser.add_argument("--every", type=int, default=4, help="a single ablation every N tests")
    parser.add_argument(
        "--collect-texts", type=int, default=40, help="texts per language for scores"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    loaded = load_model("gemma-3-270m")
    model, tokenizer, adapter = loaded.model, loaded.tokenizer, loaded.adapter
    ident = IdentifyOptions()
    corpus = demo_corpus(args.texts)
    collect, held_out = split_for_verification(
        corpus, ident.verify_fraction, ident.verify_min_texts, ident.verify_max_texts
    )
    stats = collect_relevance(
        model, tokenizer, collect.take(args.collect_texts), options=ident.relevance, adapter=adapter
    )
    scores = get_method("crane").score(
        stats,
        score=ident.score,
        quantile=ident.quantile,
        profile=ident.profile,
        normalize=ident.normalize,
    )
    options = VerifyOptions(max_tests=args.tests)
    d_ff = loaded.shape.d_ff
    languages = list(scores.values)
    candidates = {lang: scores.ranking(lang).tolist() for lang in languages}
    k = ident.budget.for_language(languages[0], loaded.shape.n_neurons)
    singles = [  # a spread of candidates, alternating languages: ranks 0, 37, 74, ...
        candidates[languages[i % len(languages)]][(i * 37) % k] for i in range(args.singles)
    ]

    evaluator = _Evaluator(model, tokenizer, held_out.select(languages), options, adapter)
    single_seconds: list[float] = []

    def single(neuron: int) -> float:
        started = time.perf_counter()
        evaluator.delta([neuron], d_ff)  # one masked evaluation of every language
        seconds = time.perf_counter() - started
        single_seconds.append(seconds)
        return seconds

    class Interleave(NullProgress):
        """Times a single-neuron ablation after every ``--every``-th group test (no mask is
        active then), so both are measured under the same load; their time is taken out of
        the group-testing time."""

        def __init__(self) -> None:
            self.tests, self.spent = 0, 0.0

        def advance(self, steps: int = 1) -> None:
            for _ in range(steps):
                self.tests += 1
                if self.tests % args.every == 0 and len(single_seconds) < len(singles):
                    self.spent += single(singles[len(single_seconds)])

    baseline_started = time.perf_counter()
    _Evaluator(model, tokenizer, held_out.select(languages), options, adapter)
    baseline_seconds = time.perf_counter() - baseline_started  # the unmasked evaluation
    single(singles[0])
    interleave = Interleave()
    started = time.perf_counter()
    _neurons, reports = verify_candidates(
        model,
        tokenizer,
        scores,
        ident.budget,
        held_out,
        options=options,
        adapter=adapter,
        progress=interleave,
    )
    group_seconds = time.perf_counter() - started - interleave.spent
    while len(single_seconds) < len(singles):
        single(singles[len(single_seconds)])

    per_eval = evaluator.passes_per_eval  # forward passes of one evaluation of every language
    group_passes = per_eval + sum(r.forward_passes for r in reports.values())  # + the baseline
    one_by_one_passes = per_eval + sum(r.one_by_one_forward_passes for r in reports.values())
    n_ablations = sum(r.one_by_one_forward_passes for r in reports.values()) // per_eval
    group_median = group_seconds
    single_median = statistics.median(single_seconds)
    one_by_one_seconds = baseline_seconds + n_ablations * single_median
    held = {lang: len(held_out[lang]) for lang in languages}
    lines = [
        f"Gemma 3 270M (float32, CPU); en, zh, vi; held-out verification texts per language "
        f"{held}; {per_eval} forward passes (batches) per evaluation of every language; budget "
        f"{reports[languages[0]].budget} neurons per language; {args.tests} group tests per "
        f"language at most (ratio {options.ratio}, {options.groups} groups). One group-testing run "
        f"(the real `verify_candidates` call; repeating it would exceed the 5-minute budget), with "
        f"{len(single_seconds)} single-neuron ablations timed before, between its tests (every "
        f"{args.every}th) and after; their median is extrapolated to the {n_ablations} ablations "
        "that one-by-one testing of the same candidates needs (not all run). "
        f"Machine: {machine()}; {load_line(load_before)}.",
        "",
        "| language | group tests | passed / failed groups | dropped, refilled, untested | "
        "forward passes (group testing) | forward passes (one by one) | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lang, r in reports.items():
        lines.append(
            f"| {lang} | {r.tests} | {r.passed_groups} / {r.failed_groups} | {r.dropped}, "
            f"{r.refilled}, {r.untested} | {r.forward_passes} | {r.one_by_one_forward_passes} | "
            f"{r.one_by_one_forward_passes / max(r.forward_passes, 1):.1f}× fewer |"
        )
    lines += [
        f"| all (+ one baseline evaluation) | {sum(r.tests for r in reports.values())} | | | "
        f"{group_passes} | {one_by_one_passes} | {one_by_one_passes / group_passes:.1f}× fewer |",
        "",
        "| | seconds | ratio |",
        "|---|---:|---:|",
        f"| group testing, all languages (measured) | {group_median:.1f} | 1.0 |",
        f"| one by one, all languages (extrapolated: baseline {baseline_seconds:.1f} s "
        f"+ {n_ablations} × {single_median:.2f} s) | {one_by_one_seconds:.0f} | "
        f"{one_by_one_seconds / group_median:.1f} |",
        "",
        f"Per forward pass: group testing {group_median / group_passes:.2f} s, single ablations "
        f"{single_median / per_eval:.2f} s (single ablations: "
        f"{', '.join(f'{x:.1f}' for x in single_seconds)} s).",
    ]
    untested = sum(r.untested for r in reports.values())
    if untested:
        lines.append(
            f"{untested} candidates were left untested when a language reached its "
            f"{args.tests}-test limit (kept as ranked, flagged in the report); the one-by-one "
            "count includes them. Counting only the candidates group testing did test "
            f"({n_ablations - untested}), one by one needs "
            f"{per_eval * (n_ablations - untested + 1)} forward passes: "
            f"{per_eval * (n_ablations - untested + 1) / group_passes:.1f}× more than group testing."
        )
    body = "\n".join(lines)
    print(body)
    name = f"causal verification: group testing vs one by one ({args.tests} tests per language)"
    print(f"wrote {write_section(name, body)}")


if __name__ == "__main__":
    main()
