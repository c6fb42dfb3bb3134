"""Bad inputs through the real command line (``crane.cli.main``), on tiny models built from configs.

Every refused input must give exit code 2 and one line ``error: <one sentence>`` that names the
problem and the fix, with no traceback; and it must lose nothing already computed and leave
nothing half-written (the files of an output directory are compared before and after). Inputs a
user expects to work (a huge single line, a damaged shard of a resumable run) are handled, and
the tests assert that instead.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import run_cli

from crane.neurons import NeuronSet
from crane.stats import read_sidecar

# ---- helpers --------------------------------------------------------------------------------


def assert_clear_error(code: int, out: str, err: str, *needles: str) -> str:
    """Exit code 2, no traceback, exactly one ``error:`` line (the last output) holding
    every needle (case-insensitive); returns the message."""
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    message = errors[0]
    assert err[err.index("error:") :].strip() == message, f"error spans several lines: {err!r}"
    for needle in needles:
        assert needle.lower() in message.lower(), (needle, message)
    return message


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (hidden temporaries included) → its bytes."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def seeded_dir(path: Path) -> dict[str, bytes]:
    """A run directory that already holds a result, to check it survives a refused command."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "neurons-earlier.json").write_text('{"kept": true}\n')
    return snapshot(path)


def write_corpus(folder: Path, **texts: list[str]) -> Path:
    """``folder/<lang>.txt`` with one text per line."""
    folder.mkdir(parents=True, exist_ok=True)
    for lang, lines in texts.items():
        (folder / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


EN = [f"All human beings number {i} are born free and equal in dignity." for i in range(12)]
ZH = [f"人人生而自由，在尊严和权利上一律平等{i}。" for i in range(12)]


def identify_argv(model: Path, out: Path, *extra: str, corpus: str = "udhr") -> list[str]:
    """A fast identification: one activation method, no verification unless asked."""
    return [
        "identify", "--model", str(model), "--langs", "en,zh", "--corpus", corpus,
        "--method", "actmean", "--budget", "4", "--out", str(out), *extra,
    ]  # fmt: skip


def model_copy(source: Path, target: Path, **config_changes: Any) -> Path:
    """A copy of a saved model directory with some config.json keys changed."""
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config.update(config_changes)
    (target / "config.json").write_text(json.dumps(config))
    return target


class Marker:
    """Pickles to a call that creates ``path`` when unpickled (a stand-in for malicious code)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


# ---- corpora --------------------------------------------------------------------------------


def test_empty_corpus(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    corpus = tmp_path / "texts.jsonl"
    corpus.write_text('{"text": "", "lang": "en"}\n\n{"text": "   ", "lang": "zh"}\n')
    before = seeded_dir(tmp_path / "run")
    code, out, err = run_cli(
        identify_argv(tiny_llama_dir, tmp_path / "run", corpus=str(corpus)), capsys
    )
    assert_clear_error(code, out, err, "texts.jsonl", "contains no texts", "add at least one")
    assert snapshot(tmp_path / "run") == before


def test_language_with_fewer_texts_than_needed(
    tiny_llama_dir: Path, tmp_path: Path, capsys
) -> None:
    """Verification holds texts out, so a language needs at least two."""
    corpus = write_corpus(tmp_path / "corpus", en=EN, zh=ZH[:1])
    argv = identify_argv(tiny_llama_dir, tmp_path / "run", corpus=str(corpus))
    argv[argv.index("actmean")] = "gradxact"
    code, out, err = run_cli(argv, capsys)
    assert_clear_error(code, out, err, "'zh' has 1 text", "too few", "--no-verify")
    assert not (tmp_path / "run").exists()


def test_no_text_within_the_token_budget(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    before = seeded_dir(tmp_path / "run")
    code, out, err = run_cli(
        identify_argv(tiny_llama_dir, tmp_path / "run", "--max-texts", "0"), capsys
    )
    assert_clear_error(code, out, err, "positive number", "--max-texts")
    assert snapshot(tmp_path / "run") == before


def test_unknown_language_code(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    argv = identify_argv(tiny_llama_dir, tmp_path / "run")
    argv[argv.index("en,zh")] = "en,xq"
    code, out, err = run_cli(argv, capsys)
    assert_clear_error(code, out, err, "'xq'", "ISO 639-1")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "name,content,extra,needles",
    [
        (  # --lang-field names a field the records do not have
            "texts.jsonl",
            "\n".join(json.dumps({"text": t, "lang": "en"}) for t in EN),
            ["--lang-field", "language"],
            ["cannot be determined", "--lang", "'language'"],
        ),
        (  # --lang-field names the text field: its values are not languages
            "texts.jsonl",
            "\n".join(json.dumps({"text": t, "lang": "en"}) for t in EN),
            ["--lang-field", "text"],
            ["unknown language code", "field 'text'", "ISO 639-1"],
        ),
        (  # CSV with the text and language columns swapped
            "texts.csv",
            "text,lang\n" + "\n".join(f'en,"{t}"' for t in EN),
            [],
            ["unknown language code", "field 'lang'", "row 2"],
        ),
    ],
    ids=["missing-field", "text-as-language", "swapped-columns"],
)
def test_mixed_up_language_fields(
    tiny_llama_dir: Path,
    tmp_path: Path,
    capsys,
    name: str,
    content: str,
    extra: list[str],
    needles: list[str],
) -> None:
    corpus = tmp_path / name
    corpus.write_text(content + "\n")
    code, out, err = run_cli(
        identify_argv(tiny_llama_dir, tmp_path / "run", *extra, corpus=str(corpus)), capsys
    )
    assert_clear_error(code, out, err, *needles)
    assert not (tmp_path / "run").exists()


def test_non_utf8_corpus(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    corpus = write_corpus(tmp_path / "corpus", zh=ZH)
    (corpus / "en.txt").write_bytes("café au lait, naïve\n".encode("latin-1"))
    code, out, err = run_cli(
        identify_argv(tiny_llama_dir, tmp_path / "run", corpus=str(corpus)), capsys
    )
    assert_clear_error(code, out, err, "en.txt", "not valid UTF-8", "0xe9", "re-save it as UTF-8")


def test_binary_corpus(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    corpus = write_corpus(tmp_path / "corpus", zh=ZH)
    (corpus / "en.txt").write_bytes(bytes(range(256)) * 4)
    code, out, err = run_cli(
        identify_argv(tiny_llama_dir, tmp_path / "run", corpus=str(corpus)), capsys
    )
    assert_clear_error(code, out, err, "NUL byte", "looks binary", "UTF-8")


def test_huge_single_line_is_handled(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    """A 5 MB line is read whole and cut into windows; ``--max-tokens`` bounds how much of it
    is used (before the fix, the first text was always used whole: 1.3M tokens)."""
    sentence = "All human beings are born free and equal in dignity and rights. "
    huge = (sentence * (5_000_000 // len(sentence) + 1))[:5_000_000]
    corpus = write_corpus(tmp_path / "corpus", zh=ZH)
    (corpus / "en.txt").write_text(huge + "\n", encoding="utf-8")
    code, out, err = run_cli(["data", "show", "--corpus", str(corpus)], capsys)
    assert code == 0, err
    assert str(len(huge.strip())) in out  # the whole line, as one text
    code, out, err = run_cli(
        identify_argv(tiny_llama_dir, tmp_path / "run", "--max-tokens", "300", corpus=str(corpus)),
        capsys,
    )
    assert code == 0, err
    counts = NeuronSet.load(tmp_path / "run" / "neurons-actmean.json").meta["counts"]
    assert counts["en"]["n_texts"] == 1
    # at most 300 text tokens, plus BOS and re-read context (a quarter of 128) per window
    assert 100 < counts["en"]["n_tokens"] <= 300 + counts["en"]["n_sequences"] * (1 + 128 // 4)


# ---- resumable statistics ---------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path: Path) -> None:
    path.write_bytes(bytes(b ^ 0x5A for b in path.read_bytes()))


def _old_version(path: Path) -> None:
    side = path.with_name(path.name + ".json")
    record = json.loads(side.read_text())
    record["version"] = 0
    side.write_text(json.dumps(record))


@pytest.mark.parametrize(
    "damage", [_truncate, _garble, _old_version], ids=["truncated", "corrupt", "old-version"]
)
def test_damaged_stats_shard_is_recomputed(
    tiny_llama_dir: Path, tmp_path: Path, capsys, damage: Any
) -> None:
    """A resumed run never reads a damaged shard: it recomputes exactly that one."""
    run_dir = tmp_path / "run"
    argv = identify_argv(tiny_llama_dir, run_dir)
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    first = NeuronSet.load(run_dir / "neurons-actmean.json").neurons
    damaged = run_dir / "activations" / "en" / "shard-00000.safetensors"
    kept = run_dir / "activations" / "zh" / "shard-00000.safetensors"
    intact, kept_mtime = damaged.read_bytes(), kept.stat().st_mtime_ns
    damage(damaged)
    assert read_sidecar(damaged) is None  # the damage is detectable
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "Traceback" not in err
    assert read_sidecar(damaged) is not None and damaged.read_bytes() == intact  # recomputed
    assert kept.stat().st_mtime_ns == kept_mtime  # the intact shard was reused, not redone
    assert NeuronSet.load(run_dir / "neurons-actmean.json").neurons == first


def test_run_dir_from_an_incompatible_version(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "study"
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text(json.dumps({"format": "crane-manifest/0", "stages": {}}))
    (run_dir / "study.json").write_text('{"old": true}\n')
    before = snapshot(run_dir)
    config = tmp_path / "study.toml"
    config.write_text(
        f'model = "{tiny_llama_dir}"\nlanguages = ["en", "zh"]\nmethods = ["actmean"]\n'
    )
    code, out, err = run_cli(["run", str(config), "--out", str(run_dir)], capsys)
    assert_clear_error(
        code, out, err, "incompatible version", "crane-manifest/0", "new run directory"
    )
    assert snapshot(run_dir) == before


def test_unreadable_manifest_redoes_the_study(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    """A manifest that is not a JSON object (was: AttributeError) means: redo every stage."""
    run_dir = tmp_path / "study"
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text("[1, 2]\n")
    config = tmp_path / "study.toml"
    config.write_text(
        f'model = "{tiny_llama_dir}"\nlanguages = ["en", "zh"]\nmethods = ["actmean"]\n'
        'budget = "4"\nn_boot = 20\nidentify_max_texts = 8\nbpb_max_texts = 2\n'
    )
    code, _, err = run_cli(["run", str(config), "--out", str(run_dir)], capsys)
    assert code == 0, err
    assert json.loads((run_dir / "manifest.json").read_text())["format"] == "crane-manifest/1"


# ---- neuron sets ----------------------------------------------------------------------------


@pytest.fixture
def en_file(tmp_path: Path) -> Path:
    path = tmp_path / "en.txt"
    path.write_text("\n".join(EN[:2]) + "\n")
    return path


def evaluate_argv(model: Path, corpus: Path, out: Path, *neurons: Path) -> list[str]:
    argv = ["evaluate", "--model", str(model), "--corpus", str(corpus), "--out", str(out)]
    for path in neurons:
        argv += ["--neurons", str(path)]
    return argv


def test_neuron_set_from_another_model(
    tiny_llama_dir: Path, tmp_path: Path, en_file: Path, capsys
) -> None:
    other = NeuronSet({"en": {0: [1, 2]}}, n_layers=2, d_ff=128).save(tmp_path / "other.json")
    argv = evaluate_argv(tiny_llama_dir, en_file, tmp_path / "m.json", other)
    code, out, err = run_cli(argv, capsys)
    assert_clear_error(code, out, err, "2 layers × 128", "2 × 96", "made for this model")
    assert not (tmp_path / "m.json").exists()


def test_neuron_indices_out_of_range(
    tiny_llama_dir: Path, tmp_path: Path, en_file: Path, capsys
) -> None:
    path = tmp_path / "set.json"
    record = NeuronSet({"en": {1: [500]}}).to_dict()  # no recorded shape: checked against the model
    path.write_text(json.dumps(record))
    argv = evaluate_argv(tiny_llama_dir, en_file, tmp_path / "m.json", path)
    code, out, err = run_cli(argv, capsys)
    assert_clear_error(
        code, out, err, "neuron 500 in layer 1", "MLP width 96", "made for this model"
    )
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    "content,needles",
    [
        (None, ["does not exist", "check the path"]),
        ("dir", ["is a directory", "neurons-*.json"]),
        ("", ["not valid JSON"]),
        (
            '{"format": "crane-neuron-set", "version": 0, "neurons": {}}',
            ["format version 0", "recreate"],
        ),
        (
            '{"format": "crane-neuron-set", "version": 1, "neurons": {"en": {"0": "12"}}}',
            ["whole numbers"],
        ),
        (
            '{"format": "crane-neuron-set", "version": 1, "n_layers": "2", "neurons": {}}',
            ["n_layers", "positive whole number"],
        ),
        (
            '{"format": "crane-neuron-set", "version": 1, "neurons": {"en": {"0": [Infinity]}}}',
            ["whole numbers"],
        ),
    ],
    ids=[
        "missing",
        "directory",
        "empty",
        "old-version",
        "string-indices",
        "string-shape",
        "infinite-index",
    ],
)
def test_bad_neuron_file(
    tiny_llama_dir: Path,
    tmp_path: Path,
    en_file: Path,
    capsys,
    content: str | None,
    needles: list[str],
) -> None:
    path = tmp_path / "set.json"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    argv = evaluate_argv(tiny_llama_dir, en_file, tmp_path / "m.json", path)
    code, out, err = run_cli(argv, capsys)
    assert_clear_error(code, out, err, *needles)
    assert not (tmp_path / "m.json").exists()


# ---- budgets, methods, options ----------------------------------------------------------------


@pytest.mark.parametrize(
    "budget,needles",
    [
        ("-5", ["at least 1", "-5"]),
        ("0", ["at least 1", "got 0"]),
        ("-0.5%", ["fraction", "(0, 1]"]),
        ("999999", ["999999", "only 192", "smaller"]),
        ("lots", ["Invalid neuron budget 'lots'", "a count"]),
    ],
    ids=["negative", "zero", "negative-fraction", "larger-than-model", "not-a-number"],
)
def test_bad_budget(
    tiny_llama_dir: Path, tmp_path: Path, capsys, budget: str, needles: list[str]
) -> None:
    before = seeded_dir(tmp_path / "run")
    argv = identify_argv(tiny_llama_dir, tmp_path / "run")
    argv[argv.index("4")] = budget
    code, out, err = run_cli(argv, capsys)
    assert_clear_error(code, out, err, *needles)
    assert snapshot(tmp_path / "run") == before
    assert "loading the weights" not in err or budget == "999999"
    assert "activations" not in err  # refused before any statistic was computed


@pytest.mark.parametrize(
    "option,value,needles",
    [
        ("--method", "crane,lapse", ["'lapse'", "comma-separated"]),
        ("--device", "tpu", ["'tpu'", "cpu, cuda"]),
        ("--dtype", "int3", ["'int3'", "float32"]),
        ("--site", "mlp_out", ["mlp_out", "down_in"]),
    ],
    ids=["method", "device", "dtype", "site"],
)
def test_bad_option_value(
    tiny_llama_dir: Path, tmp_path: Path, capsys, option: str, value: str, needles: list[str]
) -> None:
    argv = [*identify_argv(tiny_llama_dir, tmp_path / "run"), option, value]
    code, out, err = run_cli(argv, capsys)
    assert_clear_error(code, out, err, *needles)
    assert not (tmp_path / "run").exists()


# ---- models ---------------------------------------------------------------------------------


def test_unsupported_architecture(tmp_path: Path, tiny_tokenizer: Any, capsys) -> None:
    from transformers import OPTConfig, OPTForCausalLM

    config = OPTConfig(
        vocab_size=256, hidden_size=32, ffn_dim=48, num_hidden_layers=1, num_attention_heads=2,
        word_embed_proj_dim=32, max_position_embeddings=32,
    )  # fmt: skip
    OPTForCausalLM(config).save_pretrained(tmp_path / "opt")
    tiny_tokenizer.save_pretrained(tmp_path / "opt")
    code, out, err = run_cli(identify_argv(tmp_path / "opt", tmp_path / "run"), capsys)
    assert_clear_error(code, out, err, "'opt' is not supported", "llama", "register_adapter")
    assert not (tmp_path / "run").exists()


def test_model_directory_without_weights(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for item in tiny_llama_dir.iterdir():
        if item.suffix != ".safetensors":
            shutil.copy(item, folder / item.name)
    code, out, err = run_cli(["models", "check", str(folder)], capsys)
    assert_clear_error(code, out, err, "has no weights", "save_pretrained")


@pytest.mark.parametrize(
    "content,needles",
    [
        (b"model weights, honestly\n" * 10, ["is not a GGUF file", "'GGUF'"]),
        (b"", ["is not a GGUF file"]),
        (b"GGUF\x03\x00\x00\x00trunc", ["cannot load the GGUF file", "truncated or corrupt"]),
    ],
    ids=["text", "empty", "truncated-after-magic"],
)
def test_file_named_gguf_that_is_not_gguf(
    tmp_path: Path, capsys, content: bytes, needles: list[str]
) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    before = snapshot(tmp_path)
    code, out, err = run_cli(["models", "check", str(path)], capsys)
    assert_clear_error(code, out, err, *needles)
    assert snapshot(tmp_path) == before


def test_remote_code_model_without_the_flag(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    folder = model_copy(
        tiny_llama_dir,
        tmp_path / "custom",
        model_type="crane_custom_lm",
        auto_map={
            "AutoConfig": "configuration_custom.CustomConfig",
            "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM",
        },
    )
    (folder / "modeling_custom.py").write_text(f"open({str(tmp_path / 'RAN')!r}, 'w')\n")
    (folder / "configuration_custom.py").write_text(f"open({str(tmp_path / 'RAN')!r}, 'w')\n")
    code, out, err = run_cli(identify_argv(folder, tmp_path / "run"), capsys)
    assert_clear_error(code, out, err, "trust_remote_code", "--trust-remote-code")
    assert not (tmp_path / "RAN").exists()
    assert not (tmp_path / "run").exists()


def _nan_model(tiny_model: Any, tokenizer: Any, path: Path) -> Path:
    model = tiny_model("llama")
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight.fill_(float("nan"))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_nan_model_outputs(
    tiny_model: Any, tiny_tokenizer: Any, tmp_path: Path, en_file: Path, capsys
) -> None:
    """NaN weights give NaN logits: refused at load, before any garbage statistic."""
    folder = _nan_model(tiny_model, tiny_tokenizer, tmp_path / "nan")
    code, out, err = run_cli(identify_argv(folder, tmp_path / "run"), capsys)
    assert_clear_error(code, out, err, "NaN", "check its weights", "float32")
    assert not (tmp_path / "run").exists()
    code, out, err = run_cli(evaluate_argv(folder, en_file, tmp_path / "m.json"), capsys)
    assert_clear_error(code, out, err, "NaN", "check its weights")
    assert not (tmp_path / "m.json").exists()


# ---- LAPE files -----------------------------------------------------------------------------


def test_lape_file_with_pickled_code_is_refused(tmp_path: Path, capsys) -> None:
    """The payload works (plain unpickling runs it), yet the importer never executes it."""
    probe = tmp_path / "probe.pth"
    torch.save([[Marker(tmp_path / "PROBE")]], probe)
    torch.load(probe, weights_only=False)  # what an unsafe loader would do
    assert (tmp_path / "PROBE").exists()

    evil = tmp_path / "evil.neuron.pth"
    torch.save([[torch.tensor([1, 2]), Marker(tmp_path / "MARKER")]], evil)
    code, out, err = run_cli(
        ["neurons", "import-lape", str(evil), "--langs", "en", "--out", str(tmp_path / "x.json")],
        capsys,
    )
    assert_clear_error(code, out, err, "evil.neuron.pth", "refused", "unsafe unpickling")
    assert not (tmp_path / "MARKER").exists()
    assert not (tmp_path / "x.json").exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_lape_file_of_plain_pickle(tmp_path: Path, capsys) -> None:
    """A plain ``pickle`` file (not torch's zip format) is refused, not unpickled."""
    path = tmp_path / "plain.neuron.pth"
    path.write_bytes(pickle.dumps(Marker(tmp_path / "MARKER")))
    code, out, err = run_cli(
        ["neurons", "import-lape", str(path), "--langs", "en", "--out", str(tmp_path / "x.json")],
        capsys,
    )
    assert_clear_error(code, out, err, "refused")
    assert not (tmp_path / "MARKER").exists()


# ---- study configurations -------------------------------------------------------------------


@pytest.mark.parametrize(
    "content,needles",
    [
        (
            'model = "m"\nlanguages = ["en", "zh"]\nbogus_key = 1\nbatchsize = 4\n',
            ["bogus_key", "batchsize", "valid keys"],
        ),
        ('model = "m"\nlanguages = 5\n', ["'languages'", "list"]),
        ('model = "m"\nn_boot = "many"\n', ["'n_boot'", "whole number"]),
        ('model = "m\n', ["Cannot parse", "fix the file"]),
        (b'model = "\xff"\n', ["UTF-8"]),
    ],
    ids=["unknown-keys", "list-expected", "number-expected", "bad-toml", "not-utf8"],
)
def test_bad_study_config(tmp_path: Path, capsys, content: str | bytes, needles: list[str]) -> None:
    config = tmp_path / "study.toml"
    config.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, out, err = run_cli(["run", str(config), "--out", str(tmp_path / "study")], capsys)
    assert_clear_error(code, out, err, *needles)
    assert not (tmp_path / "study").exists()


# ---- output locations -----------------------------------------------------------------------


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A directory path nothing can be written under: read-only (0o500) for a normal user; for
    root, who ignores permissions, a path below a regular file."""
    if os.geteuid() == 0:
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory\n")
        yield blocker / "out"
        return
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    yield folder / "out"
    folder.chmod(0o700)


def test_unwritable_output_directory(
    tiny_llama_dir: Path, en_file: Path, unwritable: Path, capsys
) -> None:
    """Refused before any work (was: after the evaluation or the first shard, losing it)."""
    code, out, err = run_cli(identify_argv(tiny_llama_dir, unwritable), capsys)
    assert_clear_error(code, out, err, "Cannot write to", "writable output directory")
    assert "loading the weights" not in err and "activations" not in err
    code, out, err = run_cli(evaluate_argv(tiny_llama_dir, en_file, unwritable / "m.json"), capsys)
    assert_clear_error(code, out, err, "Cannot write to", "writable output directory")
    assert out == ""  # no matrix was computed and printed first
    assert not unwritable.exists()


def test_output_file_that_is_a_directory(
    tiny_llama_dir: Path, tmp_path: Path, en_file: Path, capsys
) -> None:
    target = seeded_dir(tmp_path / "m.json")
    code, out, err = run_cli(evaluate_argv(tiny_llama_dir, en_file, tmp_path / "m.json"), capsys)
    assert_clear_error(code, out, err, "is a directory", "file name")
    assert out == ""
    assert snapshot(tmp_path / "m.json") == target


# ---- usage errors and messages with brackets ------------------------------------------------


def test_unknown_option_is_a_usage_error_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """typer ≥ 0.24 raises its own vendored click's errors; they must exit 2 like click's."""
    code, out, err = run_cli(["identify", "--no-such-option"], capsys)
    assert code == 2 and "Traceback" not in out + err
    assert "No such option: --no-such-option" in err


def test_brackets_in_a_message_are_printed_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Error text is not read as rich markup: a value like ``[bad]`` is shown, not swallowed."""
    out_dir = tmp_path / "run"
    code, out, err = run_cli(
        ["identify", "--model", "m", "--langs", "en", "--out", str(out_dir), "--budget", "[bad]"],
        capsys,
    )
    assert_clear_error(code, out, err, "budget '[bad]'")
    assert not out_dir.exists()


def test_a_run_directory_of_another_model_is_refused(
    tiny_llama_dir: Path, tmp_path: Path, capsys, tiny_model  # type: ignore[no-untyped-def]
) -> None:
    """Identifying with another model into a run directory would mix two models' files."""
    other = tmp_path / "other-model"
    tiny_model("llama", seed=1).save_pretrained(other)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_llama_dir / name).exists():
            shutil.copy(tiny_llama_dir / name, other / name)
    run = tmp_path / "run"
    code, out, err = run_cli(identify_argv(tiny_llama_dir, run), capsys)
    assert code == 0, err
    before = snapshot(run)
    code, out, err = run_cli(identify_argv(other, run), capsys)
    assert_clear_error(code, out, err, "another model", "--out")
    assert snapshot(run) == before
    code, out, err = run_cli(identify_argv(tiny_llama_dir, run), capsys)  # its own model: fine
    assert code == 0, err


def _rehash(path: Path) -> None:
    import hashlib

    side = path.with_name(path.name + ".json")
    record = json.loads(side.read_text())
    record["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    side.write_text(json.dumps(record))


def _nan_rehashed(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    save_file({k: torch.full_like(v, float("nan")) for k, v in tensors.items()}, str(path))
    _rehash(path)


def _wrong_shape_rehashed(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    first = next(iter(tensors))
    tensors[first] = tensors[first][..., :-1].contiguous()  # one neuron short
    save_file(tensors, str(path))
    _rehash(path)


@pytest.mark.parametrize("damage", [_nan_rehashed, _wrong_shape_rehashed], ids=["nan", "shape"])
def test_damage_behind_a_matching_hash_is_recomputed(
    tiny_llama_dir: Path, tmp_path: Path, capsys, damage: Any
) -> None:
    """A shard whose hash was recomputed over NaN or misshapen numbers is redone, not read
    (it gave exit 0 and an empty set that overwrote a good one)."""
    run_dir = tmp_path / "run"
    argv = identify_argv(tiny_llama_dir, run_dir)
    assert run_cli(argv, capsys)[0] == 0
    first = NeuronSet.load(run_dir / "neurons-actmean.json").neurons
    damaged = run_dir / "activations" / "en" / "shard-00000.safetensors"
    intact = damaged.read_bytes()
    damage(damaged)
    assert read_sidecar(damaged) is not None  # the hash matches: only the numbers tell
    code, _, err = run_cli(argv, capsys)
    assert code == 0 and "Traceback" not in err, err
    assert damaged.read_bytes() == intact  # recomputed
    assert NeuronSet.load(run_dir / "neurons-actmean.json").neurons == first


def test_json_nested_too_deeply_is_malformed_json(tmp_path: Path) -> None:
    """Nesting past the parser's recursion limit is a clear error or a redo, never a
    RecursionError traceback (neuron sets, study results, manifests, shard sidecars)."""
    from crane.errors import CraneError
    from crane.manifest import Manifest
    from crane.results import StudyResults

    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "set.json").write_text(deep)
    with pytest.raises(CraneError):
        NeuronSet.load(tmp_path / "set.json")
    (tmp_path / "study.json").write_text(deep)
    with pytest.raises(CraneError):
        StudyResults.load(tmp_path / "study.json")
    (tmp_path / "manifest.json").write_text(deep)
    assert Manifest(tmp_path).stages == {}  # unreadable: every stage is redone
    shard = tmp_path / "shard.safetensors"
    shard.write_bytes(b"x")
    (tmp_path / "shard.safetensors.json").write_text(deep)
    assert read_sidecar(shard) is None  # unreadable: the shard is recomputed


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("seed = -1\n", "seed must not be negative"),
        ("bpb_max_texts = -3\n", "bpb_max_texts must be a positive number"),
    ],
)
def test_config_values_checked_before_any_work(
    tiny_llama_dir: Path, tmp_path: Path, capsys, text: str, needle: str  # type: ignore[no-untyped-def]
) -> None:
    config = tmp_path / "study.toml"
    config.write_text(f'model = "{tiny_llama_dir}"\nlanguages = ["en", "zh"]\n' + text)
    code, out, err = run_cli(["run", str(config), "--out", str(tmp_path / "run")], capsys)
    assert_clear_error(code, out, err, needle)
    assert not (tmp_path / "run").exists()


def test_yaml_key_that_is_not_text(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("yaml")
    config = tmp_path / "study.yaml"
    config.write_text("model: m\n1: 2\n")
    code, out, err = run_cli(["run", str(config), "--out", str(tmp_path / "run")], capsys)
    assert_clear_error(code, out, err, "not a name")


def test_an_output_file_that_is_a_directory_or_a_full_disk(tmp_path: Path) -> None:
    from crane.errors import ConfigError
    from crane.io import atomic_write_text

    (tmp_path / "out.json").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        atomic_write_text(tmp_path / "out.json", "{}")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_full_disk_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import errno

    from crane.errors import ConfigError
    from crane.io import atomic_write_text

    target = tmp_path / "x.json"
    target.write_text("old")

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ConfigError, match="No space left on device"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"  # nothing half-written
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
