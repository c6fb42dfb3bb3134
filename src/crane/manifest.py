"""The run manifest: which stages of a run directory are complete, for which inputs, with hashes.

``RUN_DIR/manifest.json`` maps a stage name to ``{"key": sha256 of the stage's inputs,
"outputs": {relative path: sha256}, "seconds": wall time}``. A stage is reused only when its
key matches and every output still exists with the recorded hash; a missing, truncated or
edited output makes the stage run again (it is never read silently).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from crane.errors import ConfigError
from crane.io import atomic_write_text, parse_json

FORMAT = "crane-manifest/1"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inputs_key(inputs: Any) -> str:
    """A stable hash of a stage's inputs (anything JSON can represent)."""
    text = json.dumps(inputs, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Manifest:
    """Stage bookkeeping of one run directory (written atomically after every change)."""

    def __init__(self, run_dir: str | Path, model: dict[str, Any] | None = None) -> None:
        """``model`` (``LoadedModel.identity.key()``): the model this process runs; a run
        directory recorded for another model is refused (two models' files never mix), and
        the first stage recorded writes it down."""
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "manifest.json"
        self.model = model
        self.stages: dict[str, dict[str, Any]] = self._read()
        self._mine: set[str] = set()
        """Stages this object recorded: on rewrite they win, every other stage is read again."""

    def _read(self) -> dict[str, dict[str, Any]]:
        """The stages recorded on disk (none when the file is missing or unreadable)."""
        if not self.path.exists():
            return {}
        try:
            data = parse_json(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            data = {}  # an unreadable manifest: every stage is redone
        if not isinstance(data, dict):
            data = {}  # not a manifest at all: likewise
        if data.get("format") not in (None, FORMAT):
            raise ConfigError(
                f"{self.path} was written by an incompatible version ({data.get('format')}); "
                "use a new run directory."
            )
        owner = data.get("model")
        if self.model is not None and owner is not None and owner != self.model:
            raise ConfigError(
                f"{self.run_dir} holds a run of another model ({_describe(owner)}); give a new "
                "output directory (--out) or delete that one."
            )
        stages = data.get("stages", {})
        return dict(stages) if isinstance(stages, dict) else {}

    def complete(self, stage: str, key: str) -> bool:
        """Whether ``stage`` finished with inputs ``key`` and its outputs are intact."""
        entry = self.stages.get(stage)
        if not isinstance(entry, dict) or entry.get("key") != key:
            return False
        outputs = entry.get("outputs", {})
        if not isinstance(outputs, dict):
            return False
        for name, digest in outputs.items():
            path = self.run_dir / name
            if not path.is_file() or file_sha256(path) != digest:
                return False
        return True

    def record(self, stage: str, key: str, outputs: list[Path], seconds: float) -> None:
        """Mark ``stage`` complete with the hashes of ``outputs`` (paths inside the run dir).

        Stages another writer recorded in the meantime (e.g. identification inside a study)
        are kept: the file is read again before it is rewritten."""
        self._mine.add(stage)
        on_disk = self._read()
        self.stages = {**on_disk, **{name: self.stages[name] for name in self._mine if name in self.stages}}
        self.stages[stage] = {
            "key": key,
            "outputs": {
                str(p.relative_to(self.run_dir)): file_sha256(p) for p in sorted(set(outputs))
            },
            "seconds": round(seconds, 3),
        }
        self._write()

    def own(self) -> None:
        """Write down this manifest's model as the run directory's, if none is yet."""
        if self.model is not None and self._owner_on_disk() is None:
            self.stages = {**self._read(), **self.stages}
            self._write()

    def seconds(self) -> dict[str, float]:
        return {
            name: float(entry.get("seconds", 0.0))
            for name, entry in self.stages.items()
            if isinstance(entry, dict) and isinstance(entry.get("seconds", 0.0), (int, float))
        }

    def _write(self) -> None:
        data: dict[str, Any] = {"format": FORMAT, "stages": self.stages}
        owner = self.model if self.model is not None else self._owner_on_disk()
        if owner is not None:
            data["model"] = owner
        atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def _owner_on_disk(self) -> Any:
        try:
            data = parse_json(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        return data.get("model") if isinstance(data, dict) else None


def _describe(owner: Any) -> str:
    """A recorded model identity in a few words."""
    if not isinstance(owner, dict):
        return "unknown"
    sha = owner.get("sha256")
    text = f"weights {str(sha)[:12]}" if sha else f"{owner.get('spec')}"
    return f"{text}, {owner.get('dtype')}"

