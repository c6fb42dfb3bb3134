"""Run lm-evaluation-harness tasks with each language's neurons masked (needs the eval extra).

    python examples/lm_eval_udhr.py --neurons runs/quickstart/neurons-crane.json

Builds three small offline lm-eval tasks from the held-out UDHR articles that ship with crane
(bits per byte by loglikelihood_rolling), then runs them through lm-eval's own HF model with
nothing masked and with each language's neurons masked. Any lm-eval task works the same way:
pass its name and, for your own YAMLs, their folder as task_dir.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from crane.data.builtin import udhr_corpus
from crane.lm_eval_bridge import evaluate
from crane.neurons import NeuronSet


def write_tasks(folder: Path, texts_per_language: int) -> None:
    """One lm-eval task per language over local JSONL files (no download)."""
    folder.mkdir(parents=True, exist_ok=True)
    for lang, texts in udhr_corpus("heldout").take(texts_per_language).texts.items():
        data = (folder / f"udhr_{lang}.jsonl").resolve()
        data.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))
        (folder / f"udhr_{lang}.yaml").write_text(
            f"task: udhr_heldout_{lang}\n"
            "tag: udhr_heldout\n"
            "dataset_path: json\n"
            f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data))}\n"
            f"  cache_dir: {json.dumps(str(folder.resolve() / 'datasets-cache'))}\n"
            "test_split: test\n"
            "output_type: loglikelihood_rolling\n"
            'doc_to_text: ""\n'
            'doc_to_target: "{{text}}"\n'
            "metric_list:\n  - metric: bits_per_byte\n"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=Path, required=True, help="a neuron set file")
    parser.add_argument("--model", default=None, help="default: the model the set was found on")
    parser.add_argument("--texts", type=int, default=3, help="UDHR articles per language")
    parser.add_argument("--tasks-dir", type=Path, default=Path("runs/udhr-tasks"))
    args = parser.parse_args()

    model = args.model or NeuronSet.load(args.neurons).meta["model"]["spec"]
    write_tasks(args.tasks_dir, args.texts)
    for languages in ("none", *NeuronSet.load(args.neurons).languages):
        results = evaluate(
            model, None if languages == "none" else args.neurons,
            None if languages == "none" else languages, ["udhr_heldout"],
            task_dir=args.tasks_dir, include_default_tasks=False, batch_size=8, dtype="float32",
        )
        scores = {t: round(r["bits_per_byte,none"], 4) for t, r in results["results"].items()}
        print(f"masked {languages}: {scores}")


if __name__ == "__main__":
    main()
