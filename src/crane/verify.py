"""Causal verification by group testing (METHOD.md "targeted neuron-level interventions").

The top candidates of each language are masked in groups on held-out identification texts. A
group passes when masking it raises the language's own bits per byte, and by more than
``ratio`` times the mean rise of the other languages. A failing group is split in two and
both halves are retested; a failing group of at most ``min_group`` neurons is dropped, and the
set is refilled from the ranking (the refill is tested the same way). Every test is one masked
evaluation of each language's verification texts, so the cost is counted in forward passes
and compared with ablating the candidates one by one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from crane.data.batching import TokenizedTexts, count_batches, pad_token_id, tokenize_texts
from crane.data.corpus import Corpus
from crane.errors import ConfigError
from crane.evaluation.bpb import text_nats
from crane.faults import checkpoint
from crane.intervene import mask_neurons
from crane.models.adapters import Adapter, get_adapter
from crane.neurons import NeuronSet
from crane.progress import NullProgress, Progress
from crane.scoring.base import Scores, to_layer_indices
from crane.scoring.budget import Budget


@dataclass(frozen=True)
class VerifyOptions:
    """Group-testing parameters (recorded in the neuron set's provenance)."""

    groups: int = 4
    min_group: int = 0  # 0: max(1, k // 16)
    ratio: float = 1.0
    max_tests: int = 24  # per language
    max_length: int = 128
    batch_size: int = 64
    batch_tokens: int = 1024

    def validate(self) -> VerifyOptions:
        if self.groups < 1 or self.max_tests < 1 or self.min_group < 0 or self.ratio < 0:
            raise ConfigError(
                "Verification needs groups >= 1, max_tests >= 1, min_group >= 0 and ratio >= 0."
            )
        return self


@dataclass
class LanguageReport:
    """What verification did for one language."""

    budget: int
    tests: int = 0
    forward_passes: int = 0
    passed_groups: int = 0
    failed_groups: int = 0
    dropped: int = 0
    refilled: int = 0
    untested: int = 0
    one_by_one_forward_passes: int = 0
    delta_of_final_set: dict[str, float] = field(default_factory=dict)


class _Evaluator:
    """Bits per byte of every language's verification texts under a mask."""

    def __init__(
        self, model: nn.Module, tokenizer: Any, corpus: Corpus, options: VerifyOptions, adapter: Adapter
    ) -> None:
        self.model, self.adapter, self.options = model, adapter, options
        self.pad_id = pad_token_id(tokenizer)
        self.tokenized: dict[str, TokenizedTexts] = {
            lang: tokenize_texts(tokenizer, corpus[lang], max_length=options.max_length)
            for lang in corpus.languages
        }
        self.batches = {
            lang: count_batches(t, batch_size=options.batch_size, max_tokens=options.batch_tokens)
            for lang, t in self.tokenized.items()
        }
        self.passes_per_eval = sum(self.batches.values())
        self.baseline = self._bpb()

    def _bpb(self, languages: list[str] | None = None) -> dict[str, float]:
        out = {}
        for lang, tok in self.tokenized.items():
            if languages is not None and lang not in languages:
                continue
            nats = text_nats(
                self.model, tok, batch_size=self.options.batch_size,
                max_tokens=self.options.batch_tokens, pad_id=self.pad_id,
            )
            out[lang] = float(nats.sum() / np.log(2) / max(sum(tok.n_bytes), 1))
        return out

    def delta(self, flat: list[int], d_ff: int, first: str | None = None) -> dict[str, float]:
        """Change in bits per byte per language when the flat-indexed neurons are zeroed.

        With ``first``, that language is evaluated alone first, and the others only when its
        change is positive (a group that does not hurt its own language fails anyway); the
        result then holds ``first`` alone.
        """
        with mask_neurons(self.model, to_layer_indices(torch.tensor(flat), d_ff), adapter=self.adapter):
            masked = self._bpb([first] if first is not None else None)
            if first is not None and masked[first] > self.baseline[first]:
                masked.update(self._bpb([lang for lang in self.tokenized if lang != first]))
        return {lang: masked[lang] - self.baseline[lang] for lang in masked}

    def passes(self, languages: list[str]) -> int:
        """Forward passes (batches) to evaluate ``languages``."""
        return sum(self.batches[lang] for lang in languages)


def _passes(delta: dict[str, float], language: str, ratio: float) -> bool:
    own = delta[language]
    if own <= 0:
        return False
    others = [v for k, v in delta.items() if k != language]
    off = float(np.mean(others)) if others else 0.0
    return own > ratio * max(off, 0.0)


def _split(items: list[int], parts: int) -> list[list[int]]:
    parts = max(1, min(parts, len(items)))
    size = -(-len(items) // parts)
    return [items[i : i + size] for i in range(0, len(items), size)]


def verify_candidates(
    model: nn.Module,
    tokenizer: Any,
    scores: Scores,
    budget: Budget,
    verify_corpus: Corpus,
    *,
    site: str = "down_in",
    options: VerifyOptions | None = None,
    adapter: Adapter | None = None,
    progress: Progress | None = None,
) -> tuple[NeuronSet, dict[str, LanguageReport]]:
    """Select each language's neurons from ``scores`` and keep only groups whose masking
    measurably hurts that language more than the others (see module docstring)."""
    checkpoint("select")
    options = (options or VerifyOptions()).validate()
    adapter = adapter or get_adapter(model)
    progress = progress or NullProgress()
    languages = list(scores.values)
    missing = [lang for lang in languages if lang not in verify_corpus.languages]
    if missing:
        raise ConfigError(
            f"Verification texts are missing for {', '.join(missing)}; give every identified "
            "language some held-out texts or switch verification off (--no-verify)."
        )
    n_layers, d_ff = next(iter(scores.values.values())).shape
    evaluator = _Evaluator(model, tokenizer, verify_corpus.select(languages), options, adapter)
    progress.start("causal verification (group tests)", options.max_tests * len(languages))
    neurons: dict[str, dict[int, list[int]]] = {}
    reports: dict[str, LanguageReport] = {}
    for lang in languages:
        k = budget.for_language(lang, n_layers * d_ff)
        pool = scores.ranking(lang).tolist()
        report = LanguageReport(budget=k)
        min_group = options.min_group or max(1, k // 16)
        kept: list[int] = []
        queue = _split(pool[:k], options.groups)
        cursor = min(k, len(pool))
        while queue:
            if report.tests >= options.max_tests:
                untested = [i for group in queue for i in group]
                report.untested = len(untested)
                kept += untested  # kept as ranked, flagged in the report
                break
            group = queue.pop(0)
            delta = evaluator.delta(group, d_ff, first=lang)
            report.tests += 1
            report.forward_passes += evaluator.passes(list(delta))
            progress.advance(1)
            checkpoint("verify")
            if _passes(delta, lang, options.ratio):
                report.passed_groups += 1
                kept += group
            else:
                report.failed_groups += 1
                if len(group) <= min_group:
                    report.dropped += len(group)
                else:
                    half = len(group) // 2
                    queue[:0] = [group[:half], group[half:]]
            if not queue and len(kept) < k and cursor < len(pool):
                refill = pool[cursor : cursor + (k - len(kept))]
                cursor += len(refill)
                report.refilled += len(refill)
                queue = _split(refill, options.groups)
        progress.advance(options.max_tests - report.tests)
        report.one_by_one_forward_passes = cursor * evaluator.passes_per_eval
        report.delta_of_final_set = evaluator.delta(kept, d_ff) if kept else {}
        report.forward_passes += evaluator.passes_per_eval if kept else 0
        neurons[lang] = to_layer_indices(torch.tensor(sorted(kept), dtype=torch.long), d_ff)
        reports[lang] = report
    meta = {
        "method": scores.method,
        "options": scores.options,
        "budget": budget.describe(),
        "verification": {
            "options": asdict(options),
            "baseline_bits_per_byte": evaluator.baseline,
            "languages": {lang: asdict(r) for lang, r in reports.items()},
            "verify_corpus": verify_corpus.provenance,
        },
    }
    return NeuronSet(neurons, site, n_layers, d_ff, meta), reports
