"""Data parallelism over ``torch.distributed``: which process am I, on which device, and
waiting for the others without hanging.

Identification is data-parallel wherever it runs: :func:`crane.identification.identify_methods`
(and so ``crane identify``, ``crane.identify`` and a study's identify stage) calls
:func:`share_statistics`, which under a launcher lets every rank compute its share of the
statistics shards, waits for all of them, and then lets rank 0 alone merge, score, verify and
write, while the other ranks raise :class:`RankDone`. :func:`run_study` runs a whole study
(``crane run``) that way.

A data-parallel run is started by ``torchrun`` or ``accelerate launch``, which set ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in every process. With
``WORLD_SIZE`` above 1, :meth:`Distributed.session` joins the process group (``gloo`` for a
model on the CPU, ``nccl`` for one on CUDA; ``CRANE_DIST_BACKEND`` overrides) with a timeout
(``CRANE_DIST_TIMEOUT`` seconds, default 1800) and leaves it at exit. The statistics never
travel through the process group: every rank writes its own shard files into the shared run
directory (see :func:`crane.shards.run_shards`, ``ShardRun.rank``), and the group only carries
each rank's "done" or "failed" (:meth:`Distributed.all_or_none`), so a failure on one rank stops
every rank with a message instead of leaving the others waiting.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from crane.errors import ConfigError, CraneError

if TYPE_CHECKING:
    from crane.data.corpus import Corpus
    from crane.identification import IdentifyOptions
    from crane.models.loading import LoadedModel
    from crane.progress import Progress
    from crane.study import StudyConfig, StudyResult

ENV_TIMEOUT = "CRANE_DIST_TIMEOUT"
"""Seconds a rank waits for the others at a synchronisation point (default 1800)."""
ENV_BACKEND = "CRANE_DIST_BACKEND"
"""Process-group backend override (``gloo`` | ``nccl``); default from the device."""
DEFAULT_TIMEOUT_S = 1800.0


class DistributedError(CraneError):
    """Another process of a data-parallel run failed (its own message is part of this one)."""


class RankDone(Exception):  # noqa: N818 (not an error: this rank's part of the work is over)
    """Raised on every rank but 0 once its share of a data-parallel identification is saved
    and every rank has finished: rank 0 alone merges, scores, verifies and writes, so the
    caller should stop (``crane identify``/``crane run`` exit with code 0)."""

    def __init__(self, rank: int, world_size: int) -> None:
        super().__init__(
            f"rank {rank} of {world_size} has saved its shards; rank 0 writes the results"
        )
        self.rank, self.world_size = rank, world_size


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"Environment variable {name}={value!r} is not an integer; launch data-parallel "
            "runs with torchrun or accelerate launch, which set it."
        ) from None


def _first_line(exc: BaseException) -> str:
    """The first line of an error's message without torch's ``[/path/file.cc:N]`` source
    locations and with ``()`` for ``[]`` (rich would take those for markup), or the error's
    type name."""
    lines = str(exc).strip().splitlines()
    text = re.sub(r"\[[^\]]*/[^\]]*\]\s*", "", lines[0]).strip() if lines else ""
    return text.replace("[", "(").replace("]", ")").rstrip(".") or type(exc).__name__


def timeout_seconds() -> float:
    """The synchronisation timeout from ``CRANE_DIST_TIMEOUT`` (seconds), default 1800."""
    value = os.environ.get(ENV_TIMEOUT, "").strip()
    if not value:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"{ENV_TIMEOUT}={value!r} must be a positive number of seconds.")
    return seconds


@dataclass(frozen=True)
class Distributed:
    """This process's place in a data-parallel run (rank 0 of 1 when run alone).

    Attributes:
        rank: global rank, 0 … world_size - 1 (``RANK``).
        world_size: number of processes on all nodes (``WORLD_SIZE``).
        local_rank: rank on this node (``LOCAL_RANK``); picks the GPU.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (all absent: a single process)."""
        world = _env_int("WORLD_SIZE", 1)
        rank = _env_int("RANK", 0)
        local = _env_int("LOCAL_RANK", rank)
        if world < 1 or not 0 <= rank < world or local < 0:
            raise ConfigError(
                f"Inconsistent launch environment RANK={rank}, WORLD_SIZE={world}, "
                f"LOCAL_RANK={local}; launch data-parallel runs with torchrun or accelerate launch."
            )
        return cls(rank, world, local)

    @property
    def enabled(self) -> bool:
        """More than one process: shards are split between ranks."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: merges, scores, verifies, writes the outputs and shows progress."""
        return self.rank == 0

    @property
    def rank_and_world(self) -> tuple[int, int] | None:
        """``(rank, world_size)`` for ``ShardRun.rank`` and
        :func:`crane.identification.collect_shards`, ``None`` when alone."""
        return (self.rank, self.world_size) if self.enabled else None

    def device_for(self, device: str) -> str:
        """The device this rank loads the model on: ``cuda`` becomes ``cuda:LOCAL_RANK``.

        Raises:
            ConfigError: with several processes, ``shard`` (one model spread over all GPUs) or
                a fixed ``cuda:N`` (every rank on the same GPU), or a LOCAL_RANK without a GPU.
        """
        if not self.enabled:
            return device
        if device == "auto":
            from crane.models.loading import best_device

            device = best_device()
        if device == "shard" or device.startswith("cuda:"):
            raise ConfigError(
                f"--device {device} cannot be shared by {self.world_size} data-parallel "
                "processes; use --device cuda (each process takes GPU LOCAL_RANK) or cpu."
            )
        if device != "cuda":
            return device
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if self.local_rank >= count:
            raise ConfigError(
                f"Process LOCAL_RANK={self.local_rank} has no GPU of its own (torch sees {count} "
                "CUDA device(s) on this node); start at most that many processes per node."
            )
        return f"cuda:{self.local_rank}"

    @staticmethod
    def backend_for(device: str) -> str:
        """``nccl`` for a CUDA device, ``gloo`` otherwise (``CRANE_DIST_BACKEND`` overrides)."""
        chosen = os.environ.get(ENV_BACKEND, "").strip().lower()
        if chosen:
            if chosen not in ("gloo", "nccl"):
                raise ConfigError(f"{ENV_BACKEND}={chosen!r} must be gloo or nccl.")
            return chosen
        return "nccl" if device.startswith("cuda") else "gloo"

    @contextlib.contextmanager
    def session(self, device: str = "cpu") -> Iterator[Distributed]:
        """Join the process group for the duration (a no-op when alone, or when the launcher's
        code already joined one); leave it at exit, also after an error.

        ``device`` is this rank's device (from :meth:`device_for`); it picks the backend.
        """
        if not self.enabled:
            yield self
            return
        import torch
        import torch.distributed as dist

        if not dist.is_available():
            raise ConfigError("This build of torch has no torch.distributed; run one process.")
        owned = not dist.is_initialized()
        if owned:
            backend = self.backend_for(device)
            if backend == "nccl":
                if not device.startswith("cuda:"):
                    raise ConfigError(
                        f"The nccl backend needs the model on a GPU (--device cuda), not "
                        f"'{device}'; unset {ENV_BACKEND} or set it to gloo."
                    )
                torch.cuda.set_device(device)
            try:
                dist.init_process_group(
                    backend=backend,
                    init_method="env://",
                    rank=self.rank,
                    world_size=self.world_size,
                    timeout=datetime.timedelta(seconds=timeout_seconds()),
                )
            except (RuntimeError, ValueError) as exc:
                raise DistributedError(
                    f"Rank {self.rank} could not join the {self.world_size}-process group "
                    f"({backend}): {_first_line(exc)}; check MASTER_ADDR/MASTER_PORT and that "
                    "every process was started."
                ) from None
        try:
            yield self
        finally:
            if owned and dist.is_initialized():
                dist.destroy_process_group()

    def barrier(self) -> None:
        """Wait until every rank arrives (process-group timeout applies); no-op when alone."""
        if self.enabled:
            self.exchange(None)

    def exchange(self, failure: str | None) -> list[str | None]:
        """Every rank's ``failure`` (``None``: it went well), in rank order; no-op when alone.

        A collective: it returns when every rank has called it, and raises
        :class:`DistributedError` when the process group breaks (a rank died) or the timeout
        passes.
        """
        if not self.enabled:
            return [failure]
        import torch.distributed as dist

        gathered: list[str | None] = [None] * self.world_size
        try:
            dist.all_gather_object(gathered, failure)
        except (RuntimeError, ValueError) as exc:  # DistBackendError is a RuntimeError
            raise DistributedError(
                f"Rank {self.rank} lost contact with the other processes while waiting for them "
                f"({_first_line(exc)}); another process probably died or timed out "
                f"({ENV_TIMEOUT}={timeout_seconds():g} s): see its output."
            ) from None
        return gathered

    @contextlib.contextmanager
    def all_or_none(self) -> Iterator[None]:
        """Run the block on every rank; at its end, tell the others whether it failed.

        The rank whose block raised re-raises its own error; every other rank raises a
        :class:`DistributedError` naming the first failed rank and its message, so no rank
        waits forever for one that has given up. When alone, this is a plain block.
        """
        if not self.enabled:
            yield
            return
        try:
            yield
        except Exception as exc:
            message = _first_line(exc)
            name = type(exc).__name__
            with contextlib.suppress(DistributedError):
                self.exchange(message if isinstance(exc, CraneError) else f"{name}: {message}")
            raise
        failures = self.exchange(None)
        failed = [(rank, text) for rank, text in enumerate(failures) if text is not None]
        if failed:
            rank, text = failed[0]
            raise DistributedError(
                f"Rank {rank} of {self.world_size} failed ({text}); rank {self.rank} stops too."
            )


def model_device(loaded: LoadedModel) -> str:
    """The device of a loaded model's first parameter, as ``cpu`` or ``cuda:N``."""
    parameter = next(iter(loaded.model.parameters()), None)
    return str(parameter.device) if parameter is not None else "cpu"


def share_statistics(
    loaded: LoadedModel,
    corpus: Corpus,
    methods: Sequence[str],
    *,
    out_dir: str | Path | None,
    options: IdentifyOptions | None = None,
    progress: Progress | None = None,
    verify_methods: Sequence[str] | None = None,
    budget: str = "0.5%",
    reference_budget: str = "0.5%",
    search_methods: Sequence[str] | None = None,
) -> None:
    """The data-parallel part of :func:`crane.identification.identify_methods` (which calls
    it with its own arguments): a no-op in a single process.

    Under ``torchrun``/``accelerate launch`` (``WORLD_SIZE`` above 1) this rank joins the
    process group (unless its caller already did), computes its share of every statistics
    shard of the run into ``out_dir`` (which every rank must see) and waits for the others (a
    failure on any rank stops every rank). Rank 0 then returns, and ``identify_methods``
    finds every shard complete and only merges, scores, verifies and writes; every other rank
    raises :class:`RankDone`.
    """
    from crane.identification import collect_shards
    from crane.progress import NullProgress

    dist = Distributed.from_env()
    if not dist.enabled:
        return
    if out_dir is None:
        raise ConfigError(
            f"Data-parallel identification ({dist.world_size} processes) needs a run directory "
            "that every process writes its shards to (--out, or out/out_dir in Python)."
        )
    progress = progress or NullProgress()
    share = dist.rank_and_world
    assert share is not None
    with dist.session(model_device(loaded)), dist.all_or_none():
        collect_shards(
            loaded, corpus, list(methods), rank=share, options=options, out_dir=out_dir,
            progress=progress, verify_methods=verify_methods, budget=budget,
            reference_budget=reference_budget, search_methods=search_methods,
        )
    if not dist.is_main:
        raise RankDone(dist.rank, dist.world_size)
    progress.message(
        f"all {dist.world_size} processes have saved their shards; rank 0 merges, scores, "
        "verifies and writes"
    )


def run_study(
    config: StudyConfig,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    report: bool = True,
) -> StudyResult | None:
    """:func:`crane.study.run_study` on every process of a data-parallel launch (the same as
    it in a single process): the identification statistics are split between the ranks, and
    rank 0 alone then identifies, evaluates and writes the study; it returns the result on
    rank 0 and ``None`` on the others, which stop after their share (or at once when the
    study's identify stage is already complete). ``cuda`` means GPU ``LOCAL_RANK``.
    """
    from crane.study import run_study as run

    dist = Distributed.from_env()
    if dist.enabled:
        config = replace(config, device=dist.device_for(config.device))
    if dist.is_main:
        return run(config, out_dir, progress=progress, report=report)
    from crane.manifest import Manifest
    from crane.models.loading import load_model
    from crane.progress import NullProgress
    from crane.study.evaluate import study_benchmarks
    from crane.study.identify import identify_stage

    config.validate()
    quiet = NullProgress()
    loaded = load_model(
        config.model, dtype=config.dtype, device=config.device,
        trust_remote_code=config.trust_remote_code,
    )
    study_benchmarks(config, loaded, quiet)  # a benchmark that fails, fails here as on rank 0
    out = Path(out_dir)
    try:  # the same decision as rank 0's: reuse the finished stage, or identify (our share)
        identify_stage(config, loaded, out, Manifest(out, loaded.identity.key()), quiet, [])
    except RankDone:
        pass
    return None
