"""Which set search: variants of the search's estimate and candidates, chosen on validation.

Setting of ``crane demo``: Gemma 3 270M, the first 100 gettext identification texts of en, zh,
vi (the last fifth, 20, are the validation texts), CRANE's AttnLRP relevance and the contrast
score on the rest, 184 neurons per language, every search started from CRANE's top-k. For
each variant (``--variants``, JSON objects of :class:`crane.search.SearchOptions` fields) and
language: validated Sel before and after, passes, trials, accepted, seconds; then the searched
set's Sel on the demo's evaluation texts (the first six held-out UDHR articles; point values,
read only after the choice was made on validation). The default variants are the ones
bench/SELECTIVITY.md reports.

    .venv/bin/python bench/search_variants.py [--run DIR] [--langs zh,vi]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from _results import machine, write_section  # noqa: I001  (bench/ is not a package)

DEFAULT_VARIANTS = [
    {"ig_steps": 2, "ig_texts": 8, "passes": 4, "pool": 2.0},
    {"ig_steps": 2, "ig_texts": 8, "passes": 8, "pool": 2.0, "candidates": "ranking"},
    {"ig_steps": 2, "ig_texts": 8, "passes": 8, "pool": 2.0, "candidates": "masked"},
    {"ig_steps": 0, "ig_texts": 24, "passes": 8, "pool": 2.0, "patience": 2},
    {"ig_steps": 2, "ig_texts": 24, "passes": 8, "pool": 2.0, "patience": 2},
    {"ig_steps": 2, "ig_texts": 8, "passes": 4, "pool": 8.0},
    {"ig_steps": 2, "ig_texts": 8, "passes": 4, "pool": 0.0},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="reuse this run's AttnLRP shards")
    parser.add_argument("--langs", default="zh,vi", help="languages whose sets are searched")
    parser.add_argument("--variants", default=json.dumps(DEFAULT_VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from crane.collect import RelevanceOptions
    from crane.data.builtin import gettext_corpus, load_corpus
    from crane.demo import demo_config
    from crane.identification.relevance import (
        _collection_split,
        _masked_rescore,
        _relevance_stats,
        collected_texts,
    )
    from crane.masked_loss import LanguageTexts, bits_per_byte, scaled_site
    from crane.methods import get_method
    from crane.models.loading import load_model
    from crane.neurons import NeuronSet
    from crane.progress import NullProgress
    from crane.search import SearchOptions, search_sets

    load_before = os.getloadavg()
    options = demo_config().identify_options()
    loaded = load_model("gemma-3-270m")
    corpus = gettext_corpus("identify").select(["en", "zh", "vi"]).take(100)
    fit, validation = _collection_split(corpus, options)
    stats = _relevance_stats(loaded, fit, options, args.run, NullProgress())
    scores = get_method("crane").score(stats, **options.score_options())
    k = options.budget.for_language("en", loaded.shape.n_neurons)
    langs = args.langs.split(",")
    starts = {lang: scores.ranking(lang)[:k].tolist() for lang in langs}
    rankings = {lang: scores.ranking(lang) for lang in langs}
    shape = (loaded.shape.n_layers, loaded.shape.d_ff)
    empty = NeuronSet({}, "down_in", *shape)
    rescore = _masked_rescore(loaded, "crane", empty, options)

    udhr = load_corpus("udhr", part="heldout", languages=["en", "zh", "vi"])
    evaluation = {
        e: LanguageTexts(loaded, udhr[e][:6], RelevanceOptions(target="logprob"))
        for e in ["en", "zh", "vi"]
    }
    with torch.no_grad():
        base = {e: float(bits_per_byte(loaded, t)) for e, t in evaluation.items()}

    def evaluation_sel(lang: str, members: list[int]) -> float:
        keep = torch.ones(shape[0] * shape[1])
        keep[torch.tensor(members, dtype=torch.long)] = 0.0
        with torch.no_grad(), scaled_site(loaded, "down_in", keep.view(*shape)):
            delta = {e: float(bits_per_byte(loaded, t)) - base[e] for e, t in evaluation.items()}
        others = [v for e, v in delta.items() if e != lang]
        return delta[lang] - sum(others) / len(others)

    rows = [
        "| variant | language | validated Sel start → final | passes / trials / accepted | "
        "stopped | seconds | evaluation Sel (6 UDHR articles) start → final |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for variant in json.loads(args.variants):
        search = SearchOptions(**variant).validate()
        started = time.perf_counter()
        members, reports = search_sets(
            loaded, starts, rankings, collected_texts(loaded, fit, options), validation,
            site="down_in", batching=options.relevance, options=search, method="crane",
            rescore=rescore,
        )
        seconds = time.perf_counter() - started
        for lang, r in reports.items():
            rows.append(
                f"| `{json.dumps(variant)}` | {lang} | {r.start_sel:+.2f} → {r.measured_sel:+.2f} "
                f"| {r.passes} / {r.trials} / {r.accepted} | {r.stopped} | {r.seconds:.0f} | "
                f"{evaluation_sel(lang, starts[lang]):+.2f} → "
                f"{evaluation_sel(lang, members[lang]):+.2f} |"
            )
        print("\n".join(rows[-len(reports):]), f"({seconds:.0f} s)", flush=True)
    body = (
        f"Command: `.venv/bin/python bench/search_variants.py --langs {args.langs}`. Machine: "
        f"{machine()}; load average before {', '.join(f'{x:.2f}' for x in load_before)}.\n\n"
        + "\n".join(rows)
    )
    print(body)
    write_section("set search: variants on the demo's validation texts", body)


if __name__ == "__main__":
    main()
