"""One spelling per meaning across the commands that load a model (issue 16): the same option
name for languages, the model, its dtype, device, revision, attention implementation and
remote code, wherever a command has that meaning."""

from __future__ import annotations

import typer

from crane.cli import app

MODEL_COMMANDS = ("identify", "evaluate", "transfer", "lm-eval", "models check")
SHARED = ("--model", "--device", "--trust-remote-code", "--revision")
ONE_SPELLING = {
    "languages": ("--langs", {"--languages", "--language"}),
    "token budget per language": ("--max-tokens", {"--token-budget"}),
    "padded tokens per batch": ("--batch-tokens", {"--batch-max-tokens"}),
}


def _options() -> dict[str, set[str]]:
    """Command → every option spelling it accepts (aliases included)."""
    out: dict[str, set[str]] = {}

    def walk(command, prefix: str = "") -> None:  # type: ignore[no-untyped-def]
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, f"{prefix}{name} ")
            return
        names: set[str] = set()
        for param in command.params:
            if getattr(param, "param_type_name", "") == "option":
                names |= {o for o in [*param.opts, *param.secondary_opts] if o.startswith("--")}
        out[prefix.strip()] = names

    walk(typer.main.get_command(app))
    return out


def test_model_commands_share_their_model_options() -> None:
    options = _options()
    for command in MODEL_COMMANDS:
        names = options[command] | ({"--model"} if command == "models check" else set())
        missing = [o for o in SHARED if o not in names]
        assert not missing, (command, missing)
    for command in ("identify", "evaluate", "transfer", "models check"):
        assert {"--dtype", "--attn-implementation"} <= options[command], command


def test_one_meaning_has_one_primary_spelling() -> None:
    options = _options()
    for meaning, (spelling, others) in ONE_SPELLING.items():
        for command, names in options.items():
            stray = (names & others) - {"--languages"} if command == "lm-eval" else names & others
            assert not stray, (meaning, command, stray)
    assert "--langs" in options["lm-eval"] and "--languages" in options["lm-eval"]  # old alias
    for command in ("identify", "evaluate", "transfer"):
        assert "--langs" in options[command]


def test_out_names_a_directory_and_json_a_results_file() -> None:
    """``--out`` is a run directory (identify, run, demo, data split); a command that writes one
    results file takes ``--json`` (``--out`` stays its deprecated alias for one release)."""
    options = _options()
    for command in ("identify", "run", "demo", "data split"):
        assert "--out" in options[command] and "--json" not in options[command], command
    for command in ("evaluate", "transfer", "lm-eval"):
        assert "--json" in options[command], command
    command = typer.main.get_command(app)
    for name in ("evaluate", "transfer", "lm-eval"):
        (param,) = [p for p in command.commands[name].params if "--json" in p.opts]
        assert param.opts[0] == "--json" and "--out" in param.opts  # the alias, second


def test_a_deprecated_spelling_is_noted_only_when_used(monkeypatch, capsys) -> None:
    """The note reads the spelling on the command line (``--out`` or ``--out=FILE``), not a
    prefix of another option."""
    from crane.cli.options import note_deprecated

    for argv, shown in (
        (["crane", "evaluate", "--out", "r.json"], True),
        (["crane", "evaluate", "--out=r.json"], True),
        (["crane", "evaluate", "--json", "r.json"], False),
        (["crane", "evaluate", "--outer", "x"], False),
    ):
        monkeypatch.setattr("sys.argv", argv)
        note_deprecated("--out", "use --json")
        captured = capsys.readouterr()
        assert ("use --json" in captured.err + captured.out) is shown, argv
