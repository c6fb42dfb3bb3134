"""Why first-order relevance misses the damage of a set (issue 14): how far zeroing a set's
neurons is from the sum of first-order predictions, and from the sum of its members' own damage.

For the grid's unverified 0.5% sets of Chinese and Vietnamese (``contrast · logprob`` with
gradient × activation and with AttnLRP, and the activation contrast ``actmean``), on the
language's own *fit* texts (the texts the first-order statistics were collected on):

- the first-order prediction Σ_{n∈set} D_L(n) (gradient × activation of the log-probability:
  exactly the derivative of the loss along each neuron's scale);
- the measured change in bits per byte when the whole set is scaled by 1 − α, α ∈ {¼, ½, ¾, 1};
- 16 members (fixed seed) zeroed one at a time: their mean measured change and mean D, and the
  mean times the set size (what an additive model predicts for the set).

Reuses the statistics and sets of ``bench/selectivity_grid.py --texts 100`` (run it first).
Writes its section of ``bench/SELECTIVITY.md``; about 15 minutes on 2 CPU cores.

    .venv/bin/python bench/damage_additivity.py [--run-dir runs/selectivity-grid-100]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import selectivity_grid as grid
import torch
from _results import machine  # noqa: I001  (bench/ is not a package)

from crane.collect import RelevanceOptions, collect_relevance
from crane.masked_loss import LanguageTexts, scaled_site
from crane.masked_loss import bits_per_byte as masked_bits_per_byte
from crane.scoring.crane_score import per_byte

SCALES = (0.25, 0.5, 0.75, 1.0)
SINGLES = 16


def change(loaded, texts: LanguageTexts, base: float, flat: list[int], alpha: float) -> float:  # type: ignore[no-untyped-def]
    """Bits per byte with neurons ``flat`` scaled by 1 − ``alpha``, minus ``base``."""
    n_layers, d_ff = loaded.shape.n_layers, loaded.shape.d_ff
    factor = torch.ones(n_layers * d_ff)
    factor[torch.tensor(flat, dtype=torch.long)] = 1.0 - alpha
    with torch.no_grad(), scaled_site(loaded, "down_in", factor.view(n_layers, d_ff)):
        return float(masked_bits_per_byte(loaded, texts)) - base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=Path("runs") / "selectivity-grid-100")
    run_dir = parser.parse_args().run_dir
    started = time.perf_counter()
    loaded, fit, sets = grid.grid_sets(run_dir)
    stats = collect_relevance(
        loaded.model, loaded.tokenizer, fit,
        options=RelevanceOptions(method="gradxact", target="logprob"),
        out_dir=run_dir / "stats-gradxact-logprob", adapter=loaded.adapter,
        model_id=loaded.source,
    )
    damage = per_byte(stats, "rel_sum").flatten(1)  # D_L(n), bits per byte
    rows = []
    for lang in ("zh", "vi"):
        j = grid.LANGUAGES.index(lang)
        own = LanguageTexts(loaded, fit[lang], RelevanceOptions())
        with torch.no_grad():
            base = float(masked_bits_per_byte(loaded, own))
        for name in grid.DIAGNOSED:
            members = sorted(sets[name].flat(lang, loaded.shape.d_ff))
            curve = [change(loaded, own, base, members, a) for a in SCALES]
            sample = random.Random(0).sample(members, SINGLES)
            singles = [change(loaded, own, base, [n], 1.0) for n in sample]
            single_mean = sum(singles) / len(singles)
            additive = single_mean * len(members)
            rows.append(
                f"| {lang} | {name} | {float(damage[j, members].sum()):+.3f} | "
                + " | ".join(f"{c:+.3f}" for c in curve)
                + f" | {single_mean:+.5f} | {float(damage[j, sample].mean()):+.5f} | "
                f"{additive:+.3f} | "
                + (f"{curve[-1] / additive:.1f}× |" if additive > 0 else "— (additive ≤ 0) |")
            )
            print(rows[-1], flush=True)
    k = len(members)
    body = "\n".join(
        [
            f"`.venv/bin/python bench/damage_additivity.py --run-dir {run_dir}` on gemma-3-270m "
            f"({machine()}), "
            f"{time.perf_counter() - started:.0f} s. The grid's unverified sets ({k} neurons per "
            "language, 80 fit texts per language), measured on the language's own fit texts; "
            f"D from gradient × activation of the log-probability; {SINGLES} members zeroed one "
            "at a time (seed 0).",
            "",
            "| lang | set | Σ D (first order) | Δ at α = ¼ | ½ | ¾ | 1 (zeroed) "
            f"| mean single Δ | mean single D | {k} × mean single Δ | set Δ ÷ additive |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    grid.write("Why first-order relevance misses the damage of a set", body)
    print(body)


if __name__ == "__main__":
    main()
