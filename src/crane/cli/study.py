"""``crane demo|run|report``: run or resume a study, and rebuild its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from crane.cli.options import RunDirOpt
from crane.cli.render import RichReporter, console, print_study, progress_bars
from crane.io import check_output_dir, parse_json


def run_study(config: Any, out: Path) -> None:
    """Run (or resume) the study ``config`` in ``out``; print its tables, notes and files.

    Under ``torchrun``/``accelerate launch`` the identification statistics are split between
    the processes and rank 0 alone does the rest and prints (:func:`crane.distributed.run_study`).
    """
    from crane.distributed import Distributed
    from crane.distributed import run_study as run
    from crane.progress import NullProgress

    check_output_dir(out)
    main = Distributed.from_env().is_main
    with progress_bars(disable=not main) as bar:
        result = run(config, out, progress=RichReporter(bar) if main else NullProgress())
    if result is None:
        return  # another rank than 0: its share of the statistics is saved
    print_study(result.results)
    for note in result.results.get("notes", []):
        console.print(f"[yellow]note[/yellow]: {note}")
    console.print(f"study: {out / 'study.json'} ({result.seconds:.0f} s)")
    if result.report is not None:
        console.print(f"report: {result.report}")


def demo_cmd(
    out: RunDirOpt = Path("runs/demo"),
    model: Annotated[str, typer.Option(help="Model to run the demo on.")] = "gemma-3-270m",
    seed: int = 0,
) -> None:
    """The study on the packaged Gemma 3 270M, sized for 15 minutes on 2 CPU cores: CRANE,
    LAPE and the activation contrast at equal budget with three random controls, masked
    evaluation per language (bits per byte; a 200-item cloze test and generation fidelity
    under CRANE's sets), metrics, report."""
    from crane.demo import demo_config

    run_study(demo_config(model=model, seed=seed), out)


def run_cmd(
    config: Annotated[Path, typer.Argument(help="Study configuration (.toml or .yaml).")],
    out: RunDirOpt,
    model: Annotated[
        str | None, typer.Option(help="Use this model instead of the config's model.")
    ] = None,
) -> None:
    """Run (or resume) a study from a configuration file on any model, languages and corpora."""
    import dataclasses

    from crane.study import load_config

    study = load_config(config)
    if model is not None:
        study = dataclasses.replace(study, model=model)
    run_study(study, out)


def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A study's run directory (holds study.json).")],
    titles: Annotated[
        bool,
        typer.Option(
            "--titles/--no-titles",
            help="Draw each figure's title; --no-titles leaves it to a paper's caption "
            "(panel titles, axis labels and legends stay).",
        ),
    ] = True,
    latex: Annotated[
        bool,
        typer.Option(
            "--latex",
            help="Also write booktabs LaTeX tables with 95% intervals to report/tables/*.tex.",
        ),
    ] = False,
) -> None:
    """Rebuild the figures (PNG, PDF, SVG), tables and the HTML report from a study's saved
    results (no recomputation)."""
    from crane.report import build_report

    path = build_report(run_dir, titles=titles, latex=latex)
    results = parse_json((run_dir / "study.json").read_text(encoding="utf-8"))
    print_study(results)
    console.print(f"report: {path}")
    if latex:
        console.print(f"LaTeX tables: {path.parent / 'tables'}/*.tex")
