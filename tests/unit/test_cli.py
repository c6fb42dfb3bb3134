"""The command line: happy paths on a tiny model, and bad inputs → one sentence, exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from crane.neurons import NeuronSet


def assert_clear_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    message = errors[0]
    tail = err[err.index("error:"):].strip()
    assert tail == message, f"error spans several lines: {tail!r}"
    for needle in needles:
        assert needle.lower() in message.lower(), (needle, message)


def test_models_list(capsys) -> None:
    code, out, _ = run_cli(["models", "list"], capsys)
    assert code == 0
    for family in ("llama", "gemma3", "gpt2", "bloom", "qwen3"):
        assert family in out


def test_methods_lists_the_registry(capsys) -> None:
    from crane.methods import MethodSpec, method_names, register_method, unregister_method

    code, out, err = run_cli(["methods"], capsys)
    assert code == 0, err
    for name in method_names():
        assert name in out
    assert "attnlrp" in out and "control" in out  # relevance method and statistics columns
    register_method(
        MethodSpec("clitestmethod", "activation", "crane.scoring.actmean:actmean_scores", "x")
    )
    try:
        code, out, err = run_cli(["methods"], capsys)
        assert code == 0, err
        assert "clitestmethod" in out
    finally:
        unregister_method("clitestmethod")
    assert "clitestmethod" not in run_cli(["methods"], capsys)[1]


def test_models_check_tiny_model(tiny_llama_dir: Path, capsys) -> None:
    code, out, err = run_cli(["models", "check", str(tiny_llama_dir)], capsys)
    assert code == 0, err
    assert "llama" in out and "96" in out and "ok" in out


def test_evaluate_tiny_model_with_neuron_set(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    texts = tmp_path / "en.txt"
    texts.write_text("The quick brown fox jumps over the lazy dog.\nAll human beings are born free.\n")
    neurons = NeuronSet({"en": {0: [1, 2, 3]}}, n_layers=2, d_ff=96).save(tmp_path / "set.json")
    out_json = tmp_path / "matrix.json"
    code, out, err = run_cli(
        ["evaluate", "--model", str(tiny_llama_dir), "--corpus", str(texts), "--neurons",
         str(neurons), "--out", str(out_json)],
        capsys,
    )
    assert code == 0, err
    matrix = json.loads(out_json.read_text())
    assert matrix["conditions"] == ["none", "set", "random~set"]
    assert matrix["sizes"]["set"] == 3
    assert matrix["delta"]["set"]["en"] != 0.0


def test_data_show_builtin_and_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "vi.txt"
    path.write_text("Xin chào thế giới.\nTôi là một câu.\n")
    code, out, err = run_cli(["data", "show", "--corpus", str(path)], capsys)
    assert code == 0, err
    assert "udhr" in out and "vi" in out


def test_missing_model_path(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["models", "check", str(tmp_path / "nope")], capsys)
    assert_clear_error(code, err, "does not exist")


def test_unsupported_architecture(tmp_path: Path, capsys) -> None:
    from transformers import OPTConfig, OPTForCausalLM

    model = OPTForCausalLM(
        OPTConfig(vocab_size=64, hidden_size=32, ffn_dim=48, num_hidden_layers=1,
                  num_attention_heads=2, word_embed_proj_dim=32, max_position_embeddings=32)
    )
    model.save_pretrained(tmp_path / "opt")
    code, _, err = run_cli(["models", "check", str(tmp_path / "opt")], capsys)
    assert_clear_error(code, err, "not supported", "llama", "register")


def test_unknown_language(tiny_llama_dir: Path, capsys) -> None:
    code, _, err = run_cli(
        ["evaluate", "--model", str(tiny_llama_dir), "--corpus", "udhr", "--langs", "en,xq"], capsys
    )
    assert_clear_error(code, err, "xq")


def test_language_absent_from_corpus(tiny_llama_dir: Path, capsys) -> None:
    code, _, err = run_cli(
        ["evaluate", "--model", str(tiny_llama_dir), "--corpus", "udhr", "--langs", "en,got"], capsys
    )
    assert_clear_error(code, err, "got")


def test_empty_corpus_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "en.txt"
    path.write_text("\n\n   \n")
    code, _, err = run_cli(["data", "show", "--corpus", str(path)], capsys)
    assert_clear_error(code, err, str(path.name))


def test_non_utf8_corpus_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "en.txt"
    path.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    code, _, err = run_cli(["data", "show", "--corpus", str(path)], capsys)
    assert_clear_error(code, err, "UTF-8")


def test_unreadable_corpus_path(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["data", "show", "--corpus", str(tmp_path / "missing.jsonl")], capsys)
    assert_clear_error(code, err, "missing.jsonl")


def test_neuron_set_that_does_not_fit(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    neurons = NeuronSet({"en": {0: [5000]}}, n_layers=18, d_ff=8192).save(tmp_path / "big.json")
    code, _, err = run_cli(
        ["evaluate", "--model", str(tiny_llama_dir), "--corpus", "udhr", "--langs", "en",
         "--neurons", str(neurons)],
        capsys,
    )
    assert_clear_error(code, err, "neuron set", "this model")


def test_neuron_set_not_json(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "set.json"
    path.write_bytes(b"\x80\x04pickled")
    code, _, err = run_cli(
        ["evaluate", "--model", str(tiny_llama_dir), "--neurons", str(path)], capsys
    )
    assert_clear_error(code, err, "not valid JSON")


def test_identify_and_show_on_tiny_model(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    argv = ["identify", "--model", str(tiny_llama_dir), "--langs", "en,zh,vi", "--corpus", "udhr",
            "--method", "gradxact", "--budget", "6", "--out", str(run_dir), "--quantile", "0.5",
            "--score", "margin", "--target", "logit", "--verify-mode", "groups"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    neuron_set = NeuronSet.load(run_dir / "neurons-gradxact.json")
    assert set(neuron_set.languages) == {"en", "zh", "vi"}
    report = json.loads((run_dir / "identify-gradxact.json").read_text())
    for lang in ("en", "zh", "vi"):
        verification = report["verification"][lang]
        assert verification["tests"] >= 1 and verification["forward_passes"] > 0
        # verified sets hold at most the budget, and what was dropped is accounted for
        assert neuron_set.size(lang) <= 6
    assert "gradxact verification en" in out
    # a second run reuses every shard and gives the same sets
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert NeuronSet.load(run_dir / "neurons-gradxact.json").neurons == neuron_set.neurons
    code, out, _ = run_cli(["neurons", "show", str(run_dir)], capsys)
    assert code == 0 and "gradxact" in out and "per layer" in out


def test_identify_defaults_to_the_set_search(
    tiny_llama_dir: Path, tmp_path: Path, capsys
) -> None:
    argv = ["identify", "--model", str(tiny_llama_dir), "--langs", "en,vi", "--corpus", "udhr",
            "--method", "gradxact", "--budget", "5", "--out", str(tmp_path / "run")]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "gradxact verification en: set search from the top-k:" in out
    neuron_set = NeuronSet.load(tmp_path / "run" / "neurons-gradxact.json")
    assert neuron_set.size("en") == neuron_set.size("vi") == 5
    assert neuron_set.meta["search"]["passes"] == 8
    report = json.loads((tmp_path / "run" / "identify-gradxact.json").read_text())
    options = report["options"]
    chosen = (options["score"], options["verify_mode"], options["rounds"])
    assert chosen == ("contrast", "search", 1)
    assert options["relevance"]["target"] == "logprob"
    for lang in ("en", "vi"):
        verification = report["verification"][lang]
        assert verification["budget"] == 5 and verification["start"] == "top-k"
        assert 1 <= verification["passes"] <= 8 and verification["trials"] >= 1
        assert verification["stopped"] in ("converged", "pass budget", "no candidates")
        # a trial is accepted only when validated Sel rises: the search never loses
        assert verification["measured_sel"] >= verification["start_sel"]
        history = verification["history"]
        assert len(history) == verification["trials"]
        assert sum(h["accepted"] for h in history) == verification["accepted"]
    # a rerun reads the finished sets back
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert NeuronSet.load(tmp_path / "run" / "neurons-gradxact.json").neurons == neuron_set.neurons


def test_identify_bad_budget(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    for budget, needle in (("0", "at least 1"), ("-5", "at least 1"), ("999999", "only 192")):
        code, _, err = run_cli(
            ["identify", "--model", str(tiny_llama_dir), "--langs", "en,zh", "--corpus", "udhr",
             "--budget", budget, "--out", str(tmp_path / "r"), "--no-verify", "--method", "gradxact"],
            capsys,
        )
        assert_clear_error(code, err, needle)


@pytest.mark.parametrize("method,budget", [("lape", "own"), ("lape", "6"), ("kojima", "6"), ("actmean", "6")])
def test_identify_activation_baselines(tiny_llama_dir: Path, tmp_path: Path, capsys, method, budget) -> None:
    run_dir = tmp_path / "run"
    code, out, err = run_cli(
        ["identify", "--model", str(tiny_llama_dir), "--langs", "en,zh,vi", "--corpus", "udhr",
         "--method", method, "--budget", budget, "--out", str(run_dir)],
        capsys,
    )
    assert code == 0, err
    neuron_set = NeuronSet.load(run_dir / f"neurons-{method}.json")
    assert set(neuron_set.languages) == {"en", "zh", "vi"}
    if budget == "6":
        assert all(neuron_set.size(lang) <= 6 for lang in neuron_set.languages)
    assert list((run_dir / "activations").rglob("shard-*.safetensors"))


def test_budget_own_only_for_lape_and_plnd(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(
        ["identify", "--model", str(tiny_llama_dir), "--langs", "en,zh", "--corpus", "udhr",
         "--method", "kojima", "--budget", "own", "--out", str(tmp_path / "r")],
        capsys,
    )
    assert_clear_error(code, err, "lape and plnd")


def test_several_methods_share_one_activation_pass(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    argv = ["identify", "--model", str(tiny_llama_dir), "--langs", "en,zh,vi", "--corpus", "udhr",
            "--method", "lape,kojima,plnd,actmean,gradxact", "--budget", "match:lape",
            "--out", str(run_dir), "--no-verify", "--quantile", "0.5"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    sets = {m: NeuronSet.load(run_dir / f"neurons-{m}.json") for m in ("lape", "kojima", "plnd", "actmean", "gradxact")}
    # LAPE keeps its own sizes; every other method is asked for exactly LAPE's per-language sizes
    # (a method may return fewer only when it has fewer candidates, e.g. PLND's rule)
    own = {lang: sets["lape"].size(lang) for lang in sets["lape"].languages}
    assert sum(own.values()) > 0
    for method in ("kojima", "actmean", "gradxact"):
        assert {lang: sets[method].size(lang) for lang in own} == own, method
    assert all(sets["plnd"].size(lang) <= own[lang] for lang in own)
    # one activation pass: one shard set per language, shared by the four activation methods
    shard_files = sorted(p.name for p in (run_dir / "activations" / "en").glob("shard-*.safetensors"))
    assert shard_files and all(name.count("shard-") == 1 for name in shard_files)
    assert (run_dir / "stats-gradxact").is_dir()
    assert "overlap between methods" in out
    # a rerun reuses every shard (nothing is recomputed) and gives identical sets
    mtimes = {p: p.stat().st_mtime_ns for p in run_dir.rglob("shard-*.safetensors")}
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("shard-*.safetensors")} == mtimes
    for method, neuron_set in sets.items():
        assert NeuronSet.load(run_dir / f"neurons-{method}.json").neurons == neuron_set.neurons


def test_unknown_method(tiny_llama_dir: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(
        ["identify", "--model", str(tiny_llama_dir), "--langs", "en,zh", "--corpus", "udhr",
         "--method", "crane,lapse", "--out", str(tmp_path / "r")],
        capsys,
    )
    assert_clear_error(code, err, "lapse", "comma-separated")


def test_import_lape_file(tmp_path: Path, capsys) -> None:
    import torch

    layers = [[torch.tensor([1, 5]), torch.tensor([], dtype=torch.long)], [torch.tensor([2]), torch.tensor([7, 9])]]
    torch.save(layers, tmp_path / "x.neuron.pth")
    code, out, err = run_cli(
        ["neurons", "import-lape", str(tmp_path / "x.neuron.pth"), "--langs", "en,zh",
         "--out", str(tmp_path / "x.json")],
        capsys,
    )
    assert code == 0, err
    imported = NeuronSet.load(tmp_path / "x.json")
    assert imported.layers("en") == {0: [1, 5]} and imported.layers("zh") == {0: [2], 1: [7, 9]}


def test_every_identify_option_is_a_config_key() -> None:
    """``crane identify`` and a study configuration are one surface: each option has a key,
    and the keys that are not study choices default to the option's default."""
    import dataclasses
    import inspect

    from crane.cli.identify import OPTION_KEYS, identify_cmd
    from crane.study.config import StudyConfig

    parameters = inspect.signature(identify_cmd).parameters
    assert set(parameters) - {"ctx", "out", "config", "overwrite"} == set(OPTION_KEYS)
    defaults = StudyConfig()
    fields = {f.name for f in dataclasses.fields(StudyConfig)}
    study_choices = {"model", "languages", "methods", "budget", "identify_max_texts"}
    for name, key in OPTION_KEYS.items():
        assert key in fields, key
        if key not in study_choices:
            assert getattr(defaults, key) == parameters[name].default, key


def test_identify_config_file_precedence(
    tiny_llama_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """``crane identify --config``: command line > file > defaults (a default never overrides
    the file, an option typed on the command line always wins, even with its default value)."""
    import crane.identification
    import crane.models.loading
    from crane.identification import MethodsResult

    calls: list[dict] = []

    def fake_identify(loaded, texts, methods, **kwargs):
        calls.append({"model": loaded, "languages": texts.languages, "methods": methods, **kwargs})
        return MethodsResult({}, {}, {})

    monkeypatch.setattr(crane.identification, "identify_methods", fake_identify)
    monkeypatch.setattr(crane.models.loading, "load_model", lambda spec, **kw: ("model", spec, kw))
    config = tmp_path / "study.toml"
    config.write_text(
        f'model = "{tiny_llama_dir}"\nlanguages = "en,zh"\nmethods = "crane,lape"\n'
        'budget = "match:crane"\nreference_budget = "10"\n[identify]\nidentify_corpus = "udhr"\n'
        "identify_max_texts = 5\nquantile = 0.7\ntoken_budget = 500\nshard_texts = 8\n"
        'gradient_checkpointing = true\nverify_methods = "crane"\nbatch_tokens = 512\n'
        "[evaluate]\nn_boot = 10\n",  # a study key identify has no use for: ignored
        encoding="utf-8",
    )

    def identify(*argv: str) -> dict:
        code, _, err = run_cli(["identify", "--out", str(tmp_path / "run"), *argv], capsys)
        assert code == 0, err
        return calls.pop()

    from_file = identify("--config", str(config))
    options = from_file["options"]
    assert from_file["model"][1] == str(tiny_llama_dir)
    assert from_file["languages"] == ["en", "zh"] and from_file["methods"] == ["crane", "lape"]
    assert (from_file["budget"], from_file["reference_budget"]) == ("match:crane", "10")
    assert from_file["verify_methods"] == ["crane"]
    assert (options.quantile, options.token_budget, options.max_texts) == (0.7, 500, 5)
    relevance = options.relevance
    assert (relevance.shard_texts, relevance.checkpoint, relevance.batch_tokens) == (8, True, 512)

    typed = identify(
        "--config", str(config), "--quantile", "0.95", "--max-tokens", "100", "--method",
        "crane", "--budget", "4", "--no-gradient-checkpointing", "--langs", "en,vi",
    )
    assert typed["methods"] == ["crane"] and typed["budget"] == "4"
    assert typed["languages"] == ["en", "vi"]
    assert (typed["options"].quantile, typed["options"].token_budget) == (0.95, 100)
    assert typed["options"].relevance.checkpoint is False
    assert typed["options"].relevance.shard_texts == 8  # not typed: still the file's

    plain = identify("--model", str(tiny_llama_dir), "--langs", "en,zh", "--corpus", "udhr")
    assert plain["methods"] == ["crane"] and plain["verify_methods"] is None
    assert (plain["options"].quantile, plain["options"].token_budget) == (0.95, None)
    assert plain["options"].relevance.shard_texts == 64

    code, _, err = run_cli(["identify", "--out", str(tmp_path / "run"), "--langs", "en,zh"], capsys)
    assert_clear_error(code, err, "--model")
    config.write_text(
        f'model = "{tiny_llama_dir}"\nlanguages = "en,zh"\ntoken_budget = 0\n', encoding="utf-8"
    )
    code, _, err = run_cli(
        ["identify", "--config", str(config), "--out", str(tmp_path / "run")], capsys
    )
    assert_clear_error(code, err, "token_budget (--max-tokens) must be a positive number")
    code, _, err = run_cli(
        ["identify", "--config", str(config), "--out", str(tmp_path / "run"), "--max-tokens",
         "50", "--score", "nope"], capsys,
    )
    assert_clear_error(code, err, "score = 'nope' is not one of")


def test_sets_with_the_same_file_name_keep_their_own_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from crane.cli.evaluate import set_labels
    from crane.errors import ConfigError

    a, b = tmp_path / "a" / "neurons-crane.json", tmp_path / "b" / "neurons-crane.json"
    c = tmp_path / "neurons-lape.json"
    assert list(set_labels([a, b, c])) == ["a/neurons-crane", "b/neurons-crane", "neurons-lape"]
    assert list(set_labels([c])) == ["neurons-lape"]
    with pytest.raises(ConfigError, match="twice"):
        set_labels([a, tmp_path / "b" / ".." / "a" / "neurons-crane.json"])
