"""The demo study on the packaged model, sized to finish within 15 minutes on two CPU cores,
environment and first-time model conversion included.

What it runs (see :func:`demo_config`): CRANE (AttnLRP relevance of the log-probability on 100
gettext sentences per language, the v2 `contrast` score) as its top-k (``crane``) and after its
causal step, the set search from that top-k on held-out validation texts (``crane+search``: at
most 3 passes per language, every neuron a candidate, exactly k), LAPE and the activation
contrast as published, every method sized like the CRANE sets (0.5% of all neurons), and three
layer-matched random controls; bits per byte on six held-out UDHR articles under every set; a
200-item parallel cloze test and generation fidelity (30 prompts per language) under the
searched CRANE sets; metrics with bootstrap intervals, paired comparisons and verdicts; the HTML
report. The sizes are chosen for the time limit; `crane run` with a config file runs
the same study at any size (docs/study.md), e.g. ``examples/selection_v2.toml`` with every
method, the construction's shares and swaps and the budget sweep.
"""

from __future__ import annotations

from crane.models.demo import DEMO_MODEL
from crane.study import StudyConfig

DEMO_LANGUAGES: tuple[str, ...] = ("en", "zh", "vi")
DEMO_METHODS: tuple[str, ...] = ("crane", "lape", "actmean")
"""CRANE, LAPE (the paper's baseline) and the activation contrast (the strongest activation
method on the demo corpora, bench/SELECTIVITY.md); the other methods and every proposal under
the same search are in ``examples/selection_v3.toml``."""


def demo_config(model: str = DEMO_MODEL, seed: int = 0) -> StudyConfig:
    """The demo's study configuration (``crane run`` takes the same keys from a file)."""
    return StudyConfig(
        model=model,
        languages=list(DEMO_LANGUAGES),
        methods=list(DEMO_METHODS),
        budget="match:crane",
        seed=seed,
        identify_max_texts=100,
        # CRANE as published (its top-k) and with its causal step, the set search from that
        # top-k (crane+search), sized for time: 2 share points, at most 3 passes per language
        verify_methods=[],
        search_methods=["crane"],
        ig_steps=2,
        search_passes=3,
        bpb_max_texts=6,
        # the multiple-choice test and generation fidelity cost far more per row than bits per
        # byte (the 262k-token output layer at every option token): CRANE's sets only
        choice_builtin_items=200,
        generation_prompts=30,
        benchmark_methods=["crane+search"],
        n_boot=1000,
    )
