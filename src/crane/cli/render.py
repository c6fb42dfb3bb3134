"""Rich rendering shared by the commands: consoles, progress bars, tables and small writers."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


PLAIN_EVERY = 30.0
"""Seconds between the progress lines of one task when stderr is not a terminal."""
VERBOSITY = {"level": 1}
"""0: ``--quiet`` (errors and results only), 1: default, 2: ``--verbose`` (DEBUG logs too)."""


class RichReporter:
    """Renders library progress events: rich progress bars on a terminal; elsewhere (a log
    file, nohup, Slurm) one plain line per task start and end with its elapsed seconds, and
    a line with the elapsed time and an ETA every :data:`PLAIN_EVERY` seconds in between.
    Every event is also logged at INFO on the ``crane`` logger."""

    def __init__(self, progress: RichProgress) -> None:
        from crane.progress import TaskClock

        self.progress = progress
        self.task: Any = None
        self.clock = TaskClock(logging.INFO)
        self.plain = progress.disable and VERBOSITY["level"] > 0
        self.last_line = 0.0

    def start(self, description: str, total: int) -> None:
        self._finish_line()
        self.clock.start(description, total)
        self.last_line = time.perf_counter()
        if self.plain:
            err_console.print(f"{escape(description)}: {total} steps", soft_wrap=True)
            return
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(description, total=total)

    def advance(self, steps: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, steps)
        description, done_before = self.clock.description, self.clock.done
        finished = self.clock.advance(steps)
        if not self.plain or description is None:
            return
        if finished:
            err_console.print(
                f"{escape(description)}: done ({self.clock.total} steps) in "
                f"{self.clock.elapsed():.1f} s",
                soft_wrap=True,
            )
        elif time.perf_counter() - self.last_line >= PLAIN_EVERY and done_before + steps:
            self.last_line = time.perf_counter()
            eta = self.clock.eta()
            left = f", about {eta:.0f} s left" if eta is not None else ""
            err_console.print(
                f"{escape(description)}: {self.clock.done}/{self.clock.total}, "
                f"{self.clock.elapsed():.0f} s{left}",
                soft_wrap=True,
            )

    def message(self, text: str) -> None:
        logging.getLogger("crane").info("%s", text)
        if VERBOSITY["level"] == 0:
            return
        if self.plain:
            err_console.print(escape(text), soft_wrap=True)
        else:
            self.progress.console.print(f"[dim]{escape(text)}[/dim]")

    def _finish_line(self) -> None:
        """A task that ends without reaching its total (e.g. resumed shards) still gets its
        end line."""
        description = self.clock.description
        if description is not None and self.plain:
            err_console.print(
                f"{escape(description)}: done ({self.clock.done} of {self.clock.total} steps) "
                f"in {self.clock.elapsed():.1f} s",
                soft_wrap=True,
            )
        self.clock.finish()


def progress_bars(disable: bool = False) -> RichProgress:
    """Progress bars on stderr (description, bar, done/total, elapsed time); no bars when
    stderr is not a terminal (the reporter prints plain lines there) or under ``--quiet``."""
    return RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=disable or not err_console.is_terminal or VERBOSITY["level"] == 0,
    )


def note(text: str) -> None:
    """A yellow ``note:`` line on stderr, one line however long (the text is not markup)."""
    err_console.print(f"[yellow]note[/yellow]: {escape(text)}", soft_wrap=True)


def signed(value: Any) -> str:
    """``+0.123`` for a number, ``n/a`` for anything else."""
    return f"{value:+.3f}" if isinstance(value, (int, float)) else "n/a"


def write_json(out: Path, data: Any, default: Callable[[Any], Any] = str) -> None:
    """Write ``data`` as indented JSON to ``out`` (atomically) and say so."""
    from crane.io import atomic_write_text

    atomic_write_text(out, json.dumps(data, indent=1, default=default) + "\n")
    console.print(f"wrote {out}")


def print_matrix(title: str, matrix: Any) -> None:
    """A masking matrix: bits per byte per evaluated language, change vs unmasked in brackets."""
    bpb, delta = matrix.bpb(), matrix.delta()
    table = Table(title=title)
    table.add_column("masked \\ evaluated", no_wrap=True, overflow="fold")
    table.add_column("neurons", justify="right")
    for lang in bpb.columns:
        table.add_column(f"{lang} bits/byte", justify="right")
    for row in bpb.index:
        cells = [
            f"{bpb.loc[row, lang]:.3f}" if row == "none"
            else f"{bpb.loc[row, lang]:.3f} ({delta.loc[row, lang]:+.3f})"
            for lang in bpb.columns
        ]
        table.add_row(row, str(matrix.sizes.get(row, 0)), *cells)
    console.print(table)


def print_neuron_set(neuron_set: Any, title: str) -> None:
    """Per-language size and per-layer counts of a neuron set."""
    n_layers = neuron_set.n_layers or 1 + max(
        (max(layers, default=0) for layers in neuron_set.neurons.values()), default=0
    )
    table = Table(title=title)
    table.add_column("language")
    table.add_column("neurons", justify="right")
    table.add_column(f"per layer (0 → {n_layers - 1})")
    for lang in neuron_set.languages:
        counts = neuron_set.layer_counts(lang, n_layers)
        table.add_row(lang, str(neuron_set.size(lang)), " ".join(str(c) for c in counts))
    console.print(table)


def print_overlaps(found: dict[str, Any]) -> None:
    """Jaccard overlap between the methods' sets, per language."""
    names = list(found)
    languages = [
        lang for lang in found[names[0]].languages
        if all(lang in s.languages for s in found.values())
    ]
    table = Table(title=f"overlap between methods (Jaccard per language: {', '.join(languages)})")
    table.add_column("method")
    for name in names:
        table.add_column(name, justify="right")
    for a in names:
        cells = []
        for b in names:
            values = [found[a].overlap(found[b], lang)["jaccard"] for lang in languages]
            cells.append(" ".join(f"{v:.2f}" for v in values))
        table.add_row(a, *cells)
    console.print(table)


def print_study(results: dict[str, Any]) -> None:
    """One table per benchmark: each method's selectivity Sel with its 95% interval (the
    headline), its verdict against the random control, and DD as a secondary number."""
    from crane.results import MIN_UNITS, NOT_SELECTIVE

    languages = results["languages"]
    for name, bench in results.get("benchmarks", {}).items():
        metrics = results.get("metrics", {}).get(name, {})
        verdict = results.get("comparisons", {}).get(name, {}).get("verdict", {})
        table = Table(title=f"{bench['title']}: selectivity Sel [95% CI] (diagonal dominance ×)")
        table.add_column("method")
        for lang in languages:
            table.add_column(lang, justify="right")
        unmasked = []
        for lang in languages:
            low, high = (bench.get("none_ci") or {}).get(lang) or [None, None]
            interval = (
                f" [{low:.2f}, {high:.2f}]"
                if isinstance(low, (int, float)) and isinstance(high, (int, float)) else ""
            )
            unmasked.append(signed(bench["none"][lang]).lstrip("+") + interval)
        table.add_row("unmasked", *unmasked)
        weak = False
        for method, per_lang in metrics.items():
            cells = []
            for lang in languages:
                m = per_lang.get(lang)
                if m is None:
                    cells.append("")
                    continue
                sel, ci, dd = m.get("sel"), m.get("sel_ci") or [None, None], m.get("dd")
                ratio = f"{dd:.1f}×" if isinstance(dd, (int, float)) else "n/a"
                interval = (
                    f" [{ci[0]:+.2f}, {ci[1]:+.2f}]"
                    if all(isinstance(c, (int, float)) for c in ci) else ""
                )
                cell = f"{signed(sel)}{interval} ({ratio})"
                if verdict.get(method, {}).get(lang) == NOT_SELECTIVE:
                    cell += " †"
                    weak = True
                cells.append(cell)
            table.add_row(method, *cells)
        console.print(table)
        _print_searched_against(results, name, metrics)
        if weak and any(str(m).startswith("random") for m in metrics):
            console.print(
                f"† {NOT_SELECTIVE}: Sel does not clear the layer-matched random control (paired "
                "95% interval of the difference not above 0)."
            )
        elif weak:  # a benchmark run without the random controls (benchmark_methods)
            console.print(
                f"† {NOT_SELECTIVE}: Sel's own 95% interval is not above 0 (this benchmark ran "
                "without the random controls)."
            )
        few = {
            lang: n for lang, n in bench.get("items", {}).items()
            if isinstance(n, int) and n < MIN_UNITS
        }
        if few:
            listed = ", ".join(f"{lang} {n}" for lang, n in few.items())
            console.print(
                f"[yellow]warning[/yellow]: the intervals of {name} rest on fewer than "
                f"{MIN_UNITS} texts or items per language ({listed})."
            )


def _print_searched_against(results: dict[str, Any], name: str, metrics: dict[str, Any]) -> None:
    """The searched reference method (``crane+search``) against every other method of one
    benchmark: Sel differences with their paired 95% intervals."""
    searched = f"{results.get('reference_method')}+search"
    paired = results.get("comparisons", {}).get(name, {}).get("paired", {}).get(searched)
    if not paired:
        return
    languages = results["languages"]
    table = Table(title=f"Sel({searched}) − Sel(method), paired [95% CI]")
    table.add_column("method")
    for lang in languages:
        table.add_column(lang, justify="right")
    for method in metrics:
        if method == searched or str(method).startswith("random-") or method not in paired:
            continue
        cells = []
        for lang in languages:
            got = paired[method].get(lang) or {}
            ci = got.get("ci") or [None, None]
            interval = (
                f" [{ci[0]:+.2f}, {ci[1]:+.2f}]"
                if all(isinstance(c, (int, float)) for c in ci) else ""
            )
            cells.append(f"{signed(got.get('diff'))}{interval}" if got else "")
        table.add_row(method, *cells)
    console.print(table)

