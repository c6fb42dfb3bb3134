"""The resumable shard engine shared by relevance (:mod:`crane.collect`) and activation
(:mod:`crane.activations`) collection.

Each language's texts (the leading ones within the token budget) are cut into fixed shards of
consecutive texts. A shard's statistics are computed by the caller's ``compute`` and saved
(safetensors + JSON sidecar, :meth:`crane.stats.Stats.save`) as soon as they are complete, so a
killed run resumes with the shards it has and ends with the same numbers. A shard may have
several files, told apart by a suffix: ``""`` is ``shard-NNNNN.safetensors``, ``s`` is
``shard-NNNNN.s.safetensors``. Under data parallelism each rank computes every
``world_size``-th shard.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from crane.data.batching import (
    Batch,
    TokenizedTexts,
    count_batches,
    iter_batches,
    pad_token_id,
    tokenize_texts,
)
from crane.data.corpus import Corpus
from crane.errors import ConfigError, LanguageError
from crane.models.identity import ModelIdentity
from crane.models.sites import ModelShape
from crane.progress import NullProgress, Progress
from crane.stats import LanguageStats, Stats, merge_all, read_sidecar

__all__ = [
    "ShardCompute",
    "ShardRun",
    "collection_meta",
    "merged_main",
    "run_collection",
    "run_shards",
    "shard_meta",
    "shard_path",
    "texts_within_budget",
]


# ---- token budget --------------------------------------------------------------------------
def texts_within_budget(
    tokenizer: Any, texts: Sequence[str], max_texts: int | None, max_tokens: int | None
) -> list[str]:
    """The leading texts that fit ``max_texts`` and ``max_tokens`` (deterministic); a first
    text longer than ``max_tokens`` alone is cut to a leading part that fits."""
    chosen = list(texts[:max_texts] if max_texts is not None else texts)
    if max_tokens is not None:
        counts = tokenize_texts(tokenizer, chosen, max_length=1 << 30).n_tokens
        kept, used = [], 0
        for text, n in zip(chosen, counts, strict=True):
            if kept and used + n > max_tokens:
                break
            if n > max_tokens:  # e.g. one huge line: keep its head, not the whole text
                head = _leading_part(tokenizer, text, n, max_tokens)
                kept.extend([head] if head else [])
                break
            kept.append(text)
            used += n
        chosen = kept
    return chosen


def _leading_part(tokenizer: Any, text: str, n_tokens: int, limit: int) -> str:
    """A leading part of ``text`` with at most ``limit`` tokens: cut in proportion to the
    token count, then again until it fits (each cut is strictly shorter)."""
    while n_tokens > limit and text:
        text = text[: len(text) * limit // n_tokens]
        n_tokens = tokenize_texts(tokenizer, [text], max_length=1 << 30).n_tokens[0]
    return text


def _digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def shard_meta(
    kind: str,
    options: Any,
    model_id: dict[str, Any],
    language: str,
    index: int,
    texts: Sequence[str],
) -> dict[str, Any]:
    """What a shard was computed from; a saved shard is reused only when this matches.
    Gradient checkpointing (option ``checkpoint``) saves memory, not what is computed: left out."""
    return {
        "kind": kind,
        "options": {k: v for k, v in asdict(options).items() if k != "checkpoint"},
        "model": ModelIdentity.of(model_id).key(),
        "language": language,
        "shard": index,
        "n_texts": len(texts),
        "texts_sha256": _digest(texts),
    }


# ---- the shard loop ------------------------------------------------------------------------
ShardCompute = Callable[[str, TokenizedTexts, Iterator[Batch]], dict[str, Stats]]
"""``compute(language, tokenized shard, batches) -> {suffix: Stats}``; suffix ``""`` is the
main file ``shard-NNNNN.safetensors``, any other suffix ``s`` goes to
``shard-NNNNN.s.safetensors``."""


def shard_path(out: Path, language: str, index: int, suffix: str = "") -> Path:
    """The file of shard ``index`` of ``language`` under ``out`` (``suffix`` as in
    :data:`ShardCompute`)."""
    dotted = f".{suffix}" if suffix else ""
    return out / language / f"shard-{index:05d}{dotted}.safetensors"


@dataclass(frozen=True)
class ShardRun:
    """Where a collection keeps its shards and how much it reads, as given to
    :func:`crane.collect.collect_relevance` and :func:`crane.activations.collect_activations`.

    Attributes:
        out_dir: directory of the shard files (``None``: compute everything, save nothing).
        model_id: provenance of the model (``LoadedModel.source``), recorded and matched.
        max_texts, max_tokens: per-language token budget (leading texts that fit).
        progress: progress sink; on_shard: called with (language, shard index) after each
            newly computed shard.
        rank: ``(rank, world_size)`` of a data-parallel process, ``None`` when alone.
    """

    out_dir: str | Path | None = None
    model_id: dict[str, Any] = field(default_factory=dict)
    max_texts: int | None = None
    max_tokens: int | None = None
    progress: Progress | None = None
    on_shard: Callable[[str, int], None] | None = None
    rank: tuple[int, int] | None = None


def run_shards(
    tokenizer: Any,
    corpus: Corpus,
    compute: ShardCompute,
    options: Any,
    run: ShardRun,
    *,
    shard_meta: Callable[[str, int, list[str]], dict[str, Any]],
    label: str,
    suffixes: Sequence[str] = ("",),
) -> dict[str, list[dict[str, Stats]]]:
    """Cut each language's texts into shards of ``options.shard_texts`` consecutive texts and
    compute (or reuse) every shard: language → shards in order → {suffix: Stats}. Windows and
    batches follow ``options.max_length``, ``batch_size`` and ``batch_tokens``.

    A saved shard is reused only when every one of its files (``suffixes``) has an intact
    sidecar whose meta equals ``shard_meta(language, index, texts)``; otherwise it is recomputed
    and saved (the sidecar is written last, so a killed run leaves no half shard that looks
    complete).

    ``run.rank=(rank, world_size)`` (data parallelism, :mod:`crane.distributed`): the shards of all
    languages are numbered in order (language by language) and this call handles only those
    whose number is ``rank`` modulo ``world_size``; the others are neither computed nor read,
    and the result holds only this rank's shards (possibly none for a language). The files are
    exactly those one process writes, so the ranks together leave the complete set.
    """
    progress = run.progress or NullProgress()
    pad_id = pad_token_id(tokenizer)
    out = Path(run.out_dir) if run.out_dir is not None else None
    shard_texts = options.shard_texts
    batch_size, batch_tokens = options.batch_size, options.batch_tokens

    plan: list[tuple[str, int, list[str]]] = []
    for lang in corpus.languages:
        texts = texts_within_budget(tokenizer, corpus[lang], run.max_texts, run.max_tokens)
        if not texts:
            raise LanguageError(
                f"Language '{lang}' has no texts within the budget; give more texts or raise "
                "--max-texts/--max-tokens."
            )
        for index, lo in enumerate(range(0, len(texts), shard_texts)):
            plan.append((lang, index, texts[lo : lo + shard_texts]))
    if run.rank is not None:
        own, world = run.rank
        if not 0 <= own < world:
            raise ConfigError(f"Rank {own} of {world} does not exist; use 0 ≤ rank < world.")
        plan = plan[own::world]

    todo = []
    saved: dict[tuple[str, int], dict[str, Stats]] = {}
    for lang, index, chunk in plan:
        meta = shard_meta(lang, index, chunk)
        expected = json.loads(json.dumps(meta, default=str))
        complete = out is not None and all(
            _matches(read_sidecar(shard_path(out, lang, index, suffix)), expected)
            for suffix in suffixes
        )
        shard = _sound_shard(out, lang, index, suffixes) if complete else None
        if shard is None:
            todo.append((lang, index, chunk, meta))
        else:
            saved[(lang, index)] = shard
    tokenized = {
        (lang, index): tokenize_texts(tokenizer, chunk, max_length=options.max_length)
        for lang, index, chunk, _meta in todo
    }
    total_batches = sum(
        count_batches(t, batch_size=batch_size, max_tokens=batch_tokens) for t in tokenized.values()
    )
    progress.start(label, total_batches)

    def batches(tok: TokenizedTexts) -> Iterator[Batch]:
        for batch in iter_batches(
            tok, batch_size=batch_size, pad_id=pad_id, max_tokens=batch_tokens
        ):
            yield batch
            progress.advance(1)

    fresh: dict[tuple[str, int], dict[str, Stats]] = {}
    for lang, index, _chunk, meta in todo:
        result = compute(lang, tokenized[(lang, index)], batches(tokenized[(lang, index)]))
        for suffix in suffixes:
            counts = {name: one.counts for name, one in result[suffix].languages.items()}
            result[suffix].meta = {**meta, COUNTS_KEY: _counts_digest(counts)}
        if out is not None:
            for suffix in sorted(suffixes, key=lambda s: s == ""):  # the main file last
                result[suffix].save(shard_path(out, lang, index, suffix))
        fresh[(lang, index)] = result
        if run.on_shard is not None:
            run.on_shard(lang, index)
    results: dict[str, list[dict[str, Stats]]] = {lang: [] for lang in corpus.languages}
    for lang, index, _chunk in plan:
        results[lang].append(fresh.get((lang, index)) or saved[(lang, index)])
    return results


COUNTS_KEY = "counts_sha256"
"""Shard meta key holding a hash of the sidecar's token counts: the file's hash covers its
tensors only, and an edited count would otherwise be read as computed."""


def _counts_digest(counts: Any) -> str:
    return hashlib.sha256(json.dumps(counts, sort_keys=True).encode("utf-8")).hexdigest()


def _matches(side: dict[str, Any] | None, expected: dict[str, Any]) -> bool:
    """Whether an intact sidecar was written for these inputs (``expected``) and its counts
    are those it was written with (a shard of an earlier version, without the counts hash,
    is recomputed once)."""
    if side is None or not isinstance(side.get("meta"), dict):
        return False
    meta = dict(side["meta"])
    digest = meta.pop(COUNTS_KEY, None)
    return meta == expected and digest == _counts_digest(side.get("counts"))


# ---- one collection call -------------------------------------------------------------------
def _sound_shard(
    out: Path | None, lang: str, index: int, suffixes: Sequence[str]
) -> dict[str, Stats] | None:
    """A saved shard's statistics when they can be used: readable, every number finite, every
    tensor of one neuron shape; ``None`` (recompute) otherwise — a file whose hash was
    recomputed over damaged numbers is redone, not read."""
    assert out is not None
    try:
        shard = {s: Stats.load(shard_path(out, lang, index, s)) for s in suffixes}
    except Exception:  # unreadable in any way: recompute
        return None
    shapes = set()
    for stats in shard.values():
        for language in stats.languages.values():
            for tensor in language.tensors.values():
                if tensor.dim() < 2 or not bool(torch.isfinite(tensor).all()):
                    return None
                shapes.add(tuple(tensor.shape[-2:]))
            if any(not isinstance(n, int) or n < 0 for n in language.counts.values()):
                return None
    return shard if len(shapes) <= 1 else None


def run_collection(
    kind: str,
    tokenizer: Any,
    corpus: Corpus,
    compute: ShardCompute,
    options: Any,
    run: ShardRun,
    *,
    label: str,
    suffixes: Sequence[str] = ("",),
) -> dict[str, list[dict[str, Stats]]]:
    """:func:`run_shards` with ``kind``'s :func:`shard_meta` and the shard and batch sizes of
    ``options``; languages with no shard on this rank are left out of the result."""
    results = run_shards(
        tokenizer,
        corpus,
        compute,
        options,
        run,
        shard_meta=lambda lang, index, chunk: shard_meta(
            kind, options, run.model_id, lang, index, chunk
        ),
        label=label,
        suffixes=suffixes,
    )
    return {lang: shards for lang, shards in results.items() if shards}


def merged_main(results: dict[str, list[dict[str, Stats]]]) -> dict[str, LanguageStats]:
    """Per language, the sum of its shards' main files (suffix ``""``), in shard order."""
    return {lang: merge_all(s[""] for s in shards)[lang] for lang, shards in results.items()}


def collection_meta(
    kind: str,
    options: Any,
    shape: ModelShape,
    corpus: Corpus,
    run: ShardRun,
    results: dict[str, list[dict[str, Stats]]],
    **extra: Any,
) -> dict[str, Any]:
    """The meta of a collection's merged statistics: what was computed, from what, in how many
    shards; ``extra`` entries follow the shard counts."""
    meta: dict[str, Any] = {
        "kind": kind,
        "options": asdict(options),
        "model": run.model_id,
        "n_layers": shape.n_layers,
        "d_ff": shape.d_ff,
        "corpus": corpus.provenance,
        "budget": {"max_texts": run.max_texts, "max_tokens": run.max_tokens},
        "shards": {lang: len(shards) for lang, shards in results.items()},
        **extra,
    }
    if run.rank is not None:
        meta["part"] = list(run.rank)  # the recorded key stays "part" (files read the same)
    return meta
