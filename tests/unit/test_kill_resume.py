"""Kill and resume: SIGKILL a run at named points, restart it until it finishes, and check that
every restart finishes, that finished shards, rows and stages are reused untouched, and that the
outputs equal those of an uninterrupted run (byte for byte, timing fields aside). Also: the same
configuration and seed give the same files in two directories (CPU determinism).

The kill points are :func:`crane.faults.kill_point` calls (``CRANE_KILL_AT=PATTERN[:N]``;
the list is in docs/reliability.md). Each command runs in a child process: the study's first
kill in a fresh interpreter (``python -m crane run`` with ``CRANE_KILL_AT`` in its
environment, exactly as a user's run), the others in forked children of the test process with
the kill point armed the same way (no interpreter start-up and imports, which would dominate
the time). The uninterrupted reference runs run in the test process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork and SIGKILL"
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "choice"
KILLED = -signal.SIGKILL
CHILD_TIMEOUT = 300  # seconds

IDENTIFY_CHAIN = [
    # (kill point, what it interrupts); each restart runs the same command with the next point
    ("stats:stats/en/shard-00000.safetensors", "collection: after the first relevance shard"),
    ("select", "scoring/selection: relevance statistics done, before verification"),
    ("verify:2", "verification: after the second group test"),
    ("write:neurons-crane.json", "inside the atomic write of the first neuron set"),
    ("stats:activations/zh/shard-00000.texts.safetensors", "half an activation shard"),
    ("select:2", "selection of the last activation baseline (crane and gradxact are reused)"),
]
SEARCH_CHAIN = [
    ("search:en:2", "the set search: after the second trial of the first language"),
    ("search:zh", "the set search: after the first trial of the second language"),
    ("write:neurons-gradxact.json", "inside the atomic write of the searched set"),
]
STUDY_CHAIN = [
    ("stats:stats/zh/*", "collection: every relevance shard of crane done"),
    ("verify:1", "verification of crane's candidates"),
    ("select:3", "selection of an activation baseline"),
    ("identified", "every set written, the stage not yet recorded"),
    ("eval-row:3", "between evaluation rows (bits per byte)"),
    ("eval-lang:3", "inside an evaluation row"),
    ("write:manifest.json", "inside the manifest write that records evaluate:bpb"),
    ("write:none.json", "inside the write of the first row of the next benchmark"),
    ("study-json", "every benchmark done, before study.json"),
    ("write:study.json", "inside the write of study.json"),
    ("report", "report figures written, tables and index.html not yet"),
]


# ---- running a command ------------------------------------------------------------------------
def _fresh_interpreter(
    argv: list[str], kill_at: str | None, log: Path, signal_name: str | None = None
) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("CRANE_KILL_AT", None)
    env.pop("CRANE_KILL_SIGNAL", None)
    if kill_at:
        env["CRANE_KILL_AT"] = kill_at
    if signal_name:
        env["CRANE_KILL_SIGNAL"] = signal_name
    with log.open("ab") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "crane", *argv],
            env=env,
            stdout=handle,
            stderr=handle,
            timeout=CHILD_TIMEOUT,
        )
    return done.returncode


def _forked(argv: list[str], kill_at: str | None, log: Path) -> int:
    """``crane ARGV`` in a forked child with ``kill_at`` armed; its exit code (-9: killed)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            import torch

            from crane import faults
            from crane.cli import main

            handle = log.open("a", encoding="utf-8")
            sys.stdout = sys.stderr = handle
            torch.set_num_threads(1)
            faults._target, faults._seen = faults._parse(kill_at), 0
            try:
                main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
            finally:
                os._exit(code)
    deadline = time.monotonic() + CHILD_TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:  # a hung child must not hang the test run
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(
                f"crane {' '.join(argv[:1])} did not finish in {CHILD_TIMEOUT} s; see {log}"
            )
        time.sleep(0.02)


# ---- what a run directory holds -----------------------------------------------------------------
def _files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file())


def _finished(out: Path) -> dict[str, tuple[int, str]]:
    """Files a restart must leave untouched: complete shards (main sidecar present and intact),
    saved evaluation rows, and the outputs of every stage the manifest records."""
    from crane.stats import read_sidecar

    names: set[Path] = set()
    for side in out.rglob("shard-*[0-9].safetensors.json"):
        shard = side.with_name(side.name[: -len(".json")])
        if read_sidecar(shard) is not None:
            stem = shard.name[: -len(".safetensors")]
            names |= set(shard.parent.glob(f"{stem}.*safetensors*")) - {
                p for p in shard.parent.glob(".*")
            }
    names |= {p for p in out.glob("eval/*/*.json")}
    manifest = out / "manifest.json"
    if manifest.is_file():
        for entry in json.loads(manifest.read_text())["stages"].values():
            names |= {out / name for name in entry["outputs"]}
    return {str(p.relative_to(out)): _stamp(p) for p in names}


def _stamp(path: Path) -> tuple[int, str]:
    return path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def _stages(out: Path) -> dict[str, Any]:
    manifest = out / "manifest.json"
    return json.loads(manifest.read_text())["stages"] if manifest.is_file() else {}


TIMING_KEYS = {"seconds", "stage_seconds", "method_seconds"}


def _comparable(out: Path, *also: Path) -> dict[str, Any]:
    """Every file of a run directory, with timing fields removed and the directory's own path
    (recorded in provenance, e.g. a ``match:`` budget's source) replaced by a placeholder, as
    are the ``also`` paths (where a copied run directory came from: its reused sets record it)."""

    def drop_timing(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: drop_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
        if isinstance(value, list):
            return [drop_timing(v) for v in value]
        return value

    files: dict[str, Any] = {}
    for path in _files(out):
        name = str(path.relative_to(out))
        data = path.read_bytes()
        if path.suffix in (".json", ".html", ".csv"):
            text = data.decode("utf-8")
            for directory in (out, *also):
                text = text.replace(str(directory), "<RUN>")
            if name == "manifest.json":  # hashes of files that hold the directory's path
                files[name] = {
                    stage: (entry["key"], sorted(entry["outputs"]))
                    for stage, entry in json.loads(text)["stages"].items()
                }
            elif path.suffix == ".json":
                files[name] = drop_timing(json.loads(text))
            elif path.suffix == ".html":  # the wall-time table of the report
                files[name] = re.sub(r"<(dd|td)>[0-9.]+ s</(dd|td)>", "<t>", text)
            else:
                files[name] = text
        else:
            files[name] = hashlib.sha256(data).hexdigest()
    return files


def _assert_same_outputs(got: Path, want: Path) -> None:
    a, b = _comparable(got, want), _comparable(want)
    assert sorted(a) == sorted(b), "different files: " + str(set(a) ^ set(b))
    for name in a:
        assert a[name] == b[name], f"{name} differs from the uninterrupted run's"


# ---- chains -------------------------------------------------------------------------------------
def _run_chain(
    argv: list[str], out: Path, chain: list[tuple[str, str]], log: Path, *, fresh_first: bool
) -> list[str]:
    """Kill ``crane ARGV`` at each point of ``chain`` in turn, then let it finish; check that
    each point was reached, that whatever was finished before a kill is never rewritten, and
    that a kill inside an atomic write leaves the target whole (old or absent)."""
    protected: dict[str, tuple[int, str]] = {}
    stages: dict[str, Any] = {}
    tried = []
    for i, (point, what) in enumerate(chain):
        run = _fresh_interpreter if i == 0 and fresh_first else _forked
        before = {p: _stamp(p) for p in _files(out)} if out.exists() else {}
        code = run(argv, point, log)
        assert code == KILLED, f"{point} ({what}) was not reached (exit {code}); see {log}"
        tried.append(point)
        if point.startswith("write:"):
            pattern = point[len("write:") :].split(":")[0]
            temps = list(out.rglob(f".{pattern}.*.tmp"))
            assert temps, f"no temporary file left by the kill inside the write of {pattern}"
            for tmp in temps:  # the target itself is untouched: absent, or the previous file
                real = tmp.parent / tmp.name[1:].rsplit(".", 4)[0]  # .NAME.host.pid.random.tmp
                assert not real.exists() or before.get(real) == _stamp(real), real
        _check_untouched(out, protected, stages)
        protected.update(_finished(out))
        stages.update(_stages(out))
    code = _forked(argv, None, log)
    assert code == 0, f"the final restart did not finish (exit {code}); see {log}"
    _check_untouched(out, protected, stages)
    assert not [p for p in out.rglob("*.tmp")], "temporary files were left behind"
    return tried


def _check_untouched(out: Path, protected: dict[str, tuple[int, str]], stages: dict) -> None:
    for name, stamp in protected.items():
        path = out / name
        assert path.is_file() and _stamp(path) == stamp, f"{name} was finished but rewritten"
    now = _stages(out)
    for stage, entry in stages.items():
        assert now.get(stage) == entry, f"manifest stage {stage} was redone"


# ---- fixtures -----------------------------------------------------------------------------------
def _identify_argv(model: Path, out: Path) -> list[str]:
    options = (
        "--langs en,zh --corpus udhr --method crane,gradxact,lape,kojima --budget match:crane "
        "--verify-tests 3 --max-texts 8 --verify-mode groups --score margin"  # v1 kill points
    )
    return ["identify", "--model", str(model), "--out", str(out), *options.split()]


def _study_config(model: Path, folder: Path) -> Path:
    config = {
        "model": str(model),
        "languages": ["en", "zh"],
        "methods": ["crane", "gradxact", "lape"],
        "budget": "match:crane",
        "reference_budget": "6",
        "identify_corpus": "udhr",
        "identify_max_texts": 8,
        "quantile": 0.5,
        "verify_methods": ["crane"],
        "verify_mode": "groups",  # the v1 kill points (verify:N)
        "score": "margin",
        "verify_tests": 3,
        "bpb_max_texts": 3,
        "choice_builtin_items": 4,
        "n_boot": 20,
        "sweep_budgets": [0.02],
        "sweep_methods": ["crane"],
    }
    lines = [f"{k} = {json.dumps(v)}" for k, v in config.items()]
    lines += [
        "[choice_files]",
        f"en = {json.dumps(str(FIXTURES / 'en_mmlu.csv'))}",
        f"zh = {json.dumps(str(FIXTURES / 'zh_cmmlu.csv'))}",
    ]
    path = folder / "study.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kill-resume")


def _in_process(argv: list[str]) -> None:
    """An uninterrupted run in the test process itself; it also imports everything a run
    needs (transformers' model classes, the LRP rules, SciPy, matplotlib, ...), so forked
    children start warm."""
    from crane.cli import main

    main(argv)


@pytest.fixture(scope="module")
def reference_identify(tiny_llama_dir: Path, work: Path) -> Path:
    out = work / "identify-reference"
    _in_process(_identify_argv(tiny_llama_dir, out))
    return out


@pytest.fixture(scope="module")
def study_config(tiny_llama_dir: Path, work: Path) -> Path:
    return _study_config(tiny_llama_dir, work)


@pytest.fixture(scope="module")
def reference_study(study_config: Path, work: Path) -> Path:
    out = work / "study-reference"
    _in_process(["run", str(study_config), "--out", str(out)])
    return out


# ---- tests --------------------------------------------------------------------------------------
def test_kill_points_cost_nothing_unarmed() -> None:
    from crane import faults

    assert faults._parse(None) is None and faults._parse("") is None
    assert faults._parse("verify:3") == ("verify", 3)
    assert faults._parse("write:a.json") == ("write:a.json", 1)
    if os.environ.get(faults.ENV) is None:
        assert faults._target is None
        faults.kill_point("verify")  # unarmed: returns


def test_identify_killed_and_resumed(
    tiny_llama_dir: Path, work: Path, reference_identify: Path
) -> None:
    out = work / "identify-killed"
    tried = _run_chain(
        _identify_argv(tiny_llama_dir, out),
        out,
        IDENTIFY_CHAIN,
        work / "identify.log",
        fresh_first=False,
    )
    assert len(tried) == len(IDENTIFY_CHAIN)
    _assert_same_outputs(out, reference_identify)


def _search_argv(model: Path, out: Path) -> list[str]:
    options = "--langs en,zh --corpus udhr --method gradxact --budget 6 --max-texts 8"
    return ["identify", "--model", str(model), "--out", str(out), *options.split(),
            "--search-passes", "3"]


def test_set_search_killed_and_resumed(tiny_llama_dir: Path, work: Path) -> None:
    """The set search (the default verification) checkpoints every trial: killed after a
    trial, or inside the set's write, a restart resumes and ends with the uninterrupted
    run's files (sets, reports, checkpoints) byte for byte, timing aside."""
    reference = work / "search-reference"
    _in_process(_search_argv(tiny_llama_dir, reference))
    out = work / "search-killed"
    tried = _run_chain(
        _search_argv(tiny_llama_dir, out), out, SEARCH_CHAIN, work / "search.log",
        fresh_first=False,
    )
    assert len(tried) == len(SEARCH_CHAIN)
    _assert_same_outputs(out, reference)


def test_study_killed_and_resumed(study_config: Path, work: Path, reference_study: Path) -> None:
    out = work / "study-killed"
    argv = ["run", str(study_config), "--out", str(out)]
    tried = _run_chain(argv, out, STUDY_CHAIN, work / "study.log", fresh_first=True)
    assert len(tried) == len(STUDY_CHAIN)
    _assert_same_outputs(out, reference_study)
    results = json.loads((out / "study.json").read_text())
    assert set(results["benchmarks"]) == {"bpb", "choice", "mc"}
    assert (out / "report" / "tables" / "metrics.csv").is_file()


def _edit_row(data: bytes) -> bytes:
    """A row whose numbers were changed after it was written (still valid JSON)."""
    row = json.loads(data)
    row["cells"]["en"]["num"][0] += 1.0
    return (json.dumps(row) + "\n").encode("utf-8")


def _edit_set(data: bytes) -> bytes:
    """A neuron set with one neuron fewer (still a valid set)."""
    neuron_set = json.loads(data)
    for layers in neuron_set["neurons"].values():
        for indices in layers.values():
            if indices:
                indices.pop()
                return json.dumps(neuron_set).encode("utf-8")
    raise AssertionError("an empty neuron set")


def test_damaged_outputs_are_redone_not_read(
    study_config: Path, work: Path, reference_study: Path
) -> None:
    """What a disk error, an editor or a non-atomic writer could leave: an edited neuron set
    (detected by the manifest's hash), a shard whose bytes no longer match its sidecar, an
    edited evaluation row (its checksum), a torn manifest: each is redone, never read."""
    import shutil

    out = work / "study-damaged"
    shutil.copytree(reference_study, out)
    argv = ["run", str(study_config), "--out", str(out)]
    damaged = {
        "neurons-lape.json": _edit_set,
        "stats/en/shard-00000.safetensors": lambda b: b[:-8] + bytes(8),
        "eval/bpb/lape_en.json": _edit_row,
    }
    for name, damage in damaged.items():
        path = out / name
        path.write_bytes(damage(path.read_bytes()))
    rows = {p: _stamp(p) for p in out.glob("eval/*/*.json")}
    assert _forked(argv, None, work / "damaged.log") == 0, (work / "damaged.log").read_text()
    _assert_same_outputs(out, reference_study)
    redone = {p for p, stamp in rows.items() if _stamp(p) != stamp}
    assert redone == {out / "eval/bpb/lape_en.json"}  # the other rows were reused

    from crane.manifest import Manifest

    manifest = out / "manifest.json"
    key = Manifest(out).stages["identify"]["key"]
    manifest.write_bytes(manifest.read_bytes()[:200])  # torn: no stage counts as done
    assert not Manifest(out).complete("identify", key)


def test_same_config_and_seed_same_files(
    study_config: Path, work: Path, reference_study: Path
) -> None:
    """Two uninterrupted runs into two directories: identical neuron sets, statistics,
    evaluation rows, study.json numbers, report tables and figures (CPU, one thread)."""
    out = work / "study-again"
    code = _forked(["run", str(study_config), "--out", str(out)], None, work / "again.log")
    assert code == 0, (work / "again.log").read_text()
    _assert_same_outputs(out, reference_study)


@pytest.mark.parametrize(
    ("command", "signal_name", "point", "code"),
    [
        ("identify", "INT", "stats:stats/zh/shard-00000.safetensors", 130),
        ("run", "TERM", "eval-lang:2", 143),
    ],
)
def test_interrupt_exits_nonzero_with_one_line_and_resumes(
    command: str,
    signal_name: str,
    point: str,
    code: int,
    tiny_llama_dir: Path,
    study_config: Path,
    work: Path,
    reference_identify: Path,
    reference_study: Path,
) -> None:
    """Ctrl-C (SIGINT) and SIGTERM stop a command with 130 / 143 and one line, so
    ``crane identify ... && crane evaluate ...`` stops too; no temporary file is left, and
    the same command resumes to the uninterrupted run's outputs."""
    out = work / f"interrupted-{command}-{signal_name}"
    argv = (
        _identify_argv(tiny_llama_dir, out)
        if command == "identify"
        else ["run", str(study_config), "--out", str(out)]
    )
    log = work / f"interrupted-{command}-{signal_name}.log"
    assert _fresh_interpreter(argv, point, log, signal_name) == code
    text = log.read_text(encoding="utf-8")
    assert text.rstrip().splitlines()[-1] == "interrupted; rerun the same command to resume"
    assert "Traceback" not in text
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert _fresh_interpreter(argv, None, log) == 0
    _assert_same_outputs(out, reference_identify if command == "identify" else reference_study)

