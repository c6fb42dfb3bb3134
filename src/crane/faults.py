"""Named kill points, for testing that a killed run resumes to the same results.

Long work calls :func:`kill_point` at named points (after a shard is saved, between group
tests, after an evaluation row, in the middle of an atomic write, ...). When the environment
variable ``CRANE_KILL_AT`` is set to ``PATTERN`` or ``PATTERN:N`` when the process starts,
the N-th point (default the first) whose name matches ``PATTERN`` (shell-style, ``fnmatch``)
kills the process with SIGKILL: no ``finally`` block, no ``atexit``, no flush, as the
out-of-memory killer or a scheduler's hard limit would leave it. With ``CRANE_KILL_SIGNAL``
set to ``INT`` or ``TERM`` the process sends itself that signal instead (Ctrl-C, a
scheduler's polite stop), which the CLI turns into an orderly exit (130, 143). Unset
(always, outside the tests), a kill point is one comparison with ``None``.

The points (docs/reliability.md keeps this list):

- ``stats:<folder>/<lang>/<file>``: one statistics file of a shard and its sidecar are saved,
  e.g. ``stats:stats/en/shard-00000.safetensors`` (relevance) or
  ``stats:activations/zh/shard-00000.texts.safetensors`` (the per-text part of an activation
  shard, saved before its main part: a kill here leaves half a shard);
- ``select``: statistics are complete, a set is about to be chosen (the start of causal
  verification, and every top-k selection);
- ``verify``: after each group test of causal verification;
- ``search:<lang>``: after each trial of the set search is checkpointed;
- ``identified``: every set of a study has been written, before the stage is recorded;
- ``eval-lang``: one language of an evaluation row is done (the row is not saved yet);
- ``eval-row``: an evaluation row has been saved;
- ``study-json``: every benchmark is done, before ``study.json`` is written;
- ``report``: the report's figures are written, before its tables and ``index.html``;
- ``write:<file name>``: inside every atomic write, after the temporary file is complete
  and synced, before it is renamed over ``<file name>``.
"""

from __future__ import annotations

import fnmatch
import os
import signal

ENV = "CRANE_KILL_AT"
ENV_SIGNAL = "CRANE_KILL_SIGNAL"
SIGNALS = {"KILL": signal.SIGKILL, "INT": signal.SIGINT, "TERM": signal.SIGTERM}


def _parse(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    pattern, sep, count = spec.rpartition(":")
    if sep and count.isdigit():
        return pattern, max(1, int(count))
    return spec, 1


_target = _parse(os.environ.get(ENV))
_seen = 0


def kill_point(name: str) -> None:
    """Kill this process here when ``CRANE_KILL_AT`` names this point (see the module doc)."""
    if _target is None:
        return
    _hit(name)


def _hit(name: str) -> None:
    global _seen
    assert _target is not None
    pattern, count = _target
    if not fnmatch.fnmatchcase(name, pattern):
        return
    _seen += 1
    if _seen >= count:
        name = os.environ.get(ENV_SIGNAL, "KILL").strip().upper()
        os.kill(os.getpid(), SIGNALS.get(name, signal.SIGKILL))


__all__ = ["ENV", "ENV_SIGNAL", "kill_point"]
