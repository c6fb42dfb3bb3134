"""The scoring head's log-normaliser: ``torch.logsumexp`` against the in-place version every
evaluation now uses (``crane.evaluation.bpb.log_normaliser_``), in one process, at Gemma 3
270M's shapes (hidden 640, vocabulary 262,144; a random head, nothing loaded).

Each variant computes the NLL of ``--positions`` gold tokens from their final hidden states:
the ``[positions, vocab]`` logits (one matmul), then log-sum-exp minus the gold logit. The
in-place version overwrites the logits instead of allocating a second ``[positions, vocab]``
tensor. The variants alternate (order swapped every repeat); medians are compared.

    python bench/head_normaliser.py [--positions 512] [--repeats 6] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from _results import machine, write_section  # noqa: I001  (bench/ is not a package)

from crane.evaluation.bpb import log_normaliser_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--positions", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    weight = torch.randn(262144, 640) * 0.02
    hidden = torch.randn(args.positions, 640)
    gold = torch.randint(0, 262144, (args.positions,))

    def allocating() -> torch.Tensor:
        logits = hidden @ weight.T
        return torch.logsumexp(logits, -1) - logits.gather(-1, gold[:, None])[:, 0]

    def in_place() -> torch.Tensor:
        logits = hidden @ weight.T
        target = logits.gather(-1, gold[:, None])[:, 0]
        return log_normaliser_(logits) - target

    gap = (allocating() - in_place()).abs().max().item()
    times: dict[str, list[float]] = {"logsumexp": [], "in place": []}
    for repeat in range(args.repeats):
        order = [("logsumexp", allocating), ("in place", in_place)]
        for name, run in order if repeat % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    before, after = (statistics.median(times[k]) for k in ("logsumexp", "in place"))
    body = (
        f"`python bench/head_normaliser.py --positions {args.positions} --repeats "
        f"{args.repeats} --threads {args.threads}` (a random head of Gemma 3's shape: hidden "
        f"640, vocabulary 262,144; {machine()}; load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs). NLL of "
        f"{args.positions} gold tokens from their hidden states, median of {args.repeats}: "
        f"`torch.logsumexp` {before:.2f} s, in place {after:.2f} s, **{before / after:.2f}×**; "
        f"largest difference {gap:.1e} nats."
    )
    print(body)
    write_section("scoring head: log-normaliser in place", body)


if __name__ == "__main__":
    main()
