"""Find each language's neurons with CRANE and LAPE, mask them, and measure the damage.

    python examples/quickstart.py                      # Gemma 3 270M, about 3 minutes on 2 CPU cores
    python examples/quickstart.py --model ./my-model   # any local Hugging Face causal LM

Small on purpose (8 UDHR articles per language to identify, 3 held-out ones to evaluate); raise
--max-texts and --eval-texts for real numbers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import crane


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--languages", default="en,zh,vi")
    parser.add_argument("--max-texts", type=int, default=8, help="identification texts per language")
    parser.add_argument("--eval-texts", type=int, default=3, help="held-out texts per language")
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    args = parser.parse_args()

    model = crane.load_model(args.model)
    languages = args.languages.split(",")
    sets = crane.identify(
        model, languages, corpus="udhr", methods="crane,lape", budget="match:crane",
        max_texts=args.max_texts, out=args.out,
    )  # {method: NeuronSet}; rerunning reuses everything saved under --out
    for method, neuron_set in sets.items():
        print(method, {lang: neuron_set.size(lang) for lang in neuron_set.languages})

    matrix = crane.evaluate(model, sets, max_texts=args.eval_texts)  # held-out UDHR, bits/byte
    delta = matrix.delta()  # pandas: masked condition × evaluated language
    print(delta.round(3).to_string())
    delta.to_csv(args.out / "quickstart-delta.csv")
    print(f"wrote {args.out / 'quickstart-delta.csv'}")


if __name__ == "__main__":
    main()
