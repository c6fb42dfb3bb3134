"""``crane methods``: list the identification methods of the registry (:mod:`crane.methods`)."""

from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from crane.cli.render import console


def methods_cmd() -> None:
    """List the identification methods (--method NAME) and what each needs.

    Per method: the statistics it is computed from, its relevance method, whether it has its
    own set size (--budget own), the site of its sets, whether it is verified, and a summary.
    """
    from crane.methods import registered_methods

    table = Table(
        title="identification methods (crane.methods)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("statistics", no_wrap=True)
    table.add_column("relevance", no_wrap=True)
    table.add_column("own size", no_wrap=True)
    table.add_column("site", no_wrap=True)
    table.add_column("verified", no_wrap=True)
    table.add_column("description")
    for spec in registered_methods():
        table.add_row(
            escape(spec.name),
            spec.statistics,
            spec.relevance or "-",
            "yes" if spec.has_own_size else "no",
            spec.site or "run's",
            "yes" if spec.verifiable else "no",
            escape(spec.description),
        )
    console.print(table)
