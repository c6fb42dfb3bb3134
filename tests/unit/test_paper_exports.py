"""Exports for papers: every report figure as PNG, PDF and SVG (byte-identical rebuilds), figures
without titles, LaTeX tables with intervals (``crane report --latex``), and the citation files
(CITATION.cff, docs/citing.md)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml
from conftest import run_cli
from test_report import _files, _write_study, synthetic_results

import crane.report.build
from crane.report import build_report
from crane.report.figures import make_figures
from crane.report.latex import escape_latex, latex_number, latex_tables, with_interval
from crane.results import StudyResults

ROOT = Path(__file__).resolve().parents[2]
CORE_FIGURES = {"masking-bpb", "masking-choice", "selectivity", "layers", "relevance"}
ODD = "rand_&%#"  # a method name with LaTeX's special characters


def _figure_ids(results: dict[str, Any]) -> set[str]:
    """The ids of the figures the results support (the report's figure list may grow)."""
    ids = {fig_id for fig_id, _, _ in make_figures(StudyResults.from_dict(results))}
    assert CORE_FIGURES <= ids
    return ids


def _small_results() -> dict[str, Any]:
    """Two methods, two languages, every section; the second method's name needs escaping."""
    results = synthetic_results(methods=["crane", "random"], langs=["en", "zh"])
    return json.loads(json.dumps(results).replace('"random"', json.dumps(ODD)))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """A report with the defaults: figure titles, no LaTeX tables."""
    results = _small_results()
    run_dir = _write_study(tmp_path_factory.mktemp("paper"), results)
    return results, build_report(run_dir)


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, list[str]]]]:
    """A report for a paper (``titles=False, latex=True``) over an earlier build's leftovers:
    its folder, and the (suptitle, panel titles) of every figure as build_report rendered it."""
    run_dir = _write_study(tmp_path_factory.mktemp("paper"), _small_results())
    tables = run_dir / "report" / "tables"
    tables.mkdir(parents=True)
    (tables / "selectivity-old.tex").write_text("old")
    drawn: list[tuple[str, list[str]]] = []
    render = crane.report.build.figure_files

    def spy(fig: Any) -> dict[str, bytes]:
        drawn.append((fig.get_suptitle(), [ax.get_title() for ax in fig.axes if ax.get_title()]))
        return render(fig)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(crane.report.build, "figure_files", spy)
        index = build_report(run_dir, titles=False, latex=True)
    return index.parent, drawn


def test_every_figure_in_three_formats_and_rebuilds_byte_identical(
    built: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    results, index = built
    report = index.parent
    for fmt, magic in (
        ("png", (b"\x89PNG\r\n\x1a\n",)),
        ("pdf", (b"%PDF-",)),
        ("svg", (b"<?xml", b"<svg")),
    ):
        files = sorted(report.glob(f"*.{fmt}"))
        assert {p.stem for p in files} == _figure_ids(results), fmt
        for path in files:
            data = path.read_bytes()
            assert data.startswith(magic), path.name
            assert b"CreationDate" not in data and b"<dc:date>" not in data, path.name
    assert b"%%EOF" in (report / "selectivity.pdf").read_bytes()[-32:]
    for path in report.glob("*.svg"):  # well-formed XML, an SVG document
        assert ElementTree.fromstring(path.read_bytes()).tag == "{http://www.w3.org/2000/svg}svg"
    # a second build, into another directory holding an earlier build's files (a figure these
    # results do not give, LaTeX tables this build does not write), from the in-memory results:
    # the leftovers are gone and every file has the same bytes
    stale = tmp_path / "report"
    (stale / "tables").mkdir(parents=True)
    for name in ("masking-old.png", "masking-old.pdf", "masking-old.svg", "tables/delta-bpb.tex"):
        (stale / name).write_bytes(b"old")
    again = build_report(tmp_path, results=copy.deepcopy(results))
    assert _files(again.parent) == _files(report)


def _svg_text(report: Path) -> str:
    """Every SVG of a report (the SVG backend writes each text as a comment over its glyphs)."""
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(report.glob("*.svg")))


def test_no_titles_removes_figure_titles_and_keeps_panel_titles(
    built: tuple[dict[str, Any], Path], paper: tuple[Path, list[tuple[str, list[str]]]]
) -> None:
    (results, index), (plain, drawn) = built, paper
    suptitles = [fig.get_suptitle() for _, _, fig in make_figures(StudyResults.from_dict(results))]
    figures = _figure_ids(results)
    assert len(suptitles) == len(figures) and all(suptitles)
    assert len(drawn) == len(figures)
    assert all(title == "" for title, _ in drawn)  # what build_report rendered
    assert sum(len(panels) for _, panels in drawn) > len(figures)  # panel titles stay
    with_titles, without = _svg_text(index.parent), _svg_text(plain)
    for title in suptitles:
        first_line = title.splitlines()[0]
        assert f"<!-- {first_line}" in with_titles, first_line
        assert first_line not in without, first_line
    assert "<!-- English (en) -->" in without and "<!-- crane -->" in without
    assert {p.stem for p in plain.glob("*.pdf")} == {p.stem for p in plain.glob("*.svg")} == figures
    for name in figures:  # the title's room goes to the panels: other pictures
        assert (plain / f"{name}.png").read_bytes() != (index.parent / f"{name}.png").read_bytes()


def _rows(tex: str) -> list[list[str]]:
    """The body rows of a tabular (between \\midrule and \\bottomrule), split into cells."""
    body = tex.split("\\bottomrule")[0].split("\\midrule", 1)[1]
    return [
        [cell.strip() for cell in line.removesuffix("\\\\").split(" & ")]
        for line in body.splitlines()
        if line.strip() and not line.startswith("\\midrule")
    ]


def test_latex_tables_hold_the_numbers_with_intervals(
    paper: tuple[Path, list[tuple[str, list[str]]]],
) -> None:
    results = _small_results()
    tables = paper[0] / "tables"
    tex = {p.name: p.read_text(encoding="utf-8") for p in sorted(tables.glob("*.tex"))}
    assert set(tex) == {  # and the earlier build's selectivity-old.tex is gone
        "selectivity-bpb.tex",
        "selectivity-choice.tex",
        "delta-bpb.tex",
        "delta-choice.tex",
        "unmasked.tex",
    }
    assert (tables / "metrics.csv").is_file()
    for name, text in tex.items():
        assert "\\toprule" in text and "\\midrule" in text and "\\bottomrule" in text, name
        assert text.count("\\begin{tabular}") == 1 and text.endswith("\\end{tabular}\n"), name
        body = "\n".join(line for line in text.splitlines() if not line.startswith("%"))
        assert ODD not in body, name  # the raw name never reaches LaTeX
    selectivity = tex["selectivity-bpb.tex"]
    assert "Sel [95\\% CI]" in selectivity
    rows = _rows(selectivity)
    odd = "rand\\_\\&\\%\\#"
    assert [row[:2] for row in rows] == [
        ["crane", "English (en)"],
        ["", "Chinese (zh)"],
        [odd, "English (en)"],
        ["", "Chinese (zh)"],
    ]
    number = r"(?:\$-\$)?\d+\.\d+"
    for row, (method, lang) in zip(
        rows, [("crane", "en"), ("crane", "zh"), (ODD, "en"), (ODD, "zh")], strict=True
    ):
        entry = results["metrics"]["bpb"][method][lang]
        decimals = len(row[2].split(".")[1])
        assert row[2] == latex_number(entry["damage"], decimals)
        assert row[3] == latex_number(entry["off_target"], decimals)
        assert re.fullmatch(rf"{number} \[{number}, {number}\]", row[4]), row[4]
        assert row[4] == with_interval(entry["sel"], entry["sel_ci"], decimals)
    delta = _rows(tex["delta-choice.tex"])
    assert len(delta) == 4 and all(re.fullmatch(rf"{number} \[.*\]", c) for c in delta[0][2:])
    unmasked = _rows(tex["unmasked.tex"])
    assert [row[0] for row in unmasked] == ["English (en)", "Chinese (zh)"]
    assert "$\\downarrow$" in tex["unmasked.tex"] and "$\\uparrow$" in tex["unmasked.tex"]


def test_report_command_passes_no_titles_and_latex(
    built: tuple[dict[str, Any], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, index = built
    calls: list[dict[str, Any]] = []

    def fake(run_dir: Path, **options: Any) -> Path:
        calls.append(options)
        return index

    monkeypatch.setattr(crane.report, "build_report", fake)
    run_dir = str(index.parent.parent)
    code, out, err = run_cli(["report", run_dir, "--no-titles", "--latex"], capsys)
    assert code == 0, err
    assert "LaTeX tables" in out and "report:" in out
    code, out, err = run_cli(["report", run_dir], capsys)
    assert code == 0, err
    assert "LaTeX tables" not in out
    assert calls == [{"titles": False, "latex": True}, {"titles": True, "latex": False}]


def test_latex_formatting() -> None:
    assert escape_latex("a_b & c% $d #e {f} ~g ^h \\i <j> |k") == (
        "a\\_b \\& c\\% \\$d \\#e \\{f\\} \\textasciitilde{}g \\textasciicircum{}h "
        "\\textbackslash{}i \\textless{}j\\textgreater{} \\textbar{}k"
    )
    assert escape_latex("two\nlines") == "two lines"
    assert latex_number(-0.25, 2) == "$-$0.25"
    assert latex_number(-0.0004, 2) == "0.00"  # no "negative zero"
    assert latex_number(None, 2) == latex_number(float("nan"), 2) == "--"
    assert with_interval(1.234, (0.8, 1.66), 2) == "1.23 [0.80, 1.66]"
    assert with_interval(1.234, None, 2) == "1.23"
    assert with_interval(1.234, (None, None), 2) == "1.23"
    typed = StudyResults.from_dict(_small_results())
    assert latex_tables(typed) == latex_tables(typed)  # deterministic


# ---- citation files ---------------------------------------------------------------------------
def _citation() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))


def test_citation_cff_has_the_required_fields() -> None:
    cff = _citation()
    for key in ("cff-version", "message", "title", "authors"):  # required by CFF 1.2.0
        assert cff.get(key), f"CITATION.cff lacks {key}"
    assert cff["cff-version"] == "1.2.0"
    assert cff["title"] == "crane-neurons" and cff["type"] == "software"
    assert cff["authors"] == [{"name": "crane-neurons contributors"}]
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # no tomllib on 3.10
    project = dict(re.findall(r'^(license|version) = "([^"]+)"$', pyproject, re.M))
    assert cff["license"] == project["license"]
    assert cff["version"] == project["version"]
    allowed = {
        "type",
        "title",
        "authors",
        "year",
        "journal",
        "doi",
        "url",
        "identifiers",
        "collection-title",
        "conference",
        "publisher",
        "volume",
        "start",
        "end",
        "notes",
    }
    references = cff["references"]
    assert len(references) == 5
    for ref in references:
        assert {"type", "title", "authors", "year"} <= set(ref), ref.get("title")
        assert set(ref) <= allowed, set(ref) - allowed
        assert ref["type"] in {"article", "conference-paper"}
        assert isinstance(ref["year"], int) and 2020 <= ref["year"] <= 2030
        assert ref["authors"] and all(
            set(a) == {"family-names", "given-names"} and all(a.values()) for a in ref["authors"]
        )
    # the method is the paper docs/method.md names
    method = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    expansion = re.search(r"CRANE \(([^,]+),", method)
    assert expansion is not None
    crane = [r for r in references if r["title"].startswith("CRANE")]
    assert len(crane) == 1 and expansion.group(1) in crane[0]["title"]
    assert [a["family-names"] for a in crane[0]["authors"]] == ["Le", "Li"]
    assert crane[0]["year"] == 2026


def test_citing_md_gives_the_same_facts_as_citation_cff() -> None:
    """Every reference of CITATION.cff has a BibTeX entry in docs/citing.md with the same title,
    year and authors' family names; the page names the reconstruction and CITATION.cff."""
    text = (ROOT / "docs" / "citing.md").read_text(encoding="utf-8")
    assert "our reconstruction of CRANE from the paper's abstract" in text
    assert "(../CITATION.cff)" in text
    entries = re.findall(r"^@\w+\{[^,]+,\n(.*?)^\}", text, re.S | re.M)

    def field(entry: str, name: str) -> str:
        match = re.search(rf"^\s*{name}\s*=\s*\{{(.*?)\}},?\s*$", entry, re.S | re.M)
        assert match, (name, entry[:60])
        return " ".join(match.group(1).replace("{", "").replace("}", "").split())

    by_title = {field(e, "title"): e for e in entries if "year" in e}
    for ref in _citation()["references"]:
        title = " ".join(ref["title"].split())
        assert title in by_title, title
        entry = by_title[title]
        assert field(entry, "year") == str(ref["year"])
        authors = [a.split(",")[0].strip() for a in field(entry, "author").split(" and ")]
        assert authors == [a["family-names"] for a in ref["authors"]], title
