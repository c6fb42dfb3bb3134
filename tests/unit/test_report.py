"""crane.report: figures, CSV tables and the self-contained HTML page from a study's results."""

from __future__ import annotations

import base64
import copy
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

import crane.report.figures
from crane.data.languages import language_name
from crane.errors import ConfigError
from crane.report import build_report
from crane.results import NO_METRIC, ResultsError, StudyResults

LANGS = ["en", "zh", "vi"]
METHODS = ["crane", "lape", "kojima", "random"]
N_LAYERS, D_FF = 18, 2048
BUDGETS = [0.001, 0.0025, 0.005, 0.01, 0.02]


def _interval(rng: np.random.Generator, x: float, spread: float) -> list[float]:
    return [x - spread * float(rng.uniform(0.5, 1.0)), x + spread * float(rng.uniform(0.5, 1.0))]


def synthetic_results(methods: list[str] = METHODS, langs: list[str] = LANGS) -> dict[str, Any]:
    """A study's results shaped like docs/results.md, with made-up but plausible numbers."""
    rng = np.random.default_rng(0)
    strength = {
        "crane": 6.0,
        "gradxact": 4.0,
        "lape": 2.5,
        "kojima": 1.6,
        "plnd": 3.0,
        "actmean": 1.2,
        "random": 0.9,
    }
    benchmarks: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    comparisons: dict[str, Any] = {}
    specs = {
        "bpb": (
            "Bits per byte, held-out UDHR",
            "bits/byte",
            False,
            {"en": 0.653, "zh": 1.491, "vi": 0.781},
        ),
        "choice": (
            "Parallel continuation (4 options)",
            "accuracy",
            True,
            {"en": 0.792, "zh": 0.625, "vi": 0.708},
        ),
    }
    for name, (title, unit, higher, none_all) in specs.items():
        none = {x: none_all.get(x, 0.9) for x in langs}
        sign = -1.0 if higher else 1.0
        value: dict[str, Any] = {}
        delta: dict[str, Any] = {}
        delta_ci: dict[str, Any] = {}
        per_method: dict[str, Any] = {}
        for m in methods:
            value[m], delta[m], delta_ci[m], per_method[m] = {}, {}, {}, {}
            for masked in langs:
                d = {}
                for e in langs:
                    base = float(rng.uniform(0.02, 0.12))
                    harm = base * (strength[m] if e == masked else 1.0)
                    if m == "lape" and masked == "vi" and e != masked:
                        harm = -0.03  # off-target improvement: DD < 0
                    d[e] = round(sign * harm * (0.25 if higher else 1.0), 6)
                delta[m][masked] = d
                value[m][masked] = {e: round(none[e] + d[e], 6) for e in langs}
                delta_ci[m][masked] = {e: _interval(rng, d[e], 0.02) for e in langs}
                damage = sign * d[masked]
                off = float(np.mean([sign * d[e] for e in langs if e != masked]))
                sel, dd = damage - off, damage / off
                per_method[m][masked] = {
                    "damage": damage,
                    "damage_ci": _interval(rng, damage, 0.02),
                    "off_target": off,
                    "off_target_ci": _interval(rng, off, 0.01),
                    "sel": sel,
                    "sel_ci": _interval(rng, sel, 0.03),
                    "dd": dd,
                    "dd_ci": _interval(rng, dd, abs(dd) * 0.3 + 0.1),
                }
        benchmarks[name] = {
            "title": title,
            "unit": unit,
            "higher_is_better": higher,
            "items": {x: 15 if name == "bpb" else 24 for x in langs},
            "none": none,
            "value": value,
            "delta": delta,
            "delta_ci": delta_ci,
        }
        metrics[name] = per_method
        paired = {
            a: {
                b: {
                    x: {
                        "diff": per_method[a][x]["sel"] - per_method[b][x]["sel"],
                        "ci": _interval(
                            rng, per_method[a][x]["sel"] - per_method[b][x]["sel"], 0.04
                        ),
                    }
                    for x in langs
                }
                for b in methods
                if b != a
            }
            for a in methods
        }
        verdict = {
            m: {
                x: "selective"
                if "random" not in methods or paired[m]["random"][x]["ci"][0] > 0
                else "no selective set at k"
                for x in langs
            }
            for m in methods
            if m != "random"
        }
        comparisons[name] = {"paired": paired, "efficiency": {}, "verdict": verdict}

    sets: dict[str, Any] = {}
    for m in methods:
        counts = {}
        for x in langs:
            profile = np.exp(-0.5 * ((np.arange(N_LAYERS) - rng.uniform(3, 15)) / 3.0) ** 2)
            raw = np.floor(profile / profile.sum() * 184).astype(int)
            raw[int(np.argmax(profile))] += 184 - int(raw.sum())
            counts[x] = [int(c) for c in raw]
        if m == "random":
            counts = copy.deepcopy(sets["crane"]["layer_counts"])
        sets[m] = {
            "sizes": {x: 184 for x in langs},
            "layer_counts": counts,
            "file": f"neurons-{m}.json",
        }

    relevance = {
        m: {
            x: {
                "rc": {
                    e: round(float(rng.uniform(0.005, 0.02)) * (3 if e == x else 1), 6)
                    for e in langs
                },
                "rs": round(float(rng.uniform(0.8, 3.5)), 3),
            }
            for x in langs
        }
        for m in methods
        if m != "random"
    }
    sweep_methods = {}
    for m in [x for x in ("crane", "lape") if x in methods]:
        sweep_methods[m] = {}
        for x in langs:
            growth = np.cumsum(rng.uniform(0.05, 0.4, len(BUDGETS)))
            target = [round(float(v), 6) for v in growth]
            off = [round(float(v) * 0.3, 6) for v in growth]
            sweep_methods[m][x] = {
                "target": target,
                "off_target": off,
                "target_ci": [_interval(rng, v, 0.03) for v in target],
                "off_target_ci": [_interval(rng, v, 0.01) for v in off],
                "sel": [round(t - o, 6) for t, o in zip(target, off, strict=True)],
                "sel_ci": [_interval(rng, t - o, 0.03) for t, o in zip(target, off, strict=True)],
                "at_off_target": {
                    "0.05": round(0.05 / 0.3, 6) if off[0] <= 0.05 <= off[-1] or off[0] >= 0.05
                    else None,
                    "0.2": round(0.2 / 0.3, 6) if off[-1] >= 0.2 else None,
                },
            }
    between_methods = {
        x: {
            a: {b: 1.0 if a == b else round(float(rng.uniform(0, 0.3)), 4) for b in methods}
            for a in methods
        }
        for x in langs
    }
    between_languages = {
        m: {
            a: {b: 1.0 if a == b else round(float(rng.uniform(0, 0.15)), 4) for b in langs}
            for a in langs
        }
        for m in methods
    }
    return {
        "format": "crane-study/1",
        "model": {
            "spec": "gemma-3-270m",
            "n_layers": N_LAYERS,
            "d_ff": D_FF,
            "sha256": "ab" * 32,
            "dtype": "float32",
        },
        "languages": list(langs),
        "methods": list(methods),
        "reference_method": "crane",
        "seed": 0,
        "seconds": 612.3,
        "stage_seconds": {"identify:crane": 201.0, "evaluate:bpb": 150.2, "evaluate:choice": 80.5},
        "config": {
            "model": "gemma-3-270m",
            "languages": list(langs),
            "methods": list(methods),
            "seed": 0,
            "note": "<script>alert(1)</script> & co",
        },
        "sets": sets,
        "verification": {
            "crane": {
                x: {"budget": 184, "tests": 12, "dropped": 3, "delta_of_final_set": {"en": 0.4}}
                for x in langs
            }
        },
        "benchmarks": benchmarks,
        "metrics": metrics,
        "comparisons": comparisons,
        "relevance": relevance,
        "sweep": {"budgets": BUDGETS, "benchmark": "bpb", "methods": sweep_methods},
        "overlap": {"between_methods": between_methods, "between_languages": between_languages},
        "notes": ["zh: fell back to the bundled corpus <b>(escaped)</b>"],
    }


def _write_study(run_dir: Path, results: dict[str, Any]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "study.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return run_dir


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    results = synthetic_results()
    run_dir = _write_study(tmp_path_factory.mktemp("study"), results)
    return results, build_report(run_dir)


def test_html_is_self_contained_and_names_everything(built: tuple[dict[str, Any], Path]) -> None:
    results, index = built
    assert index == index.parent.parent / "report" / "index.html" and index.is_file()
    html = index.read_text(encoding="utf-8")
    pngs = sorted(index.parent.glob("*.png"))
    ids = {p.stem for p in pngs}
    assert ids == {
        "masking-bpb",
        "masking-choice",
        "selectivity",
        "sweep",
        "frontier",
        "layers",
        "overlap-methods",
        "overlap-languages",
        "relevance",
    }
    assert html.count("data:image/png;base64,") == len(pngs)
    for png in pngs:  # the embedded image is the file on disk
        assert base64.b64encode(png.read_bytes()).decode() in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<script" not in html.lower()  # the config's "<script>" text is escaped
    assert "&lt;script&gt;" in html
    for method in METHODS:
        assert f">{method}<" in html
    for lang in LANGS:
        assert f"{language_name(lang)} ({lang})" in html
    assert "gemma-3-270m" in html and "18 × 2048" in html


def test_csv_tables_hold_the_json_numbers(built: tuple[dict[str, Any], Path]) -> None:
    results, index = built
    tables = index.parent / "tables"
    for name, bench in results["benchmarks"].items():
        df = pd.read_csv(tables / f"delta-{name}.csv", keep_default_na=False, na_values=[""])
        assert len(df) == len(METHODS) * len(LANGS) ** 2
        for row in df.itertuples():
            assert row.benchmark == name
            assert row.value == bench["value"][row.method][row.masked][row.evaluated]
            assert row.delta == bench["delta"][row.method][row.masked][row.evaluated]
            low, high = bench["delta_ci"][row.method][row.masked][row.evaluated]
            assert (row.ci_low, row.ci_high) == (low, high)
    metrics = pd.read_csv(tables / "metrics.csv", keep_default_na=False, na_values=[""])
    assert len(metrics) == 2 * len(METHODS) * len(LANGS)
    for row in metrics.to_dict("records"):
        entry = results["metrics"][row["benchmark"]][row["method"]][row["language"]]
        for key in ("damage", "sel", "dd", "off_target"):
            assert row[key] == entry[key]
            assert [row[f"{key}_ci_low"], row[f"{key}_ci_high"]] == entry[f"{key}_ci"]
    sets = pd.read_csv(tables / "sets.csv", keep_default_na=False)
    for row in sets.to_dict("records"):
        spec = results["sets"][row["method"]]
        assert row["size"] == spec["sizes"][row["language"]]
        assert [row[f"layer_{i}"] for i in range(N_LAYERS)] == spec["layer_counts"][row["language"]]
    sweep = pd.read_csv(tables / "sweep.csv")
    for row in sweep.to_dict("records"):
        i = BUDGETS.index(row["budget"])
        entry = results["sweep"]["methods"][row["method"]][row["language"]]
        assert (row["target"], row["off_target"]) == (entry["target"][i], entry["off_target"][i])
    overlap = pd.read_csv(tables / "overlap.csv", keep_default_na=False)
    assert len(overlap) == len(LANGS) * len(METHODS) ** 2 + len(METHODS) * len(LANGS) ** 2
    for row in overlap.to_dict("records"):
        assert row["jaccard"] == results["overlap"][row["kind"]][row["group"]][row["a"]][row["b"]]


def test_sel_is_the_headline_with_verdicts_comparisons_and_the_frontier(
    built: tuple[dict[str, Any], Path],
) -> None:
    results, index = built
    html = index.read_text(encoding="utf-8")
    assert "5× target" not in html and "target line" not in html
    assert html.index("<th>Sel</th>") < html.index("<th>DD</th>")  # Sel first, DD secondary
    assert "fewer than 30 texts or items" in html  # bpb rests on 15 texts per language
    assert "Sel(method) − Sel(crane), paired" in html and "Sel(method) − Sel(random)" in html
    verdicts = results["comparisons"]["bpb"]["verdict"]
    weak = sum(v == "no selective set at k" for per in verdicts.values() for v in per.values())
    assert html.count("no selective set at k</span>") == weak * 1 + sum(
        v == "no selective set at k"
        for per in results["comparisons"]["choice"]["verdict"].values()
        for v in per.values()
    )
    tables = index.parent / "tables"
    paired = pd.read_csv(tables / "paired.csv")
    row = paired[(paired.method == "crane") & (paired.versus == "lape") & (paired.language == "zh")]
    expected = results["comparisons"]["bpb"]["paired"]["crane"]["lape"]["zh"]["diff"]
    assert row[row.benchmark == "bpb"].sel_difference.item() == expected
    frontier = pd.read_csv(tables / "frontier.csv", keep_default_na=False, na_values=[""])
    assert set(frontier.off_target_level) == {0.05, 0.2}
    entry = results["sweep"]["methods"]["crane"]["en"]["at_off_target"]["0.2"]
    got = frontier[(frontier.method == "crane") & (frontier.language == "en")]
    value = got[got.off_target_level == 0.2].own_damage.item()
    assert (math.isnan(value) and entry is None) or value == entry
    assert '<h2 id="frontier">' in html and '<h2 id="comparisons">' in html


def test_same_results_give_identical_files(
    built: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    results, index = built
    files = _files(index.parent)
    figures = [f for f in files if f.endswith(".png")]
    tables = [f for f in files if f.startswith("tables/")]
    assert len(figures) == 9 and len(tables) == 11  # with paired, verdicts and frontier
    assert all(f[:-4] + ext in files for f in figures for ext in (".pdf", ".svg"))
    # the pipeline's path: the in-memory dict, into another run directory
    again = build_report(tmp_path, results=copy.deepcopy(results))
    assert _files(again.parent) == files


def test_missing_sections_and_odd_values(tmp_path: Path) -> None:
    """No sweep or overlap; nan/null numbers, missing intervals, zero and negative DD, a DD
    span over 20× (log axis): fewer figures, no crash, no stale files from an earlier build."""
    results = synthetic_results(methods=["crane", "random"], langs=["en", "zh"])
    for key in ("sweep", "overlap", "verification", "stage_seconds", "notes"):
        del results[key]
    bpb = results["metrics"]["bpb"]
    bpb["crane"]["en"].update(dd=250.0, dd_ci=[40.0, 900.0])
    bpb["crane"]["zh"].update(dd=0.0, dd_ci=[-1.0, 2.0])
    bpb["random"]["en"].update(dd=-3.0)
    bpb["random"]["zh"].update(dd=math.nan, dd_ci=[math.nan, math.nan])
    results["benchmarks"]["bpb"]["delta"]["crane"]["en"]["zh"] = None
    del results["benchmarks"]["choice"]["delta_ci"]
    results["relevance"]["crane"]["en"]["rs"] = math.nan
    run_dir = _write_study(tmp_path / "run", results)
    (run_dir / "report" / "tables").mkdir(parents=True)
    (run_dir / "report" / "sweep.png").write_bytes(b"old")
    (run_dir / "report" / "tables" / "sweep.csv").write_bytes(b"old")
    index = build_report(run_dir)
    ids = {p.stem for p in index.parent.glob("*.png")}
    assert ids == {"masking-bpb", "masking-choice", "selectivity", "layers", "relevance"}
    html = index.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 5
    assert not (index.parent / "tables" / "sweep.csv").exists()
    delta = pd.read_csv(index.parent / "tables" / "delta-bpb.csv")
    missing = delta[(delta.method == "crane") & (delta.masked == "en") & (delta.evaluated == "zh")]
    assert missing.delta.isna().all() and len(missing) == 1


def test_missing_or_malformed_study_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"study\.json.*crane demo or crane run"):
        build_report(tmp_path)
    (tmp_path / "study.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"study\.json.*not readable JSON"):
        build_report(tmp_path)
    (tmp_path / "study.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"study\.json.*not a crane study"):
        build_report(tmp_path)
    assert not (tmp_path / "report").exists()


# ---- the typed results ------------------------------------------------------------------------
def _as_written(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` as the pipeline writes them: undefined values null, every section present."""
    results = json.loads(json.dumps(results))
    results.update(identify_corpus="udhr", relevance_source="crane")
    results["sweep"]["verified"] = False
    results["model"].update(revision=None, device="cpu")
    results["metrics"]["bpb"]["lape"]["vi"].update(dd=None, dd_ci=[None, None])
    results["relevance"]["lape"]["en"]["rs"] = None
    return results


def test_results_round_trip_and_read_as_objects() -> None:
    written = _as_written(synthetic_results())
    results = StudyResults.from_dict(written)
    assert results.to_dict() == written
    assert StudyResults.from_dict(results.to_dict()) == results
    assert results.languages == tuple(LANGS) and results.methods == tuple(METHODS)
    assert results.model.n_layers == N_LAYERS and results.model.details["revision"] is None
    entry = results.metrics["bpb"]["lape"]["vi"]
    assert entry.dd is None and entry.dd_ci == (None, None)
    assert entry.damage == written["metrics"]["bpb"]["lape"]["vi"]["damage"]
    assert results.metrics["bpb"]["crane"].get("xx", NO_METRIC) is NO_METRIC
    assert results.benchmarks["choice"].higher_is_better is True
    assert results.sweep is not None and results.sweep.budgets == tuple(BUDGETS)
    assert results.sets["random"].layer_counts["en"] == tuple(
        written["sets"]["random"]["layer_counts"]["en"]
    )


def _without(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda results: results.pop(key)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def change(results: dict[str, Any]) -> None:
        node = results
        for key in parents:
            node = node[key]
        node[last] = value

    return change


def _rename_method(results: dict[str, Any]) -> None:
    results["metrics"]["bpb"]["plnd"] = results["metrics"]["bpb"].pop("lape")


@pytest.mark.parametrize(
    ("damage", "needles"),
    [
        (_without("languages"), ["'languages' is missing"]),
        (_without("methods"), ["'methods' is missing"]),
        (_rename_method, ["metrics.bpb.plnd", "method 'plnd'", "crane, lape, kojima, random"]),
        (_set("benchmarks.bpb.delta.crane.en.zh", "0.1"), ["benchmarks.bpb.delta.crane.en.zh"]),
        (_set("metrics.choice.crane.zh.dd_ci", [1.0]), ["metrics.choice.crane.zh.dd_ci"]),
        (_set("sets.crane.sizes.vi", 18.5), ["sets.crane.sizes.vi", "whole number"]),
        (_set("overlap.between_languages.crane.en.xx", 0.1), ["language 'xx'"]),
        (_set("languages", ["en", "zh", "en"]), ["languages", "twice"]),
        (_set("format", "crane-study/9"), ["crane-study/9", "crane-study/1"]),
    ],
)
def test_malformed_results_name_the_problem_and_the_fix(
    damage: Callable[[dict[str, Any]], None], needles: list[str]
) -> None:
    results = synthetic_results()
    damage(results)
    with pytest.raises(ResultsError) as caught:
        StudyResults.from_dict(results, where="runs/x/study.json")
    message = str(caught.value)
    assert message.startswith("runs/x/study.json is not a crane study's results")
    assert message.endswith("run crane demo or crane run again to rewrite it.")
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_a_missing_key_is_a_clear_error_and_leaves_the_report_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = synthetic_results(methods=["crane", "random"], langs=["en", "zh"])
    run_dir = _write_study(tmp_path / "run", results)
    build_report(run_dir)
    before = {
        name: (data, (run_dir / "report" / name).stat().st_mtime_ns)
        for name, data in _files(run_dir / "report").items()
    }
    del results["methods"]
    _write_study(run_dir, results)
    with pytest.raises(ResultsError, match=r"study\.json .*'methods' is missing; run crane"):
        build_report(run_dir)
    code, out, err = run_cli(["report", str(run_dir)], capsys)
    assert code == 2 and "Traceback" not in out + err
    assert "'methods' is missing" in err and len(err.strip().splitlines()) == 1
    after = {
        name: (data, (run_dir / "report" / name).stat().st_mtime_ns)
        for name, data in _files(run_dir / "report").items()
    }
    assert after == before


def test_a_bug_in_report_code_raises_as_a_bug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the one check of the results, report code does not dress its errors up as bad
    input: a failing figure function propagates its own exception, and writes nothing."""

    def broken(results: StudyResults) -> None:
        raise RuntimeError("a bug in a figure")

    monkeypatch.setattr(crane.report.figures, "selectivity_summary", broken)
    run_dir = _write_study(tmp_path / "run", synthetic_results(methods=["crane", "random"]))
    with pytest.raises(RuntimeError, match="a bug in a figure"):
        build_report(run_dir)
    assert not (run_dir / "report").exists()


def test_crane_report_prints_sel_with_intervals_verdicts_and_the_small_sample_warning(
    built: tuple[dict[str, Any], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import run_cli

    results, index = built
    code, out, err = run_cli(["report", str(index.parent.parent)], capsys)
    assert code == 0, err
    assert "selectivity Sel [95% CI]" in out
    sel = results["metrics"]["bpb"]["crane"]["zh"]["sel"]
    assert f"{sel:+.3f} [" in out
    weak = any(
        v == "no selective set at k"
        for per in results["comparisons"]["bpb"]["verdict"].values()
        for v in per.values()
    )
    assert ("no selective set at k" in out) == weak
    assert "rest on fewer than 30 texts or items" in out  # bpb: 15 per language


def test_a_latin_script_control_language_is_compared_with_english(tmp_path: Path) -> None:
    from crane.results import ResultsError
    from crane.study import StudyConfig

    config = StudyConfig(languages=["en", "zh"], control_language="FR", methods=["crane"])
    config.validate()
    assert config.languages == ["en", "zh", "fr"] and config.control_language == "fr"
    results = synthetic_results()
    results["control_language"] = "vi"  # any study language can play the control here
    index = build_report(_write_study(tmp_path / "run", results))
    html = index.read_text(encoding="utf-8")
    assert "Latin-script control" in html and 'id="control"' in html
    assert StudyResults.from_dict(results).to_dict() == json.loads(json.dumps(results))
    results["control_language"] = "fr"
    with pytest.raises(ResultsError, match="control_language"):
        StudyResults.from_dict(results)
