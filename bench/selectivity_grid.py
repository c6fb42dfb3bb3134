"""Which choice of CRANE's selection costs selectivity (issue 14, item 1): the grid.

Unverified sets at one budget (default 0.5% of all neurons per language) from every
{score} × {explained quantity} × {relevance rules} combination, beside the activation
contrast (actmean), LAPE and a layer-matched random control, all fitted on the same
identification texts. Each set's selectivity Sel_L = Δ_L(L) − mean_{E≠L} Δ_L(E) (bits per
byte, with a 95% paired bootstrap interval over texts) is measured twice:

- on the **validation** split (the last 20% of the identification texts of each language,
  never fitted on): the only numbers a default may be chosen on;
- on the **UDHR** held-out articles 16-30 (evaluation texts): reported, never used to choose.

Scores: ``margin`` (v1: z-scored signed profiles, 0.95 quantile), ``margin-exposure`` (v1 on
per-position |e| profiles), ``contrast``, ``effect`` and ``fisher`` (v2, bits per byte, λ = 1,
z = 2).
Quantities: ``logit`` (gold logits) and ``logprob``. Rules: ``attnlrp`` and ``gradxact``.

Statistics, sets and evaluated rows are cached under ``--run-dir`` (reruns resume). Writes
its section of ``bench/SELECTIVITY.md`` (one section per identification size).

    .venv/bin/python bench/selectivity_grid.py [--texts 100] [--budget 0.005] [--udhr-texts 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from _results import machine  # noqa: I001  (bench/ is not a package)

from crane.activations import ActivationOptions, collect_activations
from crane.collect import RelevanceOptions, collect_relevance
from crane.data.builtin import load_corpus, resolve_identification_corpus
from crane.evaluation.benchmarks import BitsPerByteBenchmark, Labels
from crane.evaluation.conditions import UNMASKED, RowCache, run_conditions, set_conditions
from crane.evaluation.metrics import matrix_metrics, paired_difference
from crane.identification import split_for_verification
from crane.methods import get_method
from crane.models.loading import load_model
from crane.neurons import NeuronSet
from crane.scoring import Budget

LANGUAGES = ["en", "zh", "vi"]
SCORES: dict[str, dict[str, Any]] = {
    "margin": {"score": "margin", "profile": "signed"},
    "margin-exposure": {"score": "margin", "profile": "exposure"},
    "contrast": {"score": "contrast"},
    "effect": {"score": "effect"},
    "fisher": {"score": "fisher"},
}
RULES = ("attnlrp", "gradxact")
TARGETS = ("logit", "logprob")
SELECTIVITY = Path(__file__).with_name("SELECTIVITY.md")
BASELINES = ("actmean", "lape")


def build_sets(loaded: Any, fit: Any, run_dir: Path, budget: Budget) -> dict[str, NeuronSet]:
    """Every grid set plus actmean, LAPE and the random control, fitted on ``fit``."""
    sets: dict[str, NeuronSet] = {}
    crane = get_method("crane")
    common = dict(adapter=loaded.adapter, model_id=loaded.source)
    for rules in RULES:
        for target in TARGETS:
            options = RelevanceOptions(method=rules, target=target)
            started = time.perf_counter()
            stats = collect_relevance(
                loaded.model, loaded.tokenizer, fit, options=options,
                out_dir=run_dir / f"stats-{rules}-{target}", **common,
            )
            print(f"relevance {rules}/{target}: {time.perf_counter() - started:.0f} s", flush=True)
            for label, score in SCORES.items():
                chosen = crane.select(stats, budget=budget, site="down_in", options=score)
                sets[f"{label} · {target} · {rules}"] = chosen
    act = collect_activations(
        loaded.model, loaded.tokenizer, fit, options=ActivationOptions(),
        out_dir=run_dir / "activations", **common,
    )
    for name in ("actmean", "lape"):
        sets[name] = get_method(name).select(act, budget=budget, site="down_in")
    sets["random"] = sets["actmean"].random_like(seed=0, d_ff=loaded.shape.d_ff)
    return sets


DIAGNOSED = ("contrast · logprob · gradxact", "contrast · logprob · attnlrp", "actmean")
"""The sets the grid's diagnostics look into (bench/damage_additivity.py, bench/set_cofiring.py)."""


def grid_sets(run_dir: Path, texts: int = 100, model: str = "gemma-3-270m") -> tuple[Any, Any, Any]:
    """The model, the grid's fit texts and its sets at 0.5%, rebuilt from the statistics cached
    under ``run_dir`` by an earlier ``--texts`` run (for the diagnostics)."""
    loaded = load_model(model)
    spec, _ = resolve_identification_corpus("auto")
    corpus = load_corpus(spec, part="identify").select(LANGUAGES).take(texts)
    fit, _validation = split_for_verification(corpus, 0.2, 4, 10**9)
    return loaded, fit, build_sets(loaded, fit, run_dir, Budget(fraction=0.005))


def selectivity(
    loaded: Any, sets: dict[str, NeuronSet], corpus: Any, cache: Path, name: str, n_boot: int
) -> dict[str, dict[str, Any]]:
    """Sel per set and language with its interval, on ``corpus`` (rows cached in ``cache``)."""
    benchmark = BitsPerByteBenchmark(
        loaded.model, loaded.tokenizer, corpus, labels=Labels(name, name, "bits/byte", False)
    )
    conditions = set_conditions(sets, LANGUAGES, name="{set}:{lang}")
    cells = run_conditions(
        loaded.model, [UNMASKED, *conditions], [benchmark], languages=LANGUAGES,
        adapter=loaded.adapter,
        cache=RowCache(cache, {"model": loaded.identity.key(), "languages": LANGUAGES}),
    )[name]
    rows = {s: {lang: f"{s}:{lang}" for lang in LANGUAGES} for s in sets}
    out = matrix_metrics(
        {k: c.units for k, c in cells.items()}, rows, LANGUAGES, n_boot=n_boot, seed=0,
        keep_replicates=True,
    )
    metrics = out["metrics"]
    for name in sets:  # Sel(set) − Sel(each activation baseline), paired over the resamples
        for lang in LANGUAGES:
            metrics[name][lang]["vs"] = {
                base: paired_difference(
                    out["replicates"][name][lang], out["replicates"][base][lang]
                )
                for base in BASELINES
            }
    return metrics


def _cell(metric: dict[str, Any]) -> str:
    low, high = metric["sel_ci"]
    return f"{metric['sel']:+.2f} [{low:+.2f}, {high:+.2f}]"


def table(sets: list[str], val: dict[str, Any], udhr: dict[str, Any]) -> str:
    head = "| set (score · target · rules) | " + " | ".join(
        f"Sel {lang} (validation)" for lang in LANGUAGES
    ) + " | " + " | ".join(f"Sel {lang} (UDHR)" for lang in LANGUAGES) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(LANGUAGES))]
    for s in sets:
        cells = [_cell(val[s][lang]) for lang in LANGUAGES] + [
            _cell(udhr[s][lang]) for lang in LANGUAGES
        ]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _diff(entry: dict[str, Any]) -> str:
    low, high = entry["ci"]
    mark = " ✓" if low > 0 else (" ✗" if high < 0 else "")
    return f"{entry['diff']:+.2f} [{low:+.2f}, {high:+.2f}]{mark}"


def paired_table(sets: list[str], results: dict[str, Any], base: str) -> str:
    """Sel(set) − Sel(base) per language with the paired 95% interval (✓: above 0)."""
    lines = [
        "| set | " + " | ".join(f"{lang}: Sel − Sel({base})" for lang in LANGUAGES) + " |",
        "|" + "---|" * (1 + len(LANGUAGES)),
    ]
    for s in sets:
        cells = [_diff(results[s][lang]["vs"][base]) for lang in LANGUAGES]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def best_on_validation(val: dict[str, Any], candidates: list[str]) -> tuple[str, float]:
    """The candidate with the largest mean validation Sel over the languages."""
    means = {s: float(np.mean([val[s][lang]["sel"] for lang in LANGUAGES])) for s in candidates}
    best = max(means, key=lambda s: means[s])
    return best, means[best]


def write(section: str, body: str) -> None:
    text = SELECTIVITY.read_text(encoding="utf-8") if SELECTIVITY.exists() else (
        "# Selectivity grid (issue 14)\n\nWritten by `bench/selectivity_grid.py`, one section "
        "per identification size. Sel in bits per byte with 95% paired bootstrap intervals over "
        "texts; a default is chosen on the validation columns only.\n"
    )
    marker_open, marker_close = f"<!-- {section} -->", f"<!-- /{section} -->"
    block = f"{marker_open}\n## {section}\n\n{body.strip()}\n{marker_close}\n"
    if marker_open in text:
        start = text.index(marker_open)
        end = text.index(marker_close) + len(marker_close) + 1
        text = text[:start] + block + text[end:]
    else:
        text += "\n" + block
    SELECTIVITY.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--texts", type=int, default=100, help="identification texts per language")
    parser.add_argument("--budget", type=float, default=0.005, help="fraction of all neurons")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument(
        "--udhr-texts", type=int, default=5,
        help="held-out UDHR articles per language (all 15 cost about an hour on 2 CPU cores)",
    )
    args = parser.parse_args()

    started = time.perf_counter()
    loaded = load_model(args.model)
    spec, note = resolve_identification_corpus("auto")
    texts = load_corpus(spec, part="identify").select(LANGUAGES).take(args.texts)
    fit, validation = split_for_verification(texts, 0.2, 4, 10**9)
    run_dir = args.run_dir or Path("runs") / f"selectivity-grid-{args.texts}"
    budget = Budget(fraction=args.budget)
    sets = build_sets(loaded, fit, run_dir, budget)
    val = selectivity(loaded, sets, validation, run_dir / "eval", "validation", args.n_boot)
    udhr_texts = load_corpus("udhr", part="heldout").select(LANGUAGES).take(args.udhr_texts)
    udhr = selectivity(loaded, sets, udhr_texts, run_dir / "eval", "udhr", args.n_boot)
    relevance_sets = [s for s in sets if "·" in s]
    best, mean_sel = best_on_validation(val, relevance_sets)
    (run_dir / "grid.json").write_text(json.dumps({"validation": val, "udhr": udhr}, indent=1))
    size = {lang: len(fit[lang]) for lang in LANGUAGES}
    held = {lang: len(validation[lang]) for lang in LANGUAGES}
    k = budget.for_language("en", loaded.shape.n_neurons)
    body = "\n".join(
        [
            f"`.venv/bin/python bench/selectivity_grid.py --texts {args.texts}` on "
            f"{loaded.source.get('spec')} ({machine()}), {time.perf_counter() - started:.0f} s "
            "in this invocation (statistics and rows cached by earlier ones are reused).",
            "",
            f"Identification corpus: {spec} ({note or 'as asked'}), the first {args.texts} texts "
            f"per language: fitted on {size}, validation {held} (the last 20%). "
            f"{k} neurons per language ({args.budget:.1%}), unverified. UDHR: the first "
            f"{args.udhr_texts} held-out articles (16-30) per language.",
            "",
            table(list(sets), val, udhr),
            "",
            "Paired differences against the activation contrast (✓: the interval lies above 0), "
            "validation texts:",
            "",
            paired_table(relevance_sets, val, "actmean"),
            "",
            "The same on UDHR (reported, never used to choose):",
            "",
            paired_table(relevance_sets, udhr, "actmean"),
            "",
            f"Best relevance set on validation (mean Sel over en, zh, vi): **{best}** "
            f"({mean_sel:+.2f} bits/byte).",
        ]
    )
    write(f"{args.texts} identification texts per language", body)
    print(body)


if __name__ == "__main__":
    main()
