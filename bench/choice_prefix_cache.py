"""Multiple-choice scoring with the shared-prefix cache against the physical limit.

Goal (issue 15 item 1): scoring the options of a cloze test with the shared-prefix cache
(``prefix_cache=True``, each item's context run once and its KV cache reused for every option)
costs at most 1.3× one forward pass over the items' unique tokens. Three variants on the same
items, tokenized once beforehand (tokenizing is not timed), with the same batch limits:

(a) uncached: one sequence per (item, option), BOS + context + option (the old path);
(b) cached: the default path of ``crane.evaluation.choice``;
(c) the limit: one sequence per item, BOS + context + every option once, concatenated (each
    item's unique tokens, run once), with the output head at the same scored positions as (a)
    and (b) (an option's tokens; the sequence is no valid scoring, only the work it needs).

The three are timed twice (wall and CPU time of this process; on a shared machine the CPU
time is the steadier measure): as they run (the output head, 262k vocabulary rows, at every
scored option token: the same work in all three), and with the head replaced by a stub (body
only: the forward passes the cache changes). The items are ``cloze_set`` items from the
held-out gettext messages (UDHR paragraphs without gettext catalogs), ``--items`` per language
in en, zh, vi. In each repeat the variants alternate per language (order rotated); medians over
repeats are compared. (a) and (b) must agree within 1e-4 nats.

    .venv/bin/python bench/choice_prefix_cache.py [--items 100] [--repeats 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from crane.data.batching import (
    TokenizedTexts,
    Window,
    _order,
    _slices,
    count_batches,
    pad_token_id,
)
from crane.data.builtin import GettextUnavailable, load_corpus
from crane.evaluation import bpb, choice
from crane.evaluation.bpb import text_nats
from crane.evaluation.choice import (
    _count_batches,
    _plan,
    _prepare,
    _Prepared,
    _resolve_max_length,
    _score,
)
from crane.evaluation.cloze import cloze_set, udhr_paragraphs
from crane.models.loading import load_model
from crane.progress import NullProgress

from _results import machine, write_section  # noqa: I001  (bench/ is not a package)


def one_pass(prepared: _Prepared) -> TokenizedTexts:
    """(c): per item, BOS + context + all options concatenated; options' tokens predicted."""
    windows = []
    for g, group in enumerate(prepared.groups):
        ids = list(group.context)
        for option in group.options:
            ids += option
        windows.append(Window(g, ids, sum(len(o) for o in group.options)))
    n = len(prepared.groups)
    return TokenizedTexts(windows, [1] * n, [len(w.input_ids) for w in windows])


@contextlib.contextmanager
def head_stubbed(active: bool) -> Iterator[None]:
    """While active, scored positions cost nothing: the NLL helper returns zeros."""
    if not active:
        yield
        return

    def stub(model: object, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.zeros(hidden.shape[0], dtype=torch.float64)

    saved = (bpb._scored_nll, choice._scored_nll)
    bpb._scored_nll = choice._scored_nll = stub  # type: ignore[assignment]
    try:
        yield
    finally:
        bpb._scored_nll, choice._scored_nll = saved


def padded_tokens(model: torch.nn.Module, prepared: _Prepared, **limits: int) -> dict[str, int]:
    """Tokens each variant runs through the model body, padding included."""
    uncached = sum(
        (hi - lo) * max(len(prepared.tokenized.windows[i].input_ids) for i in order[lo:hi])
        for order in [_order(prepared.tokenized, True)]
        for lo, hi in _slices(prepared.tokenized, order, limits["batch_size"], limits["max_tokens"])
    )
    cached = 0
    for plan in _plan(prepared.groups, limits["batch_size"], limits["max_tokens"], 512):
        members = [prepared.groups[g] for g in plan.groups]
        cached += len(members) * max(len(m.context) for m in members)
        for chunk in plan.chunks:
            cached += len(chunk) * max(len(members[b].options[k]) for b, k in chunk)
    tok = one_pass(prepared)
    order = _order(tok, True)
    limit = sum(
        (hi - lo) * max(len(tok.windows[i].input_ids) for i in order[lo:hi])
        for lo, hi in _slices(tok, order, limits["batch_size"], limits["max_tokens"])
    )
    return {"a": uncached, "b": cached, "c": limit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100, help="cloze items per language")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batch-tokens", type=int, default=1024)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    loaded = load_model("gemma-3-270m")
    model, tokenizer = loaded.model, loaded.tokenizer
    try:
        corpus = load_corpus("gettext", part="heldout")
        source = "held-out gettext messages"
    except GettextUnavailable:
        corpus = udhr_paragraphs("all")
        source = "UDHR paragraphs (no gettext catalogs on this machine)"
    languages = ["en", "zh", "vi"]
    choice_set = cloze_set(corpus.select(languages), n_items=args.items, seed=0)
    window = _resolve_max_length(model, None)
    prepared = {
        lang: _prepare(tokenizer, choice_set[lang], "continuation", lang, window)
        for lang in languages
    }
    limit = {lang: one_pass(p) for lang, p in prepared.items()}
    pad = pad_token_id(tokenizer)
    limits = {"batch_size": args.batch_size, "max_tokens": args.batch_tokens}
    quiet = NullProgress()

    def scores(lang: str, prefix_cache: bool) -> np.ndarray:
        result = _score(
            model, prepared[lang], pad_id=pad, progress=quiet, prefix_cache=prefix_cache, **limits
        )
        return result.loglik

    names = [
        "(a) uncached: one sequence per option",
        "(b) cached: context once, KV cache per option",
        "(c) one pass over the unique tokens",
    ]
    variants: dict[str, Callable[[str], object]] = {
        names[0]: lambda lang: scores(lang, False),
        names[1]: lambda lang: scores(lang, True),
        names[2]: lambda lang: text_nats(model, limit[lang], pad_id=pad, progress=quiet, **limits),
    }
    # warm-up, and the agreement check
    diff = 0.0
    for lang in languages:
        uncached, cached = scores(lang, False), scores(lang, True)
        finite = np.isfinite(uncached)
        diff = max(diff, float(np.abs(cached - uncached)[finite].max()))

    def timed(stub_head: bool) -> tuple[dict[str, float], dict[str, float]]:
        """Median over repeats of (wall s, CPU s) per variant; the variants alternate per
        language (order rotated), so the machine's load falls on all of them alike."""
        wall: dict[str, list[float]] = {name: [0.0] * args.repeats for name in names}
        cpu: dict[str, list[float]] = {name: [0.0] * args.repeats for name in names}
        step = 0
        with head_stubbed(stub_head), torch.no_grad():
            for r in range(args.repeats):
                for lang in languages:
                    for name in names[step % 3 :] + names[: step % 3]:
                        started, started_cpu = time.perf_counter(), time.process_time()
                        variants[name](lang)
                        wall[name][r] += time.perf_counter() - started
                        cpu[name][r] += time.process_time() - started_cpu
                    step += 1
        return (
            {name: statistics.median(t) for name, t in wall.items()},
            {name: statistics.median(t) for name, t in cpu.items()},
        )

    load_before = os.getloadavg()
    median, median_cpu = timed(False)
    body_only, body_cpu = timed(True)
    load_after = os.getloadavg()

    n_items = sum(len(p.groups) for p in prepared.values())
    n_options = sum(len(g.options) for p in prepared.values() for g in p.groups)
    unique = sum(len(w.input_ids) for tok in limit.values() for w in tok.windows)
    scored = sum(int(p.n_tokens.sum()) for p in prepared.values())
    padded = {"a": 0, "b": 0, "c": 0}
    for p in prepared.values():
        for key, n in padded_tokens(model, p, **limits).items():
            padded[key] += n
    batches = {
        names[0]: sum(count_batches(p.tokenized, **limits) for p in prepared.values()),
        names[1]: sum(
            _count_batches(model, p, prefix_cache=True, **limits) for p in prepared.values()
        ),
        names[2]: sum(count_batches(tok, **limits) for tok in limit.values()),
    }
    command = ".venv/bin/python bench/choice_prefix_cache.py " + " ".join(sys.argv[1:])

    def ratios(table: dict[str, float]) -> tuple[float, float]:
        a, b, c = (table[name] for name in names)
        return b / c, a / b

    lines = [
        f"Gemma 3 270M ({str(loaded.model.dtype).removeprefix('torch.')}, CPU), `cloze_set` "
        f"items from the {source}: {args.items} per language (en, zh, vi), {n_items} items, "
        f"{n_options} options, {scored} scored option tokens, {unique} unique tokens (BOS + "
        f"context once + each option once). Batches of ≤ {args.batch_size} rows and "
        f"≤ {args.batch_tokens} padded tokens. Median over {args.repeats} repeats; in each, the "
        f"three variants alternate per language (order rotated). Largest |Δ log-likelihood| "
        f"between (a) and (b): {diff:.1e} nats. Command: `{command.strip()}`. Machine: "
        f"{machine()}; load average (1, 5, 15 min) before "
        f"{', '.join(f'{x:.2f}' for x in load_before)}, after "
        f"{', '.join(f'{x:.2f}' for x in load_after)} on {os.cpu_count()} CPUs.",
        "",
        "| variant | forward passes | padded tokens (body) | wall s | ratio to (c) | CPU s | "
        "ratio to (c) | body only: wall s | ratio to (c) | CPU s | ratio to (c) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    c_ = {k: t[names[2]] for k, t in
          {"w": median, "p": median_cpu, "bw": body_only, "bp": body_cpu}.items()}
    for name, key in zip(names, "abc", strict=True):
        lines.append(
            f"| {name} | {batches[name]} | {padded[key]} | {median[name]:.1f} | "
            f"{median[name] / c_['w']:.3f} | {median_cpu[name]:.1f} | "
            f"{median_cpu[name] / c_['p']:.3f} | {body_only[name]:.1f} | "
            f"{body_only[name] / c_['bw']:.3f} | {body_cpu[name]:.1f} | "
            f"{body_cpu[name] / c_['bp']:.3f} |"
        )
    (bc, ab), (bc_cpu, ab_cpu) = ratios(median), ratios(median_cpu)
    (bc0, ab0), (bc0_cpu, ab0_cpu) = ratios(body_only), ratios(body_cpu)
    lines += [
        "",
        f"**(b)/(c) = {bc:.3f}** wall, {bc_cpu:.3f} CPU (goal ≤ 1.3); **(a)/(b) = {ab:.2f}×** "
        f"wall, {ab_cpu:.2f}× CPU (the cache's speed-up). Body only (the output head at the "
        f"scored positions, the same work in all three, stubbed out): (b)/(c) = {bc0:.3f} wall, "
        f"{bc0_cpu:.3f} CPU; (a)/(b) = {ab0:.2f}× wall, {ab0_cpu:.2f}× CPU.",
    ]
    body = "\n".join(lines)
    print(body)
    print(f"wrote {write_section('multiple choice: shared-prefix cache vs one pass', body)}")
    if diff > 1e-4:
        raise SystemExit(f"cached and uncached scores differ by {diff:.1e} nats (> 1e-4)")


if __name__ == "__main__":
    main()
