"""The study pipeline on a tiny model: stages, resume, determinism, configuration files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crane.errors import ConfigError
from crane.manifest import Manifest
from crane.study import StudyConfig, load_config, run_study

FIXTURES = Path(__file__).parent.parent / "fixtures" / "choice"
TABLE_KEYS = (
    "benchmarks", "metrics", "comparisons", "relevance", "sets", "overlap", "sweep"
)


def tiny_config(model_dir: Path, **overrides) -> StudyConfig:
    settings = dict(
        model=str(model_dir),
        languages=["en", "zh", "vi"],
        methods=["gradxact", "lape", "kojima"],
        budget="match:gradxact",
        reference_budget="6",
        identify_corpus="udhr",
        identify_max_texts=8,
        quantile=0.5,
        verify_tests=4,
        choice_builtin_items=6,
        choice_files={
            "en": str(FIXTURES / "en_mmlu.csv"),
            "zh": str(FIXTURES / "zh_cmmlu.csv"),
            "vi": str(FIXTURES / "vi_vmlu.jsonl"),
        },
        generation_prompts=3,
        generation_tokens=4,
        sweep_budgets=[0.02, 0.05],
        sweep_methods=["gradxact"],
        n_boot=50,
    )
    settings.update(overrides)
    return StudyConfig(**settings)


@pytest.fixture(scope="module")
def study(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("study")
    result = run_study(tiny_config(tiny_llama_dir), out, report=False)
    return out, result.results


def test_study_has_every_part(study) -> None:
    out, results = study
    controls = ["random", "random-1", "random-2"]  # three seeds by default
    assert results["methods"] == ["gradxact", "lape", "kojima", *controls]
    assert set(results["benchmarks"]) == {"bpb", "choice", "mc", "generation"}
    # the MMLU-style fixtures (three layouts) go through the same path as real benchmark files
    assert results["benchmarks"]["mc"]["items"] == {"en": 6, "zh": 6, "vi": 6}
    # multiple choice runs under every set and the first random control only
    assert set(results["metrics"]["mc"]) == {"gradxact", "lape", "kojima", "random"}
    assert set(results["metrics"]["bpb"]) == {"gradxact", "lape", "kojima", *controls}
    generated = json.loads((out / "eval" / "generation" / "none.json").read_text())["cells"]["zh"]
    assert len(generated["generated"]) == 3 and len(generated["identified"]) == 3
    assert generated["num"] == [float(code == "zh") for code in generated["identified"]]
    sizes = results["sets"]["gradxact"]["sizes"]
    assert results["sets"]["random"]["sizes"] == sizes  # the layer-matched control
    for control in controls:  # layer-matched, other seeds: other neurons
        assert results["sets"][control]["layer_counts"] == results["sets"]["gradxact"]["layer_counts"]
    seeded = [json.loads((out / f"neurons-{c}.json").read_text())["neurons"] for c in controls]
    assert seeded[0] != seeded[1] != seeded[2]
    for method in ("lape", "kojima"):  # equal budget (fewer only without enough candidates)
        assert all(results["sets"][method]["sizes"][lang] <= sizes[lang] for lang in sizes)
        assert sum(results["sets"][method]["sizes"].values()) > 0
    bpb = results["benchmarks"]["bpb"]
    for name, bench in results["benchmarks"].items():  # the unmasked value with its interval
        for lang in ("en", "zh", "vi"):
            low, high = bench["none_ci"][lang]
            assert low <= bench["none"][lang] <= high, (name, lang)
    for method in results["methods"]:
        for lang in ("en", "zh", "vi"):
            row = bpb["delta"][method][lang]
            assert set(row) == {"en", "zh", "vi"}
            m = results["metrics"]["bpb"][method][lang]
            others = [row[e] for e in row if e != lang]
            assert m["damage"] == pytest.approx(row[lang])
            assert m["sel"] == pytest.approx(row[lang] - sum(others) / 2)
            assert m["damage_ci"][0] <= m["damage_ci"][1]
    choice = results["benchmarks"]["choice"]
    assert choice["higher_is_better"] and all(0 <= v <= 1 for v in choice["none"].values())
    assert results["sweep"]["budgets"] == [0.02, 0.05]
    series = results["sweep"]["methods"]["gradxact"]["en"]
    assert len(series["target"]) == 2 and len(series["sel_ci"]) == 2
    assert series["sel"][0] == pytest.approx(series["target"][0] - series["off_target"][0])
    assert set(series["at_off_target"]) == {"0.05", "0.2"}
    compared = results["comparisons"]["bpb"]
    a, b = compared["paired"]["gradxact"]["random"]["zh"]["diff"], results["metrics"]["bpb"]
    assert a == pytest.approx(b["gradxact"]["zh"]["sel"] - b["random"]["zh"]["sel"])
    assert set(compared["verdict"]) == set(results["methods"]) - set(controls)
    assert set(results["relevance"]["lape"]["en"]["rc"]) == {"en", "zh", "vi"}
    stored = json.loads((out / "study.json").read_text())
    assert stored["benchmarks"] == json.loads(json.dumps(results["benchmarks"]))
    manifest = Manifest(out)
    assert {"identify", "evaluate:bpb", "evaluate:choice", "evaluate:mc", "evaluate:generation"} <= set(
        manifest.stages
    )


def test_rerun_reuses_every_stage(study, tiny_llama_dir: Path) -> None:
    out, results = study
    files = sorted((out / "eval").rglob("*.json"))
    before = {p: p.stat().st_mtime_ns for p in [*files, out / "neurons-lape.json"]}
    again = run_study(tiny_config(tiny_llama_dir), out, report=False).results
    assert {p: p.stat().st_mtime_ns for p in before} == before
    for key in TABLE_KEYS:
        assert again[key] == results[key], key


def test_a_damaged_row_is_recomputed_not_read(study, tiny_llama_dir: Path) -> None:
    out, results = study
    row = out / "eval" / "bpb" / "lape_en.json"
    row.write_text(row.read_text()[:40])  # truncated, as after a crash mid-write
    again = run_study(tiny_config(tiny_llama_dir), out, report=False).results
    assert json.loads(row.read_text())["row"] == "lape:en"
    assert again["benchmarks"] == results["benchmarks"]


def test_same_seed_same_tables_in_a_fresh_directory(
    study, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    _, results = study
    fresh = run_study(tiny_config(tiny_llama_dir), tmp_path / "fresh", report=False).results
    for key in TABLE_KEYS:
        assert fresh[key] == results[key], key


def test_config_file_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(
        'model = "some/model"\nlanguages = "en,vi"\n[identify]\nidentify_max_texts = 20\n'
        '[evaluate]\nchoice_builtin_items = 10\n[choice_files]\nen = "en.csv"\n'
    )
    config = load_config(path)
    assert config.languages == ["en", "vi"] and config.identify_max_texts == 20
    assert config.choice_builtin_items == 10 and config.choice_files == {"en": "en.csv"}
    path.write_text('model = "m"\nlanguagez = "en,vi"\n')
    with pytest.raises(ConfigError, match="languagez"):
        load_config(path)
    path.write_text("model = \n")
    with pytest.raises(ConfigError, match="Cannot parse"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    yaml_path = tmp_path / "study.yaml"
    yaml_path.write_text("model: some/model\nlanguages: [en, zh]\nn_boot: 10\n")
    assert load_config(yaml_path).languages == ["en", "zh"]
    with pytest.raises(ConfigError, match="random"):
        StudyConfig(methods=["crane", "random"]).validate()
    with pytest.raises(ConfigError, match="at least two"):
        StudyConfig(languages=["en"]).validate()


def test_benchmark_methods_limits_the_slower_benchmarks(
    study, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    """``benchmark_methods`` chooses the sets multiple choice and generation run under (the
    rest resumes from the saved rows); bits per byte keeps every set; a name the study does
    not run is a clear error."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(study[0], out)
    config = tiny_config(tiny_llama_dir, benchmark_methods=["lape", "random"])
    results = run_study(config, out, report=False).results
    for name in ("choice", "mc", "generation"):
        assert set(results["metrics"][name]) == {"lape", "random"}, name
    assert set(results["metrics"]["bpb"]) == set(study[1]["metrics"]["bpb"])
    with pytest.raises(ConfigError, match="benchmark_methods names plnd"):
        tiny_config(tiny_llama_dir, benchmark_methods=["plnd"]).validate()


def test_identification_texts_among_the_cloze_source_are_caught(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    """The overlap check covers the built-in cloze test's and generation prompts' source, not
    only the bits-per-byte corpus: a clear error before any work, a note under
    allow_overlap."""
    from crane.data.corpus import Corpus
    from crane.study.evaluate import cloze_source
    from crane.study.identify import _check_overlap

    langs = ["en", "zh", "vi"]
    source = cloze_source(langs)
    corpus = tmp_path / "ident.jsonl"
    rows = [
        {"lang": lang, "text": text}
        for lang in langs
        for text in [*source[lang][:2], f"A sentence of my own in {lang}, number one."]
    ]
    corpus.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    config = tiny_config(tiny_llama_dir, identify_corpus=str(corpus), generation_prompts=0)
    with pytest.raises(ConfigError, match="allow_overlap"):
        run_study(config, tmp_path / "run", report=False)
    assert not (tmp_path / "run" / "study.json").exists()
    notes: list[str] = []
    texts = Corpus({lang: [r["text"] for r in rows if r["lang"] == lang] for lang in langs})
    _check_overlap(tiny_config(tiny_llama_dir, allow_overlap=True), texts, notes)
    assert len(notes) == 1 and "allow_overlap is set" in notes[0]
    if source.provenance.get("source") == "gettext":  # else the source is UDHR's, like bpb's
        alone = tiny_config(tiny_llama_dir, choice_builtin_items=0, generation_prompts=0)
        _check_overlap(alone, texts, notes)  # bits per byte on UDHR only: no overlap here
        assert len(notes) == 1


def test_cloze_and_generation_prompts_are_built_for_any_language(tiny_llama_dir: Path) -> None:
    """The built-in cloze test and the generation prompts exist in languages the project
    never named (en, de, ja, sw): from gettext's held-out part where this machine's catalogs
    cover them all, else UDHR's held-out paragraphs; the same items in every language."""
    from crane.study.evaluate import _cloze

    langs = ["en", "de", "ja", "sw"]
    config = tiny_config(tiny_llama_dir, languages=langs, choice_builtin_items=5,
                         generation_prompts=3)
    config.validate()
    choice = _cloze(config)
    prompts = _cloze(config, config.generation_prompts)
    assert choice.languages == langs and prompts.languages == langs
    for lang in langs:
        assert len(choice[lang]) == 5 and len(prompts[lang]) == 3
        assert [it.answer for it in choice[lang]] == [it.answer for it in choice["en"]]
    assert choice["sw"][0].prompt != choice["en"][0].prompt  # translations, not copies


def test_config_reference_is_generated_from_the_code_and_current() -> None:
    """docs/config.md is what scripts/config_reference.py renders from StudyConfig: every field
    once, with its default, its ``crane identify`` option and its docstring as the meaning."""
    import dataclasses

    from crane.cli.identify import OPTION_KEYS
    from crane.study.reference import config_reference, key_meanings, table_default

    page = (Path(__file__).parents[2] / "docs" / "config.md").read_text(encoding="utf-8")
    assert page == config_reference(), "run: python scripts/config_reference.py"
    rows = {}
    for line in page.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows[cells[0].split("`")[1]] = cells
    fields = [f.name for f in dataclasses.fields(StudyConfig)]
    assert sorted(rows) == sorted(fields)
    assert sorted(key_meanings()) == sorted(fields)  # every key has its meaning in the code
    flags = {key: f"`--{name.replace('_', '-')}`" for name, key in OPTION_KEYS.items()}
    defaults = StudyConfig()
    for name in fields:
        _, _, default, flag, meaning = rows[name]
        assert default == f"`{table_default(getattr(defaults, name))}`", name
        assert flag == flags.get(name, "—"), name
        assert len(meaning) > 10, name


def test_the_reference_script_checks_the_page(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).parents[2] / "scripts" / "config_reference.py"
    done = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date" in done.stdout


def test_identification_keys_reach_the_options() -> None:
    config = StudyConfig(
        token_budget=300, shard_texts=5, gradient_checkpointing=True, identify_max_texts=7,
        batch_tokens=256,
    )
    config.validate()
    options = config.identify_options()
    assert (options.token_budget, options.max_texts) == (300, 7)
    relevance = options.relevance
    assert (relevance.shard_texts, relevance.checkpoint, relevance.batch_tokens) == (5, True, 256)
    for bad, match in (
        ({"token_budget": 0}, "token_budget"),
        ({"shard_texts": 0}, "shard_texts"),
        ({"profile": "loud"}, "profile"),
        ({"quantile": 1.0}, "quantile"),
    ):
        with pytest.raises(ConfigError, match=match):
            StudyConfig(**bad).validate()


def test_every_identification_setting_keys_the_identify_stage() -> None:
    """A changed identification option must rerun the stage: every key crane identify can set
    is in the stage's key, except those that change memory or the model's identity only."""
    from crane.cli.identify import FILE_ONLY_KEYS, OPTION_KEYS
    from crane.study.config import IDENTIFY_KEYS

    exempt = {"gradient_checkpointing", "dtype", "device", "trust_remote_code", "revision"}
    settable = (set(OPTION_KEYS.values()) | set(FILE_ONLY_KEYS)) - exempt
    assert settable <= set(IDENTIFY_KEYS), sorted(settable - set(IDENTIFY_KEYS))


def test_identification_texts_among_the_evaluation_texts_are_refused(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    from crane.data.builtin import load_corpus
    from crane.errors import ConfigError
    from crane.study.identify import _check_overlap

    held = load_corpus("udhr", part="heldout").select(["en", "zh", "vi"])
    rows = [
        {"lang": lang, "text": text}
        for lang in held.languages
        for text in [*held[lang][:2], f"An identification sentence of my own in {lang}."]
    ]
    corpus = tmp_path / "mine.jsonl"
    corpus.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    config = tiny_config(tiny_llama_dir, identify_corpus=str(corpus))
    with pytest.raises(ConfigError, match="allow_overlap"):
        run_study(config, tmp_path / "run", report=False)
    assert not (tmp_path / "run" / "study.json").exists()
    notes: list[str] = []
    mine = load_corpus(str(corpus), part="identify").select(["en", "zh", "vi"])
    _check_overlap(tiny_config(tiny_llama_dir, allow_overlap=True), mine, notes)
    assert len(notes) == 1 and "allow_overlap" in notes[0]


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"languages": ["en", "en"]}, "twice"),
        ({"verify_ratio": float("nan")}, "finite"),
        ({"lam": float("inf")}, "finite"),
        ({"eval_batch_size": 0}, "eval_batch_size"),
        ({"generation_tokens": -1}, "generation_tokens"),
        ({"choice_builtin_items": -3}, "choice_builtin_items"),
        ({"random_seeds": 0}, "random_seeds"),
    ],
)
def test_study_options_are_checked_before_any_work(keys: dict, needle: str) -> None:
    from crane.errors import ConfigError

    with pytest.raises(ConfigError, match=needle):
        StudyConfig(**keys).validate()


def test_a_yaml_config_that_gives_a_key_twice_is_refused(tmp_path: Path) -> None:
    from crane.errors import ConfigError
    from crane.study import load_config

    path = tmp_path / "study.yaml"
    path.write_text("seed: 1\nlanguages: [en, zh]\nseed: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'seed' is given twice .*line 3"):
        load_config(path)


def test_search_methods_report_each_method_as_published_and_after_the_same_search(
    tiny_llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crane.cli.render import print_study

    config = tiny_config(
        tiny_llama_dir, methods=["gradxact", "lape", "actmean"], verify_methods=[],
        search_methods=["gradxact", "actmean"], search_passes=1, ig_steps=1,
        choice_builtin_items=0, choice_files={}, generation_prompts=0, sweep_budgets=[],
        random_seeds=1,
    )
    result = run_study(config, tmp_path / "run", report=True)
    results = result.results
    assert results["methods"] == [
        "gradxact", "gradxact+search", "lape", "actmean", "actmean+search", "random"
    ]
    sizes = results["sets"]["gradxact"]["sizes"]
    for name in ("gradxact+search", "actmean+search"):
        assert results["sets"][name]["sizes"] == sizes
        for lang in config.languages:
            report = results["verification"][name][lang]
            assert report["start"] == "published" and report["passes"] == 1
            assert report["measured_sel"] >= report["start_sel"]
    # the published sets are the unsearched top-k: no verification report of their own
    assert not results["verification"].get("gradxact")
    paired = results["comparisons"]["bpb"]["paired"]
    assert set(paired["actmean+search"]["actmean"]) == set(config.languages)
    html = (result.report / "index.html").read_text() if result.report.is_dir() else (
        result.report.read_text()
    )
    assert "the same set search on every proposal" in html
    print_study(results)
    assert "Sel(gradxact+search) − Sel(method), paired" in capsys.readouterr().out
    # a searched set the study does not identify, or one already searched, is refused
    with pytest.raises(ConfigError, match="search_methods names 'plnd'"):
        tiny_config(tiny_llama_dir, search_methods=["plnd"]).validate()
    with pytest.raises(ConfigError, match="already searched"):
        tiny_config(tiny_llama_dir, search_methods=["gradxact"]).validate()
