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


def test_unknown_option_is_a_usage_error_without_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
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
    tiny_llama_dir: Path,
    tmp_path: Path,
    capsys,
    tiny_model,  # type: ignore[no-untyped-def]
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
    tiny_llama_dir: Path,
    tmp_path: Path,
    capsys,
    text: str,
    needle: str,  # type: ignore[no-untyped-def]
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


# ==== round three (issue 17): hostile inputs the outside probe had, and more of each class ====
#
# Classes: neuron-set files (JSON and safetensors) read strictly; budgets matching a set file;
# LAPE files (masks read as masks); configuration files; study.json; manifests and run-directory
# reuse; shard sidecars; option values checked before any work; interrupts.

SET_HEAD = '{"format": "crane-neuron-set", "version": 1, '
DEEP = "[" * 50_000 + "]" * 50_000


@pytest.mark.parametrize(
    "content,needles",
    [
        (SET_HEAD + '"neurons": {"en": {"1": [0], "01": [2]}}}', ["'01'", "written plainly"]),
        (SET_HEAD + '"neurons": {"en": {"1": [0], "1": [2]}}}', ["not valid JSON", "'1' given"]),
        (SET_HEAD + '"neurons": {"en": {"0": [1]}, "en": {"0": [2]}}}', ["'en' given twice"]),
        (SET_HEAD + '"neurons": {"en": {"0": [1]}, "EN": {"0": [2]}}}', ["twice (as 'en')"]),
        (SET_HEAD + '"neurons": {"en": {"0": [true, 2]}}}', ["boolean", "whole numbers"]),
        (SET_HEAD + '"neurons": {"en": {"0": [1.5]}}}', ["1.5 is not a whole number"]),
        (SET_HEAD + '"neurons": {"en": {"0": [-1]}}}', ["negative", "start at 0"]),
        (SET_HEAD + '"neurons": {"en": {"0": [3, 3]}}}', ["neuron 3 twice", "once"]),
        (SET_HEAD + '"neurons": {"en": {"0": [NaN]}}}', ["nan is not a whole number"]),
        (SET_HEAD + '"neurons": {"en": {"-0": [1]}}}', ["'-0'", "written plainly"]),
        (SET_HEAD + '"neurons": {"en": {"0": {"1": 2}}}}', ["holds a dict, not a list"]),
        (SET_HEAD + '"neurons": {"en": {"99999999": [1]}}}', ["layer 99999999", "larger than any"]),
        (SET_HEAD + '"neurons": {"en": {"0": [' + "9" * 5000 + "]}}}", ["not valid JSON", "4300"]),
        (SET_HEAD + '"neurons": {"xq": {"0": [1]}}}', ["'xq'", "not a known language code"]),
        (SET_HEAD + '"neurons": {"[/x]": {"0": [1]}}}', ["'[/x]'", "plain label"]),
        (SET_HEAD + '"neurons": {"en\\u0000": {"0": [1]}}}', ["'en\\x00'", "plain label"]),
        (SET_HEAD + '"neurons": {}}', ["holds no language"]),
        (
            '{"format": "crane-neuron-set", "version": true, "neurons": {"en": {"0": [1]}}}',
            ["format version True", "recreate"],
        ),
        (SET_HEAD + '"n_layers": 999999999, "neurons": {"en": {"0": [1]}}}', ["n_layers ="]),
        (SET_HEAD + '"d_ff": 0, "neurons": {"en": {"0": [1]}}}', ["d_ff = 0", "positive"]),
        (SET_HEAD + '"site": 5, "neurons": {"en": {"0": [1]}}}', ["site 5", "down_in"]),
        (SET_HEAD + '"meta": {"model": "gemma"}, "neurons": {"en": {"0": [1]}}}', ["meta.model"]),
        (
            SET_HEAD + '"meta": {"model": {"spec": 5}}, "neurons": {"en": {"0": [1]}}}',
            ["meta.model.spec = 5"],
        ),
        (SET_HEAD + '"neurons": ' + DEEP + "}", ["not valid JSON", "nested too deeply"]),
    ],
    ids=[
        "layer-1-and-01", "json-layer-key-twice", "json-language-key-twice",
        "language-two-spellings",
        "boolean-index", "fractional-index", "negative-index", "duplicate-index", "nan-index",
        "layer-minus-zero", "indices-as-object", "huge-layer-no-shape", "integer-of-5000-digits",
        "unknown-language-code", "markup-language-key", "control-character-key", "no-language",
        "boolean-version", "huge-n-layers", "zero-d-ff", "numeric-site", "model-not-an-object",
        "model-spec-not-text", "deeply-nested-neurons",
    ],
)  # fmt: skip
def test_neuron_set_file_read_strictly(
    tiny_llama_dir: Path,
    tmp_path: Path,
    en_file: Path,
    capsys,
    content: str,
    needles: list[str],
) -> None:
    """Each file was read loosely before (merged layers, booleans as 0/1, a repeated key
    silently replaced, any label kept, a traceback for a long integer): now one clear error,
    before the model loads, and the file is left as it was."""
    path = tmp_path / "set.json"
    path.write_text(content, encoding="utf-8")
    before = path.read_bytes()
    code, out, err = run_cli(
        evaluate_argv(tiny_llama_dir, en_file, tmp_path / "m.json", path), capsys
    )
    assert_clear_error(code, out, err, "set.json", *needles)
    assert "loading the weights" not in err
    assert not (tmp_path / "m.json").exists()
    assert path.read_bytes() == before


def _safetensors_set(path: Path, masks: dict[str, torch.Tensor], header: dict[str, Any]) -> Path:
    from safetensors.torch import save

    path.write_bytes(save(masks, {"crane": json.dumps(header)}))
    return path


@pytest.mark.parametrize(
    "masks,header,needles",
    [
        (
            {"en": torch.ones(2, 96, dtype=torch.int64)},
            {"format": "crane-neuron-set", "version": 1, "n_layers": 2, "d_ff": 96},
            ["not a boolean", "torch.int64"],
        ),
        (
            {"en": torch.zeros(2, 8, dtype=torch.bool)},
            {"format": "crane-neuron-set", "version": 1, "n_layers": 2, "d_ff": 96},
            ["(2, 8)", "records [2, 96]"],
        ),
        (
            {
                "en": torch.zeros(2, 96, dtype=torch.bool),
                "zh": torch.zeros(3, 96, dtype=torch.bool),
            },
            {"format": "crane-neuron-set", "version": 1},
            ["(2, 96)", "(3, 96)"],
        ),
    ],
    ids=["integer-mask", "mask-not-the-recorded-shape", "masks-of-two-shapes"],
)
def test_safetensors_set_read_strictly(
    tmp_path: Path,
    capsys,
    masks: dict[str, torch.Tensor],
    header: dict[str, Any],
    needles: list[str],
) -> None:
    path = _safetensors_set(tmp_path / "set.safetensors", masks, header)
    code, out, err = run_cli(["neurons", "show", str(path)], capsys)
    assert_clear_error(code, out, err, "set.safetensors", *needles)
    assert out == ""


def test_set_provenance_with_markup_is_shown_as_written(tmp_path: Path, capsys) -> None:
    """A set's method or model name with rich markup ("[/x]") was a MarkupError traceback."""
    path = tmp_path / "set.json"
    path.write_text(
        SET_HEAD + '"meta": {"method": "[/oops]", "model": {"spec": "[/x]", "kind": "dir"}}, '
        '"neurons": {"en": {"0": [1]}}}'
    )
    code, out, err = run_cli(["neurons", "show", str(path)], capsys)
    assert code == 0, err
    assert "[/oops]" in out and "model: [/x] (dir)" in out


# ---- budgets matching a set file ----------------------------------------------------------------


@pytest.mark.parametrize(
    "neurons,needles",
    [
        ({"en": {0: [1, 2]}}, ["has no language 'zh'", "it has: en", "count or fraction"]),
        ({"en": {0: [1, 2]}, "zh": {}}, ["no neurons for zh", "count or fraction"]),
        ({"en": {0: [1, 2]}, "zh": {}, "vi": {}}, ["no neurons for zh"]),
    ],
    ids=["language-missing", "language-empty", "extra-language-and-zh-empty"],
)
def test_budget_matching_a_set_file_that_cannot_size_every_language(
    tiny_llama_dir: Path, tmp_path: Path, capsys, neurons: dict[str, Any], needles: list[str]
) -> None:
    """Refused before the model loads (a missing language failed after loading; an empty one
    gave a set with no neurons for it and exit 0)."""
    NeuronSet(neurons, "down_in", 2, 96).save(tmp_path / "other.json")
    before = seeded_dir(tmp_path / "run")
    argv = identify_argv(tiny_llama_dir, tmp_path / "run")
    argv[argv.index("--budget") + 1] = f"match:{tmp_path / 'other.json'}"
    code, out, err = run_cli(argv, capsys)
    assert_clear_error(code, out, err, "other.json", *needles)
    assert "loading the weights" not in err
    assert snapshot(tmp_path / "run") == before


def test_budget_matching_a_name_that_is_no_method_and_no_file(
    tiny_llama_dir: Path, tmp_path: Path, capsys
) -> None:
    argv = identify_argv(tiny_llama_dir, tmp_path / "run")
    argv[argv.index("--budget") + 1] = "match:lape"  # lape is not among --method actmean
    code, out, err = run_cli(argv, capsys)
    assert_clear_error(code, out, err, "'lape'", "neither a method of this run", "--method")
    assert not (tmp_path / "run").exists()


# ---- LAPE files ----------------------------------------------------------------------------------


def _lape(path: Path, data: Any) -> Path:
    torch.save(data, path)
    return path


@pytest.mark.parametrize(
    "data,extra,needles",
    [
        ([[torch.tensor([1], dtype=torch.uint8)]], [], ["uint8", "old-style mask or indices"]),
        ([[torch.tensor([False, True, True, False])]], ["--d-ff", "5"], ["over 4", "width is 5"]),
        (
            [[torch.tensor([True, False, False, False]), torch.tensor([True] * 5)]],
            [],
            ["layer 1 is a mask over 5", "width is 4"],
        ),
        ([[torch.tensor([0.5, 1.5])]], [], ["layer 0 is not a 1-D integer tensor or boolean mask"]),
        ([[]], [], ["'en' has no layers"]),
        (torch.zeros(1, 2, 3, dtype=torch.long), [], ["non-empty list over languages"]),
        ([[torch.tensor([7])]], ["--d-ff", "4"], ["out-of-range indices [7]", "MLP width 4"]),
        ([[torch.tensor([1])]], ["--d-ff", "0"], ["--d-ff must be at least 1"]),
    ],
    ids=[
        "uint8-ambiguous", "mask-wider-than-d-ff", "masks-of-two-widths", "float-indices",
        "no-layers", "integer-tensor-not-a-list", "index-beyond-d-ff", "zero-d-ff",
    ],
)  # fmt: skip
def test_bad_lape_file(
    tmp_path: Path, capsys, data: Any, extra: list[str], needles: list[str]
) -> None:
    path = _lape(tmp_path / "x.neuron.pth", data)
    target = tmp_path / "x.json"
    code, out, err = run_cli(
        ["neurons", "import-lape", str(path), "--langs", "en", "--out", str(target), *extra], capsys
    )
    assert_clear_error(code, out, err, *needles)
    assert not target.exists()


def test_lape_languages_are_codes(tmp_path: Path, capsys) -> None:
    path = _lape(tmp_path / "x.neuron.pth", [[torch.tensor([1])], [torch.tensor([2])]])
    code, out, err = run_cli(
        [
            "neurons",
            "import-lape",
            str(path),
            "--langs",
            "en,xq",
            "--out",
            str(tmp_path / "x.json"),
        ],
        capsys,
    )
    assert_clear_error(code, out, err, "'xq'", "ISO 639-1")
    assert not (tmp_path / "x.json").exists()


def test_lape_import_onto_a_directory_is_refused_before_reading(tmp_path: Path, capsys) -> None:
    path = _lape(tmp_path / "x.neuron.pth", [[torch.tensor([1])]])
    before = seeded_dir(tmp_path / "x.json")
    code, out, err = run_cli(
        ["neurons", "import-lape", str(path), "--langs", "en", "--out", str(tmp_path / "x.json")],
        capsys,
    )
    assert_clear_error(code, out, err, "is a directory", "file name")
    assert snapshot(tmp_path / "x.json") == before


@pytest.mark.parametrize(
    "data",
    [
        [[torch.tensor([False, True, True, False])], [torch.tensor([True, False, False, False])]],
        [torch.tensor([[False, True, True, False]]), torch.tensor([[True, False, False, False]])],
        torch.tensor([[[False, True, True, False]], [[True, False, False, False]]]),
    ],
    ids=["mask-per-layer", "mask-per-language", "one-mask"],
)
def test_lape_boolean_masks_are_read_as_masks(tmp_path: Path, capsys, data: Any) -> None:
    """A mask's True positions are the neurons (it was read as the indices {0, 1}, then
    refused); its length is the MLP width."""
    path = _lape(tmp_path / "x.neuron.pth", data)
    code, _, err = run_cli(
        [
            "neurons",
            "import-lape",
            str(path),
            "--langs",
            "en,zh",
            "--out",
            str(tmp_path / "x.json"),
        ],
        capsys,
    )
    assert code == 0, err
    imported = NeuronSet.load(tmp_path / "x.json")
    assert imported.neurons == {"en": {0: [1, 2]}, "zh": {0: [0]}}
    assert (imported.n_layers, imported.d_ff, imported.site) == (1, 4, "act")


# ---- configuration files (crane identify --config: refused before the model loads) --------------


@pytest.mark.parametrize(
    "name,text,needles",
    [
        ("c.toml", "[identify]\nseed = 1\n[evaluate]\nseed = 2\n", ["'seed' is given twice"]),
        ("c.toml", "[identify]\nquantil = 0.9\n", ["Unknown key(s) quantil", "valid keys"]),
        ("c.toml", "lam = nan\n", ["lam (--lam) must be a finite number", "nan"]),
        ("c.toml", "z = inf\n", ["z (--z) must be a finite number", "inf"]),
        ("c.toml", "verify_ratio = -nan\n", ["verify_ratio (--verify-ratio)", "finite"]),
        ("c.toml", "quantile = -0.5\n", ["quantile must be in [0, 1)", "-0.5"]),
        ("c.toml", "rounds = 0\n", ["rounds must be at least 1"]),
        ("c.toml", "seed = -1\n", ["seed must not be negative"]),
        ("c.toml", "batch_size = true\n", ["'batch_size'", "whole number"]),
        ("c.toml", "max_length = -5\n", ["max_length must be a positive number"]),
        ("c.toml", "budget = 4\n", ["'budget'", "must be a string"]),
        ("c.toml", 'identify_max_texts = "10"\n', ["'identify_max_texts'", "whole number"]),
        ("c.yaml", "identify:\n  1: 2\n", ["Key 1", "not a name"]),
        ("c.yaml", "- seed\n- 1\n", ["table of settings"]),
        ("c.yaml", "site: [down_in]\n", ["'site'", "a string"]),
        ("c.json", '{"seed": 1}\n', ["Unknown configuration format '.json'"]),
    ],
    ids=[
        "key-in-two-sections", "unknown-key-in-a-section", "nan-lam", "infinite-z",
        "nan-verify-ratio", "negative-quantile", "zero-rounds", "negative-seed",
        "boolean-for-a-number", "negative-max-length", "number-for-a-budget-string",
        "string-for-a-number", "yaml-number-key-in-a-section", "yaml-top-level-list",
        "yaml-list-for-a-string", "json-config",
    ],
)  # fmt: skip
def test_bad_identify_config(
    tiny_llama_dir: Path, tmp_path: Path, capsys, name: str, text: str, needles: list[str]
) -> None:
    if name.endswith(".yaml"):
        pytest.importorskip("yaml")
    heads = {  # model and languages first: TOML puts every key after [section] in the section
        ".toml": f'model = "{tiny_llama_dir}"\nlanguages = ["en", "zh"]\nmethods = ["actmean"]\n',
        ".yaml": f"model: {tiny_llama_dir}\nlanguages: [en, zh]\nmethods: [actmean]\n",
        ".json": "",
    }
    head = "" if text.startswith("-") else heads[Path(name).suffix]
    config = tmp_path / name
    config.write_text(head + text)
    code, out, err = run_cli(
        ["identify", "--config", str(config), "--out", str(tmp_path / "run"), "--corpus", "udhr"],
        capsys,
    )
    assert_clear_error(code, out, err, *needles)
    assert "loading the weights" not in err
    assert not (tmp_path / "run").exists()


# ---- study.json (crane report): refused, and the report already there is left as it was --------


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """A finished tiny study (one method, two languages) with its report; copy before use."""
    from crane.cli import main

    folder = tmp_path_factory.mktemp("study")
    config = folder / "study.toml"
    config.write_text(
        f'model = "{tiny_llama_dir}"\nlanguages = ["en", "zh"]\nmethods = ["actmean"]\n'
        'budget = "4"\nidentify_max_texts = 4\nbpb_max_texts = 2\nn_boot = 5\n'
    )
    try:
        main(["run", str(config), "--out", str(folder / "run")])
    except SystemExit as exc:
        assert not exc.code, exc.code
    return folder / "run"


def _study_edit(change: Any) -> Any:
    def edit(path: Path) -> None:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return edit


@pytest.mark.parametrize(
    "damage,needles",
    [
        (_study_edit(lambda d: d.pop("methods")), ["'methods' is missing"]),
        (_study_edit(lambda d: d.__setitem__("languages", 5)), ["languages should be a list"]),
        (
            _study_edit(
                lambda d: d["metrics"]["bpb"]["actmean"].__setitem__(
                    "vi", d["metrics"]["bpb"]["actmean"]["en"]
                )
            ),
            ["metrics.bpb.actmean.vi", "language 'vi'"],
        ),
        (_study_edit(lambda d: d.__setitem__("model", "gemma")), ["model should be a JSON object"]),
        (
            _study_edit(lambda d: d["metrics"]["bpb"]["actmean"]["en"].__setitem__("sel", "x")),
            ["metrics.bpb.actmean.en.sel", "a number"],
        ),
        (lambda p: p.write_text(p.read_text()[:100]), ["study.json"]),
        (lambda p: p.write_text(DEEP), ["study.json"]),
    ],
    ids=[
        "missing-key", "languages-not-a-list", "extra-language", "model-not-an-object",
        "metric-not-a-number", "truncated", "deeply-nested",
    ],
)  # fmt: skip
def test_bad_study_results_leave_the_report_untouched(
    study_dir: Path, tmp_path: Path, capsys, damage: Any, needles: list[str]
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(study_dir, run_dir)
    damage(run_dir / "study.json")
    before = snapshot(run_dir)
    code, out, err = run_cli(["report", str(run_dir)], capsys)
    assert_clear_error(code, out, err, *needles)
    assert snapshot(run_dir) == before


def test_study_results_naming_a_language_they_lack(study_dir: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(study_dir, run_dir)
    _study_edit(lambda d: d.__setitem__("languages", ["en", "zh", "vi"]))(run_dir / "study.json")
    before = snapshot(run_dir)
    code, out, err = run_cli(["report", str(run_dir)], capsys)
    assert_clear_error(code, out, err, "vi")
    assert snapshot(run_dir) == before


# ---- manifests and run-directory reuse --------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """A finished ``identify_argv`` run (actmean, budget 4, en and zh); copy before use."""
    from crane.cli import main

    run_dir = tmp_path_factory.mktemp("finished") / "run"
    try:
        main(identify_argv(tiny_llama_dir, run_dir))
    except SystemExit as exc:
        assert not exc.code, exc.code
    return run_dir


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    return target


def _manifest_edit(change: Any) -> Any:
    def edit(run_dir: Path) -> None:
        data = json.loads((run_dir / "manifest.json").read_text())
        change(data)
        (run_dir / "manifest.json").write_text(json.dumps(data))

    return edit


@pytest.mark.parametrize(
    "damage,extra,needles",
    [
        (_manifest_edit(lambda d: d.__setitem__("format", 5)), [], ["incompatible version (5)"]),
        (
            _manifest_edit(lambda d: d.__setitem__("model", "someone else's")),
            [],
            ["another model", "--out", "--overwrite"],
        ),
        (
            _manifest_edit(lambda d: d["options"].__setitem__("sha256", "0" * 64)),
            [],
            ["other options", "--out", "--overwrite"],
        ),
        (None, ["--site", "act"], ['site "down_in" → "act"', "--overwrite"]),
        (None, ["--max-texts", "5"], ["identify_max_texts null → 5", "--overwrite"]),
        (None, ["--budget", "6"], ['budget "4" → "6"', "--overwrite"]),
        (None, ["--langs", "en,vi"], ["languages", "--overwrite"]),
        (None, ["--max-length", "64", "--batch-size", "4"], ["batch_size 16 → 4", "max_length"]),
    ],
    ids=[
        "manifest-of-an-incompatible-version", "manifest-of-another-model",
        "manifest-options-record-edited", "another-site", "another-text-budget",
        "another-budget", "other-languages", "other-batching",
    ],
)  # fmt: skip
def test_a_run_directory_of_other_options_is_refused(
    tiny_llama_dir: Path,
    finished_run: Path,
    tmp_path: Path,
    capsys,
    damage: Any,
    extra: list[str],
    needles: list[str],
) -> None:
    """Reusing a run directory with options that shape its files differently would mix two
    runs' sets and shards (it overwrote them): refused before any work, nothing changed."""
    run_dir = _copy(finished_run, tmp_path)
    if damage is not None:
        damage(run_dir)
    before = snapshot(run_dir)
    argv = identify_argv(tiny_llama_dir, run_dir)
    for option, value in zip(extra[::2], extra[1::2], strict=True):
        if option in argv:
            argv[argv.index(option) + 1] = value
        else:
            argv += [option, value]
    code, out, err = run_cli(argv, capsys)
    assert_clear_error(code, out, err, *needles)
    assert snapshot(run_dir) == before


def test_overwrite_replaces_a_run_of_other_options(
    tiny_llama_dir: Path, finished_run: Path, tmp_path: Path, capsys
) -> None:
    run_dir = _copy(finished_run, tmp_path)
    (run_dir / "neurons-kojima.json").write_bytes((run_dir / "neurons-actmean.json").read_bytes())
    code, _, err = run_cli(
        [*identify_argv(tiny_llama_dir, run_dir), "--site", "act", "--overwrite"], capsys
    )
    assert code == 0, err
    assert NeuronSet.load(run_dir / "neurons-actmean.json").site == "act"
    assert not (run_dir / "neurons-kojima.json").exists()  # the earlier run's sets are gone
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["options"]["values"]["site"] == "act"
    code, out, err = run_cli(identify_argv(tiny_llama_dir, run_dir), capsys)  # now the other way
    assert_clear_error(code, out, err, 'site "act" → "down_in"')


def test_the_same_options_resume_and_an_unrecorded_run_is_adopted(
    tiny_llama_dir: Path, finished_run: Path, tmp_path: Path, capsys
) -> None:
    """A rerun with the same options reuses the run; a run directory written before options
    were recorded is taken as it is and gets its record."""
    run_dir = _copy(finished_run, tmp_path)
    _manifest_edit(lambda d: d.pop("options"))(run_dir)
    sets = (run_dir / "neurons-actmean.json").read_bytes()
    code, _, err = run_cli(identify_argv(tiny_llama_dir, run_dir), capsys)
    assert code == 0, err
    assert (run_dir / "neurons-actmean.json").read_bytes() == sets
    assert "options" in json.loads((run_dir / "manifest.json").read_text())


@pytest.mark.parametrize(
    "text",
    [
        '{"format": "crane-manifest/1", "format": "x", "stages": {}}',
        DEEP,
        '{"n": ' + "9" * 5000 + "}",
    ],
    ids=["manifest-with-a-key-twice", "manifest-nested-deeply", "manifest-with-a-huge-integer"],
)
def test_an_unreadable_manifest_means_redo(
    tiny_llama_dir: Path, finished_run: Path, tmp_path: Path, capsys, text: str
) -> None:
    run_dir = _copy(finished_run, tmp_path)
    sets = (run_dir / "neurons-actmean.json").read_bytes()
    (run_dir / "manifest.json").write_text(text)
    code, _, err = run_cli(identify_argv(tiny_llama_dir, run_dir), capsys)
    assert code == 0 and "Traceback" not in err, err
    assert (run_dir / "neurons-actmean.json").read_bytes() == sets
    assert json.loads((run_dir / "manifest.json").read_text())["format"] == "crane-manifest/1"


def test_a_manifest_stage_naming_a_file_outside_the_run_is_not_trusted(tmp_path: Path) -> None:
    from crane.manifest import Manifest, file_sha256

    outside = tmp_path / "outside.txt"
    outside.write_text("not the run's\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("../outside.txt", str(outside)):
        (run_dir / "manifest.json").write_text(json.dumps({
            "format": "crane-manifest/1",
            "stages": {"s": {"key": "k", "outputs": {name: file_sha256(outside)}}},
        }))  # fmt: skip
        assert not Manifest(run_dir).complete("s", "k"), name


# ---- shard sidecars -----------------------------------------------------------------------------


def _sidecar_edit(change: Any) -> Any:
    def damage(path: Path) -> None:
        side = path.with_name(path.name + ".json")
        record = json.loads(side.read_text())
        change(record)
        side.write_text(json.dumps(record))

    return damage


def _sidecar_text(text: str) -> Any:
    def damage(path: Path) -> None:
        path.with_name(path.name + ".json").write_text(text)

    return damage


@pytest.mark.parametrize(
    "damage",
    [
        _sidecar_edit(lambda r: r["meta"].__setitem__("options", "all of them")),
        _sidecar_edit(lambda r: r["meta"].__setitem__("n_texts", True)),
        _sidecar_edit(lambda r: r.__setitem__("sha256", 5)),
        _sidecar_edit(lambda r: r["counts"]["en"].__setitem__("n_tokens", 10**9)),
        _sidecar_edit(lambda r: r["meta"].pop("counts_sha256")),
        _sidecar_text('{"format": ' + "9" * 5000 + "}"),
        _sidecar_text("[]"),
    ],
    ids=[
        "sidecar-options-of-another-type", "sidecar-boolean-text-count", "sidecar-numeric-hash",
        "sidecar-edited-count", "sidecar-without-counts-hash", "sidecar-huge-integer",
        "sidecar-not-an-object",
    ],
)  # fmt: skip
def test_a_shard_with_a_bad_sidecar_is_recomputed(
    tiny_llama_dir: Path, finished_run: Path, tmp_path: Path, capsys, damage: Any
) -> None:
    """A sidecar that does not say, in the expected form, what its shard was computed from is
    never trusted: the shard is recomputed (whole again: same file, same sidecar, same set)."""
    run_dir = _copy(finished_run, tmp_path)
    shard = run_dir / "activations" / "en" / "shard-00000.safetensors"
    side = shard.with_name(shard.name + ".json")
    intact, sidecar, sets = (
        shard.read_bytes(),
        side.read_bytes(),
        (run_dir / "neurons-actmean.json").read_bytes(),
    )
    damage(shard)
    assert side.read_bytes() != sidecar
    code, _, err = run_cli(identify_argv(tiny_llama_dir, run_dir), capsys)
    assert code == 0 and "Traceback" not in err, err
    assert (shard.read_bytes(), side.read_bytes()) == (intact, sidecar)  # recomputed
    assert (run_dir / "neurons-actmean.json").read_bytes() == sets


# ---- option values: every one checked before the model loads ------------------------------------


@pytest.mark.parametrize(
    "option,value,needles",
    [
        ("--z", "nan", ["z (--z) must be a finite number"]),
        ("--lam", "inf", ["lam (--lam) must be a finite number"]),
        ("--verify-ratio", "nan", ["verify_ratio (--verify-ratio)", "finite"]),
        ("--quantile", "1.5", ["quantile must be in [0, 1)", "1.5"]),
        ("--rounds", "0", ["rounds must be at least 1"]),
        ("--max-tokens", "-1", ["token_budget (--max-tokens)", "-1"]),
        ("--shard-texts", "0", ["shard_texts must be a positive number"]),
        ("--verify-tests", "0", ["max_tests >= 1"]),
    ],
    ids=["nan-z", "infinite-lam", "nan-verify-ratio", "quantile-above-1", "zero-rounds",
         "negative-max-tokens", "zero-shard-texts", "zero-verify-tests"],
)  # fmt: skip
def test_bad_identify_option_value(
    tiny_llama_dir: Path, tmp_path: Path, capsys, option: str, value: str, needles: list[str]
) -> None:
    before = seeded_dir(tmp_path / "run")
    code, out, err = run_cli(
        [*identify_argv(tiny_llama_dir, tmp_path / "run"), option, value], capsys
    )
    assert_clear_error(code, out, err, *needles)
    assert "loading the weights" not in err
    assert snapshot(tmp_path / "run") == before


@pytest.mark.parametrize(
    "option,value,needles",
    [
        ("--seed", "-1", ["--seed must be at least 0"]),
        ("--alpha", "nan", ["--alpha must be a finite number"]),
        ("--mode", "bogus", ["--mode 'bogus'", "zero, scale"]),
        ("--mode", "mean", ["--mode 'mean'", "zero, scale"]),
        ("--part", "bogus", ["--part 'bogus'", "heldout"]),
        ("--batch-size", "0", ["--batch-size must be at least 1"]),
        ("--batch-tokens", "0", ["--batch-tokens must be at least 1"]),
        ("--max-length", "1", ["--max-length must be at least 2"]),
    ],
    ids=["negative-seed", "nan-alpha", "unknown-mode", "mean-mode-without-means", "unknown-part",
         "zero-batch-size", "zero-batch-tokens", "one-token-windows"],
)  # fmt: skip
def test_bad_evaluate_option_value(
    tiny_llama_dir: Path, tmp_path: Path, en_file: Path, capsys, option: str, value: str,
    needles: list[str],
) -> None:  # fmt: skip
    """A negative seed was a traceback; the others failed after the model loaded."""
    good = NeuronSet({"en": {0: [1, 2]}}, n_layers=2, d_ff=96).save(tmp_path / "set.json")
    target = tmp_path / "m.json"
    target.write_text('{"earlier": true}\n')
    argv = [*evaluate_argv(tiny_llama_dir, en_file, target, good), option, value]
    code, out, err = run_cli(argv, capsys)
    assert_clear_error(code, out, err, *needles)
    assert "loading the weights" not in err and out == ""
    assert target.read_text() == '{"earlier": true}\n'


@pytest.mark.parametrize(
    "option,value,needles",
    [
        ("--max-texts", "0", ["--max-texts must be at least 1, got 0"]),
        ("--max-texts", "-2", ["--max-texts must be at least 1, got -2"]),
        ("--part", "x", ["--part 'x'", "heldout"]),
        ("--chat-template", "a", ["--chat-template 'a'", "none, b, both"]),
    ],
    ids=["zero-texts", "negative-texts", "unknown-part", "unknown-chat-template"],
)
def test_bad_transfer_option_value(
    tiny_llama_dir: Path, finished_run: Path, tmp_path: Path, capsys, option: str, value: str,
    needles: list[str],
) -> None:  # fmt: skip
    """--max-texts 0 evaluated every text, -2 was a traceback."""
    argv = ["transfer", "--neurons", str(finished_run), "--method", "actmean", "--model",
            str(tiny_llama_dir), "--out", str(tmp_path / "t.json"), option, value]  # fmt: skip
    code, out, err = run_cli(argv, capsys)
    assert_clear_error(code, out, err, *needles)
    assert "loading the weights" not in err
    assert not (tmp_path / "t.json").exists()


# ---- interrupts ---------------------------------------------------------------------------------


@pytest.fixture
def interrupt_at(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``interrupt_at(point, signal)``: the first kill point matching ``point`` sends this
    process ``signal`` (INT or TERM), as Ctrl-C or a scheduler's stop would."""
    import crane.faults

    def arm(point: str, signal_name: str) -> None:
        monkeypatch.setattr(crane.faults, "_target", (point, 1))
        monkeypatch.setattr(crane.faults, "_seen", 0)
        monkeypatch.setenv("CRANE_KILL_SIGNAL", signal_name)

    return arm


def assert_interrupted(code: int, out: str, err: str, expected: int) -> None:
    assert code == expected, (code, err)
    assert "Traceback" not in out + err and "error:" not in err
    assert err.rstrip().splitlines()[-1] == "interrupted; rerun the same command to resume"


def test_an_interrupted_identify_keeps_its_options_and_resumes(
    tiny_llama_dir: Path, finished_run: Path, tmp_path: Path, capsys, interrupt_at: Any
) -> None:
    """Ctrl-C after the first shard: exit 130, one line, no temporary file; the partial run
    records its options (a run with others is refused) and the same command finishes it."""
    run_dir = tmp_path / "run"
    interrupt_at("stats:activations/zh/*", "INT")
    code, out, err = run_cli(identify_argv(tiny_llama_dir, run_dir), capsys)
    assert_interrupted(code, out, err, 130)
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
    assert not (run_dir / "neurons-actmean.json").exists()
    partial = snapshot(run_dir)
    code, out, err = run_cli([*identify_argv(tiny_llama_dir, run_dir), "--site", "act"], capsys)
    assert_clear_error(code, out, err, "other options", "site")
    assert snapshot(run_dir) == partial
    interrupt_at("no-such-point", "INT")
    code, _, err = run_cli(identify_argv(tiny_llama_dir, run_dir), capsys)
    assert code == 0, err
    assert (run_dir / "neurons-actmean.json").read_bytes() == (
        finished_run / "neurons-actmean.json"
    ).read_bytes()


@pytest.mark.parametrize("signal_name,expected", [("TERM", 143), ("INT", 130)])
def test_an_interrupted_evaluation_writes_nothing(
    tiny_llama_dir: Path, tmp_path: Path, en_file: Path, capsys, interrupt_at: Any,
    signal_name: str, expected: int,
) -> None:  # fmt: skip
    good = NeuronSet({"en": {0: [1, 2]}}, n_layers=2, d_ff=96).save(tmp_path / "set.json")
    target = tmp_path / "m.json"
    target.write_text('{"earlier": true}\n')
    interrupt_at("eval-lang", signal_name)
    code, out, err = run_cli(evaluate_argv(tiny_llama_dir, en_file, target, good), capsys)
    assert_interrupted(code, out, err, expected)
    assert target.read_text() == '{"earlier": true}\n'
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_an_interrupted_transfer_writes_nothing(
    tiny_llama_dir: Path, finished_run: Path, tmp_path: Path, capsys, interrupt_at: Any
) -> None:
    interrupt_at("eval-lang", "INT")
    argv = ["transfer", "--neurons", str(finished_run), "--method", "actmean", "--model",
            str(tiny_llama_dir), "--max-texts", "2", "--out", str(tmp_path / "t.json")]  # fmt: skip
    code, out, err = run_cli(argv, capsys)
    assert_interrupted(code, out, err, 130)
    assert not (tmp_path / "t.json").exists()


def test_overwrite_leaves_a_directory_without_a_run_alone(
    tiny_llama_dir: Path, tmp_path: Path, capsys
) -> None:
    """--overwrite replaces a run; files in a directory that holds none are not removed."""
    seeded_dir(tmp_path / "run")
    code, _, err = run_cli(
        [*identify_argv(tiny_llama_dir, tmp_path / "run"), "--overwrite"], capsys
    )
    assert code == 0, err
    assert (tmp_path / "run" / "neurons-earlier.json").read_text() == '{"kept": true}\n'
