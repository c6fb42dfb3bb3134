"""Apply the neuron sets found on a base model to its chat version (base → chat transfer).

    python examples/transfer_to_chat.py --neurons runs/quickstart --chat ./gemma-3-270m-it

Prints, per language, the transfer ratio T = Δ(chat) / Δ(base) of the language's own damage,
the selectivity in both models and, with --chat-run, the Jaccard overlap with the chat model's
own sets. The chat model reads each text as its reply inside its chat template (the template's
tokens are read, never scored); --plain turns that off.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import crane


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=Path, required=True, help="run directory or set file")
    parser.add_argument("--chat", required=True, help="the chat/instruct model (same shape)")
    parser.add_argument("--base", default=None, help="default: the model the set was found on")
    parser.add_argument("--chat-run", type=Path, default=None, help="the chat model's own run")
    parser.add_argument("--method", default="crane")
    parser.add_argument("--eval-texts", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="no chat template")
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON")
    args = parser.parse_args()

    def set_file(path: Path) -> Path:
        return path / f"neurons-{args.method}.json" if path.is_dir() else path

    neurons = crane.NeuronSet.load(set_file(args.neurons))
    own = crane.NeuronSet.load(set_file(args.chat_run)) if args.chat_run else None
    base = args.base or neurons.meta["model"]["spec"]
    result = crane.transfer(
        neurons, base, args.chat, own_set_b=own, max_texts=args.eval_texts,
        chat_template="none" if args.plain else "b",
    )
    for lang in result.languages:
        line = f"{lang}: T = {result.ratio[lang]:.3f}  Sel base {result.sel_a[lang]:+.3f}"
        line += f"  Sel chat {result.sel_b[lang]:+.3f}"
        if lang in result.jaccard:
            line += f"  Jaccard {result.jaccard[lang]:.3f}"
        print(line)
    if args.out:
        args.out.write_text(json.dumps(result.to_dict(), indent=1, default=str) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
