"""The ``crane`` command line: a thin layer over the library, rendered with rich.

One module per command group (models, data, identify, methods, evaluate, neurons, transfer,
lm_eval, study); ``render`` holds the tables and progress bars they share, ``options`` the shared
option types. :func:`main` is the one error path: a :class:`~crane.errors.CraneError` prints one
``error:`` line and exits with its code (2); a usage error exits 2 with click's message.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

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
@app.callback()
def _verbosity(
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Only errors, warnings and results (no progress lines)."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Also the library's DEBUG log lines on stderr."
    ),
) -> None:
    """Find the neurons a multilingual language model needs for each language (CRANE)."""
    import logging

    from crane.cli.render import VERBOSITY

    VERBOSITY["level"] = 0 if quiet else 2 if verbose else 1
    if verbose:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger = logging.getLogger("crane")
        if not any(getattr(h, "_crane", False) for h in logger.handlers):
            handler._crane = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)


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


class Interrupted(BaseException):  # noqa: N818 (a signal, not an error)
    """SIGINT or SIGTERM arrived: unwinds the work (temporary files are removed on the way,
    finished shards and rows stay) without being caught as an ordinary exception."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.exit_code = 128 + signum


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` while the command runs (handlers are
    restored afterwards; outside the main thread signals cannot be handled and are left)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, _raise_interrupted)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; user errors print one sentence and exit with code 2; an
    interrupt (Ctrl-C, SIGTERM) prints one line and exits with 130 or 143."""
    try:
        with _interruptible():
            code = app(args=argv, standalone_mode=False)
    except CraneError as exc:
        from rich.markup import escape

        message = escape(" ".join(str(exc).splitlines()))  # one line; [brackets] kept
        err_console.print(f"[bold red]error[/bold red]: {message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except Interrupted as stop:
        err_console.print("interrupted; rerun the same command to resume", highlight=False)
        sys.exit(stop.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted; rerun the same command to resume", highlight=False)
        sys.exit(130)
    except Exception as exc:  # click usage errors carry their own exit code
        if isinstance(exc, _click_exceptions()):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code != 0:  # typer returns some exit codes instead of raising
        sys.exit(code)


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
