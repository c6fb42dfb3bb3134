"""``crane neurons show|import-lape``: inspect neuron sets; convert LAPE's published files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from crane.cli.render import console, print_neuron_set
from crane.errors import ConfigError

app = typer.Typer(help="Inspect neuron sets.", no_args_is_help=True)


def neuron_file(path: Path, method: str) -> Path:
    """A neuron set file, or ``neurons-<method>.json`` inside a run directory."""
    if path.is_dir():
        file = path / f"neurons-{method}.json"
        if not file.is_file():
            raise ConfigError(
                f"{path} holds no neurons-{method}.json; run crane identify there or pick "
                "another --method."
            )
        return file
    return path


@app.command("show")
def neurons_show(
    path: Annotated[Path, typer.Argument(help="A neuron set file (neurons-*.json) or run directory.")],
) -> None:
    """Per-language counts and per-layer distribution of a neuron set."""
    from crane.neurons import NeuronSet

    files = sorted(path.glob("neurons-*.json")) if path.is_dir() else [path]
    if not files:
        raise ConfigError(f"{path} holds no neurons-*.json file; run crane identify first.")
    sets = [(file, NeuronSet.load(file)) for file in files]  # all read before any is shown
    for file, neuron_set in sets:
        meta = neuron_set.meta
        # provenance is the file's own text: shown as written, never read as rich markup
        title = escape(f"{file.name}: {meta.get('method', '?')}, site {neuron_set.site}")
        print_neuron_set(neuron_set, title)
        model = meta.get("model") or {}
        if model:
            console.print(
                escape(
                    f"model: {model.get('spec')} ({model.get('kind')}); budget "
                    f"{meta.get('budget')}"
                ),
                highlight=False,
            )


@app.command("import-lape")
def neurons_import_lape(
    path: Annotated[Path, typer.Argument(help="A LAPE .neuron.pth file (list over languages of lists over layers).")],
    langs: Annotated[str, typer.Option(help="The file's language order, e.g. en,zh,fr,es,vi,id,ja.")],
    out: Annotated[Path, typer.Option(help="Where to write the crane neuron set (.json or .safetensors).")],
    d_ff: Annotated[int | None, typer.Option(help="MLP width of the model (checked against indices).")] = None,
) -> None:
    """Convert a published LAPE neuron file into a crane neuron set (tensors only; never unpickles objects)."""  # noqa: E501
    from crane.cli.options import check_options
    from crane.data.languages import parse_language_list
    from crane.io import check_output_file
    from crane.lape_format import import_lape

    check_options(at_least={"--d-ff": (d_ff, 1)})
    check_output_file(out)  # fail before reading, not after
    neuron_set = import_lape(path, parse_language_list(langs), d_ff=d_ff)
    neuron_set.save(out)
    print_neuron_set(neuron_set, escape(f"imported from {path.name}"))
    console.print(escape(f"wrote {out}"), highlight=False)
