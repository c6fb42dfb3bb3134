"""Do a set's neurons fire together? (issue 14: why the activation contrast's sets interact.)

For the grid's unverified 0.5% sets of Chinese and Vietnamese (``contrast · logprob`` with
gradient × activation and with AttnLRP, and the activation contrast ``actmean``), read the
members' values at the neuron site (the down projection's input) on every token of the
language's own fit texts and report:

- the mean pairwise Pearson correlation of the members over tokens (signed, and of |·|);
- the share of the members' variance on the first principal component (after standardising),
  i.e. how much of the set moves as one direction.

Neurons that carry the same signal back each other up when one is zeroed, so a set whose
members correlate strongly should cost much more zeroed together than one by one
(``bench/damage_additivity.py`` measures that). Reuses the grid's statistics and sets
(``bench/selectivity_grid.py --texts 100``); a few minutes on 2 CPU cores.

    .venv/bin/python bench/set_cofiring.py [--run-dir runs/selectivity-grid-100]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import selectivity_grid as grid
import torch
from _results import machine  # noqa: I001  (bench/ is not a package)

from crane.models.sites import site_hooks


@torch.no_grad()
def member_values(loaded, texts: list[str], members: list[int]) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """``[tokens, |set|]`` site values of the members over every token of ``texts``."""
    d_ff = loaded.shape.d_ff
    by_layer: dict[int, list[int]] = {}
    for flat in members:
        by_layer.setdefault(flat // d_ff, []).append(flat % d_ff)
    order = [layer * d_ff + j for layer in sorted(by_layer) for j in by_layer[layer]]
    rows: list[torch.Tensor] = []
    for text in texts:
        seen: dict[int, torch.Tensor] = {}

        def read(layer: int, x: torch.Tensor, seen: dict[int, torch.Tensor] = seen) -> None:
            seen[layer] = x[0, :, by_layer[layer]].double().cpu()

        ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"]
        with site_hooks(loaded.model, loaded.adapter, "down_in", read, layers=sorted(by_layer)):
            loaded.model(input_ids=ids)
        rows.append(torch.cat([seen[layer] for layer in sorted(by_layer)], dim=1))
    values = torch.cat(rows)
    index = {flat: i for i, flat in enumerate(order)}
    return values[:, [index[flat] for flat in members]]


def cofiring(values: torch.Tensor) -> tuple[float, float, float]:
    """Mean off-diagonal correlation (signed, and of absolute values) and the first principal
    component's share of the standardised variance."""
    def mean_corr(x: torch.Tensor) -> float:
        c = torch.corrcoef(x.T).nan_to_num(0.0)
        n = c.shape[0]
        return float((c.sum() - c.diagonal().sum()) / (n * (n - 1)))

    z = (values - values.mean(0)) / values.std(0).clamp_min(1e-12)
    eig = torch.linalg.eigvalsh(z.T @ z / (z.shape[0] - 1))
    return mean_corr(values), mean_corr(values.abs()), float(eig[-1] / eig.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=Path("runs") / "selectivity-grid-100")
    run_dir = parser.parse_args().run_dir
    started = time.perf_counter()
    loaded, fit, sets = grid.grid_sets(run_dir)
    rows = []
    for lang in ("zh", "vi"):
        for name in grid.DIAGNOSED:
            members = sorted(sets[name].flat(lang, loaded.shape.d_ff))
            values = member_values(loaded, fit[lang], members)
            signed, absolute, first = cofiring(values)
            rows.append(
                f"| {lang} | {name} | {values.shape[0]} | {signed:+.3f} | {absolute:+.3f} | "
                f"{first:.3f} |"
            )
            print(rows[-1], flush=True)
    body = "\n".join(
        [
            f"`.venv/bin/python bench/set_cofiring.py --run-dir {run_dir}` on gemma-3-270m "
            f"({machine()}), {time.perf_counter() - started:.0f} s. The grid's unverified sets "
            f"({len(members)} neurons per language), read on every token of the language's own "
            "fit texts (the down projection's input).",
            "",
            "| lang | set | tokens | mean pairwise correlation | of \\|values\\| "
            "| first component's share |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    grid.write("Do a set's neurons fire together?", body)
    print(body)


if __name__ == "__main__":
    main()
