"""``crane models check|list``: load a model and check its sites; list the supported families."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from crane.cli.options import AttnOpt, DeviceOpt, DtypeOpt, ModelArg, RevisionOpt, TrustOpt
from crane.cli.render import RichReporter, console, progress_bars

app = typer.Typer(help="Load and inspect models.", no_args_is_help=True)


@app.command("check")
def models_check(
    model: ModelArg,
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "cpu",
    trust_remote_code: TrustOpt = False,
    revision: RevisionOpt = None,
    attn_implementation: AttnOpt = None,
) -> None:
    """Load a model, check its neuron sites, and print its family, layers and MLP width."""
    from crane.models.loading import describe, load_model

    with progress_bars() as bar:
        reporter = RichReporter(bar)
        loaded = load_model(
            model, dtype=dtype, device=device, trust_remote_code=trust_remote_code,
            progress=reporter.message, revision=revision, attn_implementation=attn_implementation,
        )
    info = describe(loaded)
    table = Table(title=f"model check: {model}", show_header=False)
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
        elif isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value))
        table.add_row(str(key), str(value))
    console.print(table)
    console.print("[green]ok[/green]: every neuron site fires once per layer with width d_ff.")


@app.command("list")
def models_list() -> None:
    """List the supported architecture families and their model types."""
    from crane.models.adapters import _REGISTRY

    table = Table("family", "model types", "layers", "down projection", "activation", "gated")
    by_family: dict[str, Any] = {}
    for model_type, adapter in sorted(_REGISTRY.items()):
        by_family.setdefault(adapter.family, (adapter, []))[1].append(model_type)
    for family, (adapter, types) in sorted(by_family.items()):
        table.add_row(
            family, ", ".join(types), " | ".join(adapter.layers),
            f"{adapter.mlp}.{adapter.down_proj}", f"{adapter.mlp}.{adapter.act}",
            "yes" if adapter.gated else "no",
        )
    console.print(table)
