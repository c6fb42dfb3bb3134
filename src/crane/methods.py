"""Names of the identification methods (no heavy imports: the CLI validates with these)."""

from __future__ import annotations

from crane.errors import ConfigError

RELEVANCE_SCORED: dict[str, str] = {"crane": "attnlrp", "gradxact": "gradxact"}
"""Methods scored by the ``crane`` scorer on relevance statistics, with their relevance method."""
ACTIVATION_METHODS: tuple[str, ...] = ("lape", "kojima", "plnd", "actmean", "random")
"""Methods scored on the statistics of one forward-only activation pass."""
METHODS: tuple[str, ...] = (*RELEVANCE_SCORED, *ACTIVATION_METHODS)
OWN_SIZE_METHODS: tuple[str, ...] = ("lape", "plnd")
"""Methods that choose their own set sizes when no budget is given."""


def parse_methods(spec: str) -> list[str]:
    """``"crane,lape"`` → ``["crane", "lape"]`` (order kept, duplicates dropped); ``"all"`` →
    every method."""
    names = [part.strip().lower() for part in spec.split(",") if part.strip()]
    if names == ["all"]:
        return list(METHODS)
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        raise ConfigError(
            f"Unknown method '{', '.join(unknown) or spec}'; use one or more of "
            f"{', '.join(METHODS)} (comma-separated) or all."
        )
    return list(dict.fromkeys(names))
