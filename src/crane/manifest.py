"""The run manifest: which stages of a run directory are complete, for which inputs, with hashes.

``RUN_DIR/manifest.json`` maps a stage name to ``{"key": sha256 of the stage's inputs,
"outputs": {relative path: sha256}, "seconds": wall time}``. A stage is reused only when its
key matches and every output still exists with the recorded hash; a missing, truncated or
edited output makes the stage run again (it is never read silently).

The manifest also records whose run the directory holds: the model identity (``"model"``) and
a hash of the options that shape its outputs (``"options"``: ``{"sha256", "values"}``). Another
model's or other options' run into the same directory is refused before any work, so two runs'
files never mix (``crane identify --overwrite`` replaces the earlier run instead).
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
        data = self._on_disk()
        if data.get("format") not in (None, FORMAT):
            raise ConfigError(
                f"{self.path} was written by an incompatible version ({data.get('format')}); "
                "use a new run directory."
            )
        owner = data.get("model")
        if self.model is not None and owner is not None and owner != self.model:
            raise ConfigError(
                f"{self.run_dir} holds a run of another model ({_describe(owner)}); give a new "
                "output directory (--out), or replace that run (crane identify --overwrite) or "
                "delete it."
            )
        stages = data.get("stages", {})
        if not isinstance(stages, dict):
            return {}
        return {name: entry for name, entry in stages.items() if _sound_stage(entry)}

    def _on_disk(self) -> dict[str, Any]:
        """The manifest file's object ({} when it is missing, unreadable or not an object:
        then every stage is redone)."""
        if not self.path.exists():
            return {}
        try:
            data = parse_json(self.path.read_text(encoding="utf-8"), unique_keys=True)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def complete(self, stage: str, key: str) -> bool:
        """Whether ``stage`` finished with inputs ``key`` and its outputs are intact."""
        entry = self.stages.get(stage)
        if not isinstance(entry, dict) or entry.get("key") != key:
            return False
        outputs = entry.get("outputs")
        if not isinstance(outputs, dict):
            return False
        if "check" in entry and entry["check"] != _entry_check(key, outputs):
            return False  # the record was edited (e.g. its outputs emptied): redo the stage
        for name, digest in outputs.items():
            if not _inside(name):  # an edited manifest naming a file outside the run
                return False
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
        recorded = {str(p.relative_to(self.run_dir)): file_sha256(p) for p in sorted(set(outputs))}
        self.stages[stage] = {
            "key": key,
            "outputs": recorded,
            "check": _entry_check(key, recorded),
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

    # ---- the options that shape a run's outputs ---------------------------------------------
    def recorded_options(self) -> dict[str, Any] | None:
        """The options record on disk (``{"sha256", "values"}``), ``None`` when there is none
        or it is unreadable (a run from before options were recorded: nothing to compare)."""
        record = self._on_disk().get("options")
        if isinstance(record, dict) and isinstance(record.get("sha256"), str):
            return record
        return None

    def check_options(self, options: dict[str, Any], *, fix: str) -> None:
        """Raise ConfigError unless the directory's recorded run was made with ``options``
        (or records none); ``fix`` names the ways out (e.g. a new --out, or --overwrite)."""
        record = self.recorded_options()
        if record is None or record["sha256"] == inputs_key(options):
            return
        raise ConfigError(
            f"{self.run_dir} holds a run made with other options "
            f"({_differences(record.get('values'), options)}); {fix}."
        )

    def record_options(self, options: dict[str, Any]) -> None:
        """Write down ``options`` as those of the run this directory holds."""
        on_disk = self._on_disk()
        data = {k: v for k, v in on_disk.items() if k in ("format", "stages", "model")}
        data["format"] = FORMAT
        data.setdefault("stages", {})
        data["options"] = {"sha256": inputs_key(options), "values": _plain(options)}
        atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def _write(self) -> None:
        data: dict[str, Any] = {"format": FORMAT, "stages": self.stages}
        owner = self.model if self.model is not None else self._owner_on_disk()
        if owner is not None:
            data["model"] = owner
        options = self.recorded_options()
        if options is not None:
            data["options"] = options
        atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def _owner_on_disk(self) -> Any:
        return self._on_disk().get("model")


def clear_run(run_dir: str | Path) -> list[Path]:
    """Remove the run a directory holds so another can replace it: its manifest, the files its
    stages record, and its neuron sets and identification records (``neurons-*.json``,
    ``identify-*.json``). Statistics shards stay: they carry their own inputs and are reused
    only where those match. Returns the removed paths."""
    folder = Path(run_dir)
    manifest = Manifest(folder)  # an incompatible version is refused, not removed
    doomed = {folder / name for entry in manifest.stages.values()
              for name in (entry.get("outputs") or {}) if _inside(name)}
    doomed |= {*folder.glob("neurons-*.json"), *folder.glob("identify-*.json")}
    doomed.add(manifest.path)
    removed = []
    for path in sorted(doomed):
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def _entry_check(key: str, outputs: dict[str, Any]) -> str:
    """A hash over a stage record's key and outputs: a record whose outputs were edited (or
    emptied, which would make it complete without any file to check) no longer matches.
    Records written before this check have none and are checked by their files alone."""
    return inputs_key({"key": key, "outputs": outputs})


def _sound_stage(entry: Any) -> bool:
    """A stage record of the expected shape (others are dropped: that stage is redone)."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("key"), str)
        and isinstance(entry.get("outputs", {}), dict)
    )


def _inside(name: Any) -> bool:
    """Whether a recorded output name is a relative path inside the run directory."""
    if not isinstance(name, str) or not name:
        return False
    path = Path(name)
    return not path.is_absolute() and ".." not in path.parts


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists, other objects as text)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _differences(recorded: Any, options: dict[str, Any]) -> str:
    """The options that differ, in words: ``site act → down_in, quantile 0.9 → 0.95``."""
    if not isinstance(recorded, dict):
        return "not recorded in full"
    now = _plain(options)
    changed = [
        f"{key} {json.dumps(recorded.get(key))} → {json.dumps(now.get(key))}"
        for key in sorted(set(recorded) | set(now))
        if recorded.get(key) != now.get(key)
    ]
    if not changed:
        return "not recorded in full"
    more = f", and {len(changed) - 3} more" if len(changed) > 3 else ""
    return ", ".join(changed[:3]) + more


def _describe(owner: Any) -> str:
    """A recorded model identity in a few words."""
    if not isinstance(owner, dict):
        return "unknown"
    sha = owner.get("sha256")
    text = f"weights {str(sha)[:12]}" if sha else f"{owner.get('spec')}"
    return f"{text}, {owner.get('dtype')}"

