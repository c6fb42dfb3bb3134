"""The demo study on the packaged model: the whole method, sized to finish in about 15 minutes
on two CPU cores (first-time model conversion included).

What it runs (see :func:`demo_config`): CRANE (AttnLRP relevance, verified), gradient ×
activation (verified the same way), LAPE, Kojima's average precision, PLND and the activation
contrast, every method sized like the CRANE sets; a layer-matched random control; bits per byte
on held-out UDHR articles and the built-in parallel continuation test per language, under every
set; metrics with bootstrap intervals; a CRANE budget sweep; the HTML report.
"""

from __future__ import annotations

from crane.models.demo import DEMO_MODEL
from crane.pipeline import DEFAULT_METHODS, StudyConfig

DEMO_LANGUAGES: tuple[str, ...] = ("en", "zh", "vi")


def demo_config(model: str = DEMO_MODEL, seed: int = 0) -> StudyConfig:
    """The demo's study configuration (``crane run`` takes the same keys from a file)."""
    return StudyConfig(
        model=model,
        languages=list(DEMO_LANGUAGES),
        methods=list(DEFAULT_METHODS),
        budget="match:crane",
        seed=seed,
        identify_max_texts=100,
        verify_methods=["crane"],
        verify_tests=8,
        bpb_max_texts=8,
        choice_builtin_items=24,
        sweep_budgets=[0.001, 0.01, 0.02],
        sweep_methods=["crane"],
        n_boot=1000,
    )
