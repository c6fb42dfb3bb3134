"""Causal verification by group testing (docs/method.md "targeted neuron-level interventions").

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

from crane.data.corpus import Corpus
from crane.errors import ConfigError
from crane.evaluation.benchmarks import BitsPerByteBenchmark
from crane.evaluation.conditions import UNMASKED, Condition, run_conditions
from crane.faults import kill_point
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
    """Bits per byte of every language's verification texts under a mask at ``site``
    (through the one evaluation loop, :func:`crane.evaluation.conditions.run_conditions`)."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        corpus: Corpus,
        options: VerifyOptions,
        adapter: Adapter,
        site: str,
        shape: tuple[int, int],
    ) -> None:
        self.model, self.adapter, self.site, self.shape = model, adapter, site, shape
        self.benchmark = BitsPerByteBenchmark(
            model, tokenizer, corpus, batch_size=options.batch_size,
            batch_tokens=options.batch_tokens, max_length=options.max_length,
        )
        self.languages = list(corpus.languages)
        self.batches = {lang: self.benchmark.batches(lang) for lang in self.languages}
        self.passes_per_eval = sum(self.batches.values())
        self.baseline = self._bpb(UNMASKED, self.languages)

    def _bpb(self, condition: Condition, languages: list[str]) -> dict[str, float]:
        cells = run_conditions(
            self.model, [condition], [self.benchmark], languages=languages, adapter=self.adapter
        )[self.benchmark.name]
        return {lang: cells[(condition.name, lang)].value for lang in languages}

    def delta(self, flat: list[int], language: str, first: bool = False) -> dict[str, float]:
        """Change in bits per byte per language when the flat-indexed neurons are zeroed as
        ``language``'s set.

        With ``first``, that language is evaluated alone first, and the others only when its
        change is positive (a group that does not hurt its own language fails anyway); the
        result then holds ``language`` alone.
        """
        n_layers, d_ff = self.shape
        group = NeuronSet(
            {language: to_layer_indices(torch.tensor(flat, dtype=torch.long), d_ff)},
            self.site, n_layers, d_ff,
        )
        condition = Condition("group", group, language)
        others = [lang for lang in self.languages if lang != language]
        masked = self._bpb(condition, [language] if first else self.languages)
        if first and masked[language] > self.baseline[language]:
            masked.update(self._bpb(condition, others))
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
    kill_point("select")
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
    evaluator = _Evaluator(
        model, tokenizer, verify_corpus.select(languages), options, adapter, site,
        (n_layers, d_ff),
    )
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
            delta = evaluator.delta(group, lang, first=True)
            report.tests += 1
            report.forward_passes += evaluator.passes(list(delta))
            progress.advance(1)
            kill_point("verify")
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
        report.delta_of_final_set = evaluator.delta(kept, lang) if kept else {}
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
