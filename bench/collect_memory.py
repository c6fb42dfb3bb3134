"""Peak memory of relevance collection at two corpus sizes (it must not grow with the corpus).

Runs the collection pass on the demo model in two fresh processes, over N and 4N gettext texts
per language, and prints each process's peak resident memory and their ratio.

    .venv/bin/python bench/collect_memory.py [--method attnlrp|gradxact] [--texts 50]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = """
import json, resource, sys, time
from crane.collect import RelevanceOptions, collect_relevance
from crane.data.builtin import gettext_corpus
from crane.models.loading import load_model
loaded = load_model("gemma-3-270m")
corpus = gettext_corpus("identify").select(["en", "zh", "vi"])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
stats = collect_relevance(loaded.model, loaded.tokenizer, corpus,
                          options=RelevanceOptions(method=sys.argv[1]), max_texts=int(sys.argv[2]))
print(json.dumps({"texts": int(sys.argv[2]), "seconds": time.perf_counter() - t,
                  "tokens": sum(stats[l].counts["n_tokens"] for l in stats.language_codes),
                  "rss_after_load_mib": before / 1024,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", default="attnlrp")
    parser.add_argument("--texts", type=int, default=50)
    args = parser.parse_args()
    rows = []
    for n in (args.texts, 4 * args.texts):
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, args.method, str(n)],
            capture_output=True, text=True, check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["wall_seconds"] = time.perf_counter() - started
        rows.append(row)
        print(json.dumps(row))
    small, large = rows
    print(
        f"peak RSS {small['peak_rss_mib']:.0f} MiB at {small['texts']} texts/lang vs "
        f"{large['peak_rss_mib']:.0f} MiB at {large['texts']} texts/lang "
        f"(ratio {large['peak_rss_mib'] / small['peak_rss_mib']:.3f}; tokens ×"
        f"{large['tokens'] / small['tokens']:.2f})"
    )


if __name__ == "__main__":
    main()
