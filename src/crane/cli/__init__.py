"""The ``crane`` command line: a thin layer over the library, rendered with rich.

One module per command group (models, data, identify, methods, evaluate, neurons, transfer,
lm_eval, study); ``render`` holds the tables and progress bars they share, ``options`` the shared
option types. :func:`main` is the one error path: a :class:`~crane.errors.CraneError` prints one
``error:`` line and exits with its code (2); a usage error exits 2 with click's message.
"""

from __future__ import annotations

import sys

import typer

from crane.cli import data, evaluate, identify, lm_eval, methods, models, neurons, study, transfer
from crane.cli.render import err_console
from crane.errors import CraneError

__all__ = ["app", "main"]

app = typer.Typer(
    name="crane",
    help="Find the neurons a multilingual language model needs for each language (CRANE).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(models.app, name="models")
app.add_typer(data.app, name="data")
app.command("evaluate")(evaluate.evaluate_cmd)
app.command("identify")(identify.identify_cmd)
app.command("methods")(methods.methods_cmd)
app.add_typer(neurons.app, name="neurons")
app.command("transfer")(transfer.transfer_cmd)
app.command("lm-eval")(lm_eval.lm_eval_cmd)
app.command("demo")(study.demo_cmd)
app.command("run")(study.run_cmd)
app.command("report")(study.report_cmd)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; user errors print one sentence and exit with code 2."""
    try:
        app(args=argv, standalone_mode=False)
    except CraneError as exc:
        from rich.markup import escape

        message = escape(" ".join(str(exc).splitlines()))  # one line; [brackets] kept
        err_console.print(f"[bold red]error[/bold red]: {message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors carry their own exit code
        if isinstance(exc, _click_exceptions()):
            exc.show()
            sys.exit(exc.exit_code)
        raise


def _click_exceptions() -> tuple[type[BaseException], ...]:
    """Usage-error classes: click's, and those of the click copy that recent typer vendors."""
    import click

    classes: list[type[BaseException]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as VendoredClickException
    except ImportError:  # typer on plain click
        pass
    else:
        classes.append(VendoredClickException)
    return tuple(classes)
