"""The reference optimum beside a finished study's sets, on the same evaluation texts.

Reads a study run (``crane run CONFIG --out RUN``) with its statistics shards, runs the
``optimise`` method on the study's fit texts at the size of its reference method's sets,
starting from ``--init``'s scores, and evaluates every set of the run and the optimised one on
the study's bits-per-byte texts: Sel with its 95% interval, every method's efficiency
Sel / Sel* and Sel − Sel* (paired, the same resamples), and the optimisation's report.
Nothing in RUN is changed; the optimised set and a JSON summary go to ``--out``.

    python bench/optimise_reference.py --run runs/selection-v2 --out runs/optimise-ref

(the run of ``examples/selection_v2.toml``; about 25 min on 2 CPU cores at 30 steps).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--init", default="gradxact", help="method whose scores start θ")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--texts", type=int, default=8, help="fit texts per language per step")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument(
        "--reuse", action="store_true",
        help="evaluate OUT/neurons-optimise.json from an earlier run instead of optimising again",
    )
    args = parser.parse_args()

    from crane.data.builtin import load_corpus, resolve_identification_corpus
    from crane.data.corpus import Corpus
    from crane.evaluation.benchmarks import BitsPerByteBenchmark
    from crane.evaluation.conditions import UNMASKED, run_conditions, set_conditions
    from crane.evaluation.metrics import matrix_metrics, paired_difference
    from crane.identification.relevance import _relevance_stats
    from crane.identification.run import _method_options, _shared_split
    from crane.methods import get_method
    from crane.models.loading import load_model
    from crane.neurons import NeuronSet
    from crane.optimise import OptimiseOptions, optimise_sets
    from crane.progress import NullProgress
    from crane.results import StudyResults
    from crane.scoring.budget import Budget
    from crane.shards import texts_within_budget
    from crane.study.config import StudyConfig

    results = StudyResults.load(args.run / "study.json")
    config = StudyConfig.from_dict(dict(results.config or {}))
    loaded = load_model(config.model, dtype=config.dtype, device=config.device)
    spec, _ = resolve_identification_corpus(config.identify_corpus, config.languages)
    corpus = load_corpus(spec, part="identify").select(config.languages)
    base = config.identify_options()
    fit, validation = _shared_split(corpus, base, config.methods, config.verify_methods)
    fit = Corpus(
        {
            lang: texts_within_budget(loaded.tokenizer, fit[lang], base.max_texts, None)
            for lang in fit.languages
        },
        dict(fit.provenance),
    )
    reference = NeuronSet.load(args.run / f"neurons-{results.reference_method}.json")
    budget = Budget(match={lang: reference.size(lang) for lang in reference.languages})
    options = OptimiseOptions(
        steps=args.steps, lr=args.lr, texts_per_step=args.texts, init=args.init, seed=config.seed
    )
    started = time.perf_counter()
    reports: dict = {}
    if args.reuse:
        optimised = NeuronSet.load(args.out / "neurons-optimise.json")
    else:
        stats = _relevance_stats(
            loaded, fit, _method_options(base, args.init, config.verify_methods), args.run,
            NullProgress(),
        )
        init = get_method(args.init).score(stats, **base.score_options())
        init.method = args.init
        optimised, reports = optimise_sets(
            loaded, fit, validation, init, budget=budget, site=config.site,
            batching=replace(base.relevance), options=options,
        )
        args.out.mkdir(parents=True, exist_ok=True)
        optimised.save(args.out / "neurons-optimise.json")
    seconds = time.perf_counter() - started

    sets = {m: NeuronSet.load(args.run / f"neurons-{m}.json") for m in results.methods}
    sets["optimise"] = optimised
    evaluation = load_corpus(config.bpb_corpus, part=config.bpb_part).select(config.languages)
    if config.bpb_max_texts:
        evaluation = evaluation.take(config.bpb_max_texts)
    benchmark = BitsPerByteBenchmark(
        loaded.model, loaded.tokenizer, evaluation, batch_size=config.eval_batch_size,
        batch_tokens=config.batch_tokens, max_length=config.max_length,
    )
    conditions = set_conditions(sets, config.languages, name="{set}:{lang}")
    cells = run_conditions(
        loaded.model, [UNMASKED, *conditions], [benchmark], languages=config.languages,
        adapter=loaded.adapter,
    )[benchmark.name]
    rows: dict[str, dict[str, str]] = {}
    for c in conditions:
        rows.setdefault(str(c.method), {})[str(c.masked)] = c.name
    out = matrix_metrics(
        {k: cell.units for k, cell in cells.items()}, rows, config.languages,
        n_boot=config.n_boot, seed=config.seed, keep_replicates=True,
    )
    reps = out["replicates"]
    summary: dict[str, object] = {
        "run": str(args.run), "init": args.init, "options": asdict(options),
        "optimise_seconds": seconds,
        "reports": {lang: asdict(r) for lang, r in reports.items()}, "methods": {},
    }
    print(f"optimise: {seconds:.0f} s; evaluation texts: {config.bpb_corpus} {config.bpb_part}")
    print("| method | language | Sel [95% CI] | efficiency Sel/Sel* [95% CI] | Sel − Sel* [95% CI] |")
    print("|---|---|---|---|---|")
    for method in sets:
        per: dict[str, object] = {}
        for lang in config.languages:
            m = out["metrics"][method].get(lang)
            if m is None:
                continue
            star = reps["optimise"][lang]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = reps[method][lang] / star
            lo, hi = (float(np.percentile(ratio[1:], q)) for q in (2.5, 97.5))
            diff = paired_difference(reps[method][lang], star)
            per[lang] = {
                "sel": m["sel"], "sel_ci": m["sel_ci"], "efficiency": float(ratio[0]),
                "efficiency_ci": [lo, hi], "minus_optimum": diff,
            }
            print(
                f"| {method} | {lang} | {m['sel']:.2f} [{m['sel_ci'][0]:.2f}, {m['sel_ci'][1]:.2f}]"
                f" | {ratio[0]:.2f} [{lo:.2f}, {hi:.2f}] | {diff['diff']:+.2f} "
                f"[{diff['ci'][0]:+.2f}, {diff['ci'][1]:+.2f}] |"
            )
        summary["methods"][method] = per  # type: ignore[index]
    for lang, r in reports.items():
        print(
            f"{lang}: kept {r.kept}, {r.changed} of {r.budget} neurons changed, fit Sel "
            f"{r.fit_sel_init:.2f} → {r.fit_sel_final:.2f}, validation Sel {r.measured_sel:.2f}, "
            f"{r.forward_passes} forward / {r.backward_passes} backward passes"
        )
    text = json.dumps(summary, indent=1, default=lambda v: None if v != v else str(v))
    (args.out / "summary.json").write_text(text + "\n", encoding="utf-8")
    assert all(math.isfinite(r.fit_sel_final) for r in reports.values())


if __name__ == "__main__":
    main()
