"""What identifies a model's numbers, for every cache key (shards, sets, study stages)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelIdentity:
    """What makes two loaded models give the same numbers: the weights' hash, the revision and
    the dtype — not where the files are, nor the transformers version, nor the device. The
    spec stands in for the hash only when the weights could not be hashed (a hub id without a
    local snapshot)."""

    sha256: str | None
    revision: str | None
    dtype: str | None
    spec: str | None = None

    @classmethod
    def of(cls, source: dict[str, Any]) -> ModelIdentity:
        sha = source.get("sha256")
        return cls(sha, source.get("revision"), source.get("dtype"),
                   None if sha else source.get("spec"))

    def key(self) -> dict[str, Any]:
        """The one model key of shards' owners, sets and stages (JSON-ready)."""
        out = {"sha256": self.sha256, "revision": self.revision, "dtype": self.dtype}
        if self.spec is not None:
            out["spec"] = self.spec
        return out
