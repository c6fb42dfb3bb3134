"""Load a causal LM for neuron work: the demo model, a local directory, a GGUF file or a hub id.

``load_model`` resolves the spec, loads model and tokenizer through transformers, freezes the
model (eval mode, no gradients on parameters), picks the architecture adapter and, by default,
checks on one short forward pass that every neuron site fires once per layer with width d_ff.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from crane.errors import ConfigError, ModelLoadError, UnsupportedModelError
from crane.models.adapters import Adapter, get_adapter
from crane.models.demo import DEMO_MODEL, DEMO_NOTE, MARKER_NAME, demo_model_dir, read_marker
from crane.models.gguf import load_gguf, quiet_transformers
from crane.models.identity import ModelIdentity
from crane.models.sites import SITES, ModelShape, model_shape, validate_sites
from crane.progress import StatusCallback

DTYPES: dict[str, torch.dtype | str] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "auto": "auto",
}
"""Accepted ``dtype`` names; ``auto``: float32 on the CPU, else the checkpoint's own dtype."""

SOURCE_KINDS: tuple[str, ...] = ("demo", "local", "gguf", "hub")

GGUF_MAGIC = b"GGUF"
FULL_HASH_LIMIT = 2 * 1024**3
"""Single weight files up to this size are hashed in full; larger models get a fingerprint."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?$")
_DEVICE = re.compile(r"^(cpu|mps|auto|shard|cuda(:\d+)?)$")
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


@dataclass
class LoadedModel:
    """A frozen causal LM ready for hooks, with its tokenizer, adapter, shape and provenance.

    Attributes:
        model: the transformers model (eval mode, parameters with ``requires_grad=False``).
        tokenizer: the matching tokenizer (its pad token may be unset).
        adapter: where the model's neuron sites live.
        shape: family, number of layers and MLP width ``d_ff``.
        source: provenance: ``spec``, ``kind`` (demo | local | gguf | hub), ``path``,
            ``sha256`` and ``sha256_of`` (what was hashed), ``revision``, ``dtype``, ``device``,
            ``transformers`` version and ``note``.
    """

    model: Any
    tokenizer: Any
    adapter: Adapter
    shape: ModelShape
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> ModelIdentity:
        """What identifies this model's numbers (for every cache key)."""
        return ModelIdentity.of(self.source)

    @property
    def device(self) -> torch.device:
        """The input device: where the input embeddings run (accelerate's execution device
        when they are offloaded, whose parameters are on ``meta``)."""
        from crane.models.placement import input_device

        return input_device(self.model)


def load_model(
    spec: str | Path,
    *,
    dtype: str = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
    validate: bool = True,
    cache_dir: str | Path | None = None,
    progress: StatusCallback | None = None,
    attn_implementation: str | None = None,
    revision: str | None = None,
) -> LoadedModel:
    """Load ``spec`` as a frozen :class:`LoadedModel`.

    ``spec`` is ``"gemma-3-270m"`` (the packaged demo model), a local model directory
    (config.json + weights), a ``.gguf`` file, or a hub id ``org/name`` (``revision`` picks a
    branch, tag or commit). ``dtype``: float32 | bfloat16 | float16 | auto (float32 on the CPU,
    else the checkpoint's dtype). ``device``: cpu | cuda | cuda:N | mps | auto (the best device
    here: CUDA, else MPS, else the CPU; :func:`best_device`) | shard (one model spread over
    every GPU and the CPU by accelerate's ``device_map="auto"``). ``attn_implementation`` is
    passed to transformers when given (default: transformers' choice, usually sdpa).

    Raises:
        ModelLoadError: missing path, no weights, not a GGUF, unknown hub id, remote code needed.
        UnsupportedModelError: no adapter for the architecture, or the adapter does not match.
        ConfigError: unknown dtype or device, or the device is not available.
    """
    say = progress or _silent
    torch_dtype = _check_dtype(dtype)
    device_map = _check_device(device)
    if torch_dtype == "auto" and device_map is None:
        torch_dtype = torch.float32  # the CPU: half precision there is slow and coarse
    kind, location = _resolve(spec, cache_dir=cache_dir, progress=say)

    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if device_map is not None:
        kwargs["device_map"] = device_map

    note = ""
    if kind == "gguf":
        say(f"loading GGUF {location.name} (tokenizer ~15-35 s, weights ~30-55 s)")
        model, tokenizer = _load_gguf(location, kwargs, say)
        note = "weights dequantised from GGUF; not bit-identical to the original checkpoint"
    else:
        load_from = str(location)
        model, tokenizer = _load_transformers(
            load_from,
            kind=kind,
            spec=str(spec),
            kwargs=kwargs,
            trust_remote_code=trust_remote_code,
            revision=revision if kind == "hub" else None,
            progress=say,
        )
        if kind == "demo":
            note = DEMO_NOTE

    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)

    adapter = get_adapter(model)
    if validate:
        say("checking the neuron sites on one short forward pass")
        shape = validate_sites(model, adapter)
    else:
        shape = model_shape(model, adapter)

    source = _provenance(
        spec, kind, location, model, note=note, revision=revision, requested_device=device
    )
    return LoadedModel(
        model=model, tokenizer=tokenizer, adapter=adapter, shape=shape, source=source
    )


def describe(loaded: LoadedModel) -> dict[str, Any]:
    """A JSON-ready summary of a loaded model (``crane models check MODEL``)."""
    model = loaded.model
    config = getattr(model, "config", None)
    return {
        "family": loaded.shape.family,
        "model_type": loaded.shape.model_type,
        "architecture": type(model).__name__,
        "n_layers": loaded.shape.n_layers,
        "d_ff": loaded.shape.d_ff,
        "n_neurons": loaded.shape.n_neurons,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": _vocab_size(config),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "device": str(loaded.device),
        "sites": list(SITES),
        "gated_mlp": loaded.adapter.gated,
        "source": dict(loaded.source),
    }


# --- resolving a spec --------------------------------------------------------------------------


def _resolve(
    spec: str | Path, *, cache_dir: str | Path | None, progress: StatusCallback
) -> tuple[str, Any]:
    """``(kind, location)``: a Path for demo/local/gguf, the id string for hub."""
    text = str(spec)
    if not isinstance(spec, Path) and text == DEMO_MODEL:
        return "demo", demo_model_dir(cache_dir=cache_dir, progress=progress)
    if not text.strip():
        raise ModelLoadError(
            "The model spec is empty; pass a hub id, a model directory, a .gguf file "
            f"or '{DEMO_MODEL}'."
        )
    path = Path(text).expanduser()
    if path.is_dir():
        return _local_dir(path)
    if path.exists():
        return "gguf", _check_gguf(path)
    if isinstance(spec, Path) or _looks_like_path(text):
        raise ModelLoadError(
            f"Model path {text} does not exist; check the path, or pass a hub id (org/name) "
            f"or '{DEMO_MODEL}'."
        )
    return "hub", text


def _looks_like_path(text: str) -> bool:
    if text.startswith((".", "~", os.sep)) or (os.altsep and os.altsep in text):
        return True
    if text.lower().endswith(".gguf") or os.path.isabs(text):
        return True
    return not _HUB_ID.match(text) or "--" in text or ".." in text


def _local_dir(path: Path) -> tuple[str, Path]:
    path = path.resolve()
    has_config = (path / "config.json").is_file()
    ggufs = sorted(path.glob("*.gguf"))
    if not has_config and len(ggufs) == 1:
        return "gguf", _check_gguf(ggufs[0])
    if not has_config:
        raise ModelLoadError(
            f"Model directory {path} has no config.json; point to a Hugging Face model directory "
            "(config.json + weights, as written by save_pretrained) or to a .gguf file."
        )
    if not _weight_files(path):
        raise ModelLoadError(
            f"Model directory {path} has no weights (*.safetensors or pytorch_model.bin); "
            "save the model there with model.save_pretrained() or point to the directory "
            "that holds its weight files."
        )
    return "local", path


def _weight_files(path: Path) -> list[Path]:
    found: set[Path] = set()
    for pattern in _WEIGHT_PATTERNS:
        found.update(p for p in path.glob(pattern) if p.is_file())
    return sorted(found)


def _check_gguf(path: Path) -> Path:
    path = path.resolve()
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as err:
        raise ModelLoadError(
            f"Model file {path} cannot be read ({err.strerror or err}); check its permissions."
        ) from err
    if magic != GGUF_MAGIC:
        raise ModelLoadError(
            f"{path} is not a GGUF file (it does not start with the bytes 'GGUF'); pass a .gguf "
            "file, a model directory with config.json and weights, or a hub id."
        )
    return path


def _check_dtype(dtype: str) -> torch.dtype | str:
    if dtype not in DTYPES:
        raise ConfigError(f"Unknown dtype '{dtype}'; use one of: {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def best_device() -> str:
    """What ``--device auto`` picks: ``cuda`` when torch sees a GPU, else ``mps`` when Apple's
    backend is available, else ``cpu``."""
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _check_device(device: str) -> str | dict[str, str] | None:
    """transformers' ``device_map`` for ``device`` (``None`` for the CPU)."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ConfigError(
            f"Unknown device '{device}'; use cpu, cuda, cuda:N, mps, auto or shard."
        )
    if device == "auto":
        device = best_device()
    if device == "cpu":
        return None
    if device == "shard":
        return "auto"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"Device '{device}' was requested but CUDA is not available to torch; "
                "use --device cpu or install a CUDA build of torch."
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"Device '{device}' does not exist (torch sees {torch.cuda.device_count()} CUDA "
                "device(s)); pick an index below that."
            )
        return {"": f"cuda:{index}"}
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        raise ConfigError(
            "Device 'mps' was requested but Apple's MPS backend is not available; use --device cpu."
        )
    return {"": "mps"}


# --- loading -----------------------------------------------------------------------------------


def _load_gguf(path: Path, kwargs: dict[str, Any], progress: StatusCallback) -> tuple[Any, Any]:
    gguf_kwargs = dict(kwargs)
    if gguf_kwargs.get("dtype") == "auto":
        gguf_kwargs["dtype"] = torch.float32  # dequantised weights: float32 loses nothing
    try:
        return load_gguf(path, progress=progress, **gguf_kwargs)
    except (ValueError, KeyError, NotImplementedError, IndexError, struct.error, EOFError) as err:
        raise ModelLoadError(
            f"transformers cannot load the GGUF file {path} ({_first_line(err)}); the file "
            "may be truncated or corrupt, or its architecture or quantisation type unsupported: "
            "download it again or load the model's original checkpoint instead."
        ) from err


def _load_transformers(
    location: str,
    *,
    kind: str,
    spec: str,
    kwargs: dict[str, Any],
    trust_remote_code: bool,
    revision: str | None,
    progress: StatusCallback,
) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    common: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if revision is not None:
        common["revision"] = revision
    quiet = quiet_transformers() if kind != "hub" else contextlib.nullcontext()
    with quiet:
        progress(f"reading the config of {spec}")
        config = _guard(spec, kind, lambda: AutoConfig.from_pretrained(location, **common))
        get_adapter(config)  # fail before reading gigabytes of weights
        progress(f"loading the tokenizer of {spec}")
        try:
            tokenizer = AutoTokenizer.from_pretrained(location, **common)
        except (OSError, ValueError, KeyError, TypeError) as err:
            if "trust_remote_code" in str(err):
                raise _remote_code_error(spec) from err
            raise ModelLoadError(
                f"Model {spec} has no usable tokenizer ({_first_line(err)}); save it next to "
                "the weights with tokenizer.save_pretrained()."
            ) from err
        progress(f"loading the weights of {spec}")
        model = _guard(
            spec,
            kind,
            lambda: AutoModelForCausalLM.from_pretrained(
                location, config=config, **common, **kwargs
            ),
        )
    return model, tokenizer


def _guard(spec: str, kind: str, load: Callable[[], Any]) -> Any:
    """Run a transformers load and turn its user-caused failures into crane errors."""
    try:
        return load()
    except UnsupportedModelError:
        raise
    except ValueError as err:
        message = str(err)
        if "trust_remote_code" in message:
            raise _remote_code_error(spec) from err
        if "for this kind of AutoModel" in message:
            raise UnsupportedModelError(
                f"Model {spec} is not a causal language model transformers can load with "
                f"AutoModelForCausalLM ({_first_line(err)}); pass a decoder-only LM."
            ) from err
        if "does not recognize this architecture" in message or "Unrecognized" in message:
            raise UnsupportedModelError(
                f"Model {spec} has an architecture this version of transformers does not know "
                f"({_first_line(err)}); upgrade transformers, or pass --trust-remote-code if "
                "the model ships its own code and you trust it."
            ) from err
        raise ModelLoadError(f"Model {spec} could not be loaded: {_first_line(err)}.") from err
    except KeyError as err:
        raise UnsupportedModelError(
            f"Model {spec} has a config transformers cannot map ({err}); upgrade transformers "
            "or check the model's config.json."
        ) from err
    except OSError as err:
        if kind == "hub":
            offline = " (HF_HUB_OFFLINE is set)" if _hub_offline() else ""
            raise ModelLoadError(
                f"Model '{spec}' is neither a local path nor available from the Hugging Face hub "
                f"or its local cache{offline}; check the id, your network and login "
                "(hf auth login for gated models), or pass a local directory."
            ) from err
        raise ModelLoadError(
            f"Model {spec} could not be read ({_first_line(err)}); check that its files are "
            "complete and readable."
        ) from err


def _remote_code_error(spec: str) -> ModelLoadError:
    return ModelLoadError(
        f"Model {spec} needs its own code (trust_remote_code); rerun with --trust-remote-code "
        "if you trust its source."
    )


# --- provenance --------------------------------------------------------------------------------


def _provenance(
    spec: str | Path,
    kind: str,
    location: Any,
    model: nn.Module,
    *,
    note: str,
    revision: str | None,
    requested_device: str,
) -> dict[str, Any]:
    import transformers

    sha256: str | None = None
    sha256_of: str | None = None
    path: str | None = None
    resolved_revision = revision
    if kind == "demo":
        path = str(location)
        marker = read_marker(location) or {}
        sha256 = marker.get("gguf_sha256")
        sha256_of = f"source GGUF {marker.get('gguf_file', '')} (see {MARKER_NAME})".strip()
    elif kind == "gguf":
        path = str(location)
        sha256, sha256_of = _sha256_file(location), "GGUF file"
    elif kind == "local":
        path = str(location)
        sha256, sha256_of = _fingerprint_weights(location)
    else:
        snapshot = _hub_snapshot(str(location), revision)
        if snapshot is not None:
            path = str(snapshot)
            resolved_revision = snapshot.name
            sha256, sha256_of = _fingerprint_weights(snapshot)
    parameter = next(model.parameters())
    source: dict[str, Any] = {
        "spec": str(spec),
        "kind": kind,
        "path": path,
        "sha256": sha256,
        "sha256_of": sha256_of,
        "revision": resolved_revision,
        "dtype": str(parameter.dtype).removeprefix("torch."),
        "device": str(parameter.device),
        "transformers": transformers.__version__,
        "note": note,
    }
    device_map = getattr(model, "hf_device_map", None)
    if requested_device == "shard" and device_map:
        source["device_map"] = {str(k): str(v) for k, v in device_map.items()}
    return source


def _fingerprint_weights(directory: Path) -> tuple[str, str]:
    """``(sha256, what was hashed)`` for the weights in ``directory``.

    One weight file up to :data:`FULL_HASH_LIMIT` is hashed in full; otherwise the hash covers
    the weight files' names and sizes plus the weights index (cheap, not content-exact).
    """
    files = _weight_files(directory)
    if len(files) == 1 and files[0].stat().st_size <= FULL_HASH_LIMIT:
        return _sha256_file(files[0]), files[0].name
    digest = hashlib.sha256()
    listing = [(p.name, p.stat().st_size) for p in files]
    digest.update(json.dumps(listing).encode())
    for index in sorted(directory.glob("*.index.json")):
        digest.update(index.read_bytes())
    return digest.hexdigest(), "names and sizes of the weight files plus the weights index"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(4 * 1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _hub_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The local snapshot directory of a hub model (its name is the commit hash), if cached."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - provenance is best effort
        return None
    if isinstance(found, str) and os.sep + "snapshots" + os.sep in found:
        return Path(found).parent
    return None


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _vocab_size(config: Any) -> int | None:
    text_config = getattr(config, "text_config", None) or config
    value = getattr(text_config, "vocab_size", None)
    return int(value) if isinstance(value, int) else None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def _silent(_message: str) -> None:
    return None
