"""The README and docs/ say only what the code does: every ``crane`` command in a shell block
parses against the real command line (command, options, value types), every Python block
compiles and every ``crane`` name or ``from crane... import`` it uses exists, and every file the
text links to is in the repository. (Running them: tests/unit/test_examples.py runs examples/,
tests/integration/test_readme_quickstart.py runs the README's quick start as written.)"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from pathlib import Path

import pytest
import typer

try:  # recent typer vendors its own click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer on plain click
    from click import UsageError

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _blocks(language: set[str]) -> list[tuple[str, str]]:
    out = []
    for path in DOCS:
        for lang, body in FENCE.findall(path.read_text(encoding="utf-8")):
            if lang in language:
                out.append((path.name, body))
    return out


def _shell_commands() -> list[tuple[str, list[str]]]:
    """(doc, argv after ``crane``) for every crane invocation in a bash block, continuation
    lines joined, comments dropped; ``torchrun ... -m crane ...`` counts too."""
    found = []
    for doc, body in _blocks({"bash", "sh", "shell", "console"}):
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == "crane":
                found.append((doc, words[1:]))
            elif "-m" in words and words[words.index("-m") + 1 : words.index("-m") + 2] == ["crane"]:
                found.append((doc, words[words.index("-m") + 2 :]))
    return found


COMMANDS = _shell_commands()


def _parse(argv: list[str]) -> object:
    """Parse ``argv`` down to the leaf command (raises click's usage errors)."""
    from crane.cli import app

    command = typer.main.get_command(app)
    ctx = command.make_context("crane", list(argv), resilient_parsing=False)
    while hasattr(command, "resolve_command"):  # a group: descend to the subcommand
        protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])
        name, sub, rest = command.resolve_command(ctx, [*protected, *ctx.args])
        assert sub is not None, f"unknown command {name}"
        command, ctx = sub, sub.make_context(name or "", rest, parent=ctx)
    return ctx


def test_the_docs_show_the_main_commands() -> None:
    shown = {tuple(argv[:2]) if argv[0] in ("models", "data", "neurons") else (argv[0],)
             for _, argv in COMMANDS}
    for expected in [("identify",), ("evaluate",), ("run",), ("report",), ("transfer",),
                     ("lm-eval",), ("demo",), ("models", "check"), ("neurons", "show")]:
        assert expected in shown, f"no doc shows crane {' '.join(expected)}"


@pytest.mark.parametrize("doc,argv", COMMANDS, ids=[f"{d}:{' '.join(a)[:60]}" for d, a in COMMANDS])
def test_every_documented_command_parses(doc: str, argv: list[str]) -> None:
    try:
        _parse(argv)
    except UsageError as exc:  # unknown option, missing argument, bad value
        pytest.fail(f"{doc}: `crane {' '.join(argv)}` does not parse: {exc.format_message()}")


def test_a_wrong_option_would_be_caught() -> None:
    with pytest.raises(UsageError):
        _parse(["identify", "--model", "m", "--langs", "en", "--out", "o", "--no-such-option"])
    with pytest.raises(UsageError):
        _parse(["evaluate", "--model", "m", "--max-texts", "many"])


PYTHON = _blocks({"python"})


@pytest.mark.parametrize("doc,code", PYTHON, ids=[f"{d}:{i}" for i, (d, _) in enumerate(PYTHON)])
def test_every_python_block_compiles_and_names_exist(doc: str, code: str) -> None:
    import crane

    tree = ast.parse(code, filename=doc)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("crane"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{doc}: {node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("crane"):
                    importlib.import_module(alias.name)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "crane"):
            assert hasattr(crane, node.attr), f"{doc}: crane has no attribute {node.attr}"


def test_linked_files_exist() -> None:
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    for path in DOCS:
        for target in link.findall(path.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            assert (path.parent / target).exists(), f"{path.name} links to missing {target}"
