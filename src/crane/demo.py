"""The demo study on the packaged model (grows with later stages of the project).

At this stage: load the demo model, build the built-in corpora, and measure bits per byte per
language unmasked and with a random 0.5% neuron mask.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crane.data.builtin import GettextUnavailable, gettext_corpus, udhr_corpus
from crane.data.corpus import Corpus
from crane.evaluate.bpb import MaskingMatrix, masking_matrix
from crane.io import atomic_write_text
from crane.models.demo import DEMO_MODEL
from crane.models.loading import load_model
from crane.neurons import NeuronSet
from crane.progress import NullProgress, Progress

DEMO_LANGUAGES: tuple[str, ...] = ("en", "zh", "vi")


@dataclass
class DemoResult:
    """What the demo measured: one masking matrix per evaluation corpus."""

    model: dict[str, Any]
    matrices: dict[str, MaskingMatrix]
    random_size: int
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "random_size": self.random_size,
            "matrices": {name: m.to_dict() for name, m in self.matrices.items()},
            "notes": self.notes,
            "seconds": self.seconds,
        }


def demo_corpora(gettext_texts: int = 100, seed: int = 0) -> tuple[dict[str, Corpus], list[str]]:
    """The demo's evaluation corpora: all of UDHR, and held-out gettext sentences if present."""
    notes: list[str] = []
    corpora = {"udhr": udhr_corpus("all").select(list(DEMO_LANGUAGES))}
    try:
        heldout = gettext_corpus("heldout", seed=seed).select(list(DEMO_LANGUAGES))
        corpora["gettext-heldout"] = heldout.take(gettext_texts) if gettext_texts else heldout
    except GettextUnavailable as exc:
        notes.append(f"{exc} Falling back to UDHR only.")
    return corpora, notes


def run_demo(
    *,
    model: str = DEMO_MODEL,
    fraction: float = 0.005,
    seed: int = 0,
    batch_size: int = 64,
    batch_tokens: int = 1024,
    max_length: int = 128,
    gettext_texts: int = 100,
    out: Path | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    """Load the model, build the corpora, and measure bits/byte with and without a random mask."""
    progress = progress or NullProgress()
    started = time.perf_counter()
    progress.message(f"loading {model} (the first run converts the GGUF once, about a minute)")
    loaded = load_model(model, progress=progress.message)
    corpora, notes = demo_corpora(gettext_texts, seed)
    count = max(1, round(fraction * loaded.shape.n_neurons))
    random_set = NeuronSet.random(loaded.shape, count, language="random", seed=seed)
    matrices: dict[str, MaskingMatrix] = {}
    for name, corpus in corpora.items():
        progress.message(f"evaluating {name}: {', '.join(f'{k} {len(corpus[k])} texts' for k in corpus.languages)}")
        matrices[name] = masking_matrix(
            loaded.model,
            loaded.tokenizer,
            corpus,
            {f"random {fraction:.1%}": random_set},
            random_controls=False,
            seed=seed,
            batch_size=batch_size, max_tokens=batch_tokens,
            max_length=max_length,
            adapter=loaded.adapter,
            progress=progress,
        )
    result = DemoResult(
        model={**loaded.source, "n_layers": loaded.shape.n_layers, "d_ff": loaded.shape.d_ff},
        matrices=matrices,
        random_size=count,
        notes=notes,
        seconds=time.perf_counter() - started,
    )
    if out is not None:
        atomic_write_text(Path(out) / "demo.json", json.dumps(result.to_dict(), indent=1, default=str))
    return result
