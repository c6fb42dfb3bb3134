"""Data parallelism (crane.distributed): ``torchrun -m crane identify`` (and ``crane run``) with
2 gloo processes writes the shards one process writes and finds the same neurons; a killed rank
stops the other without a hang, and a rerun reuses every complete shard."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from crane.cli import main
from crane.collect import RelevanceOptions, collect_relevance
from crane.data.corpus import Corpus
from crane.distributed import Distributed
from crane.errors import ConfigError
from crane.models.loading import load_model
from crane.neurons import NeuronSet
from crane.stats import Stats, merge_all

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)

TEXTS = {
    "en": [
        "All human beings are born free and equal in dignity and rights.",
        "Everyone has the right to life, liberty and security of person.",
        "The quick brown fox jumps over the lazy dog.",
        "They are endowed with reason and conscience.",
        "No one shall be held in slavery or servitude.",
        "Everyone is equal before the law.",
        "All are entitled to equal protection.",
        "The dog sleeps in the sun all day.",
        "Everyone has the right to rest and leisure.",
        "Freedom of thought is a right of every person.",
    ],
    "zh": [
        "人人生而自由，在尊严和权利上一律平等。",
        "人人有权享有生命、自由和人身安全。",
        "任何人不得使为奴隶或奴役。",
        "法律之前人人平等。",
        "人人有思想自由的权利。",
        "人人有享受休息和闲暇的权利。",
        "任何人不得加以酷刑。",
        "人人有权受到保护。",
        "自由和平等是人人的权利。",
        "人人生而具有尊严。",
    ],
    "vi": [
        "Tất cả mọi người sinh ra đều được tự do và bình đẳng.",
        "Mọi người đều có quyền sống, tự do và an toàn cá nhân.",
        "Không ai bị bắt làm nô lệ.",
        "Mọi người đều bình đẳng trước pháp luật.",
        "Mọi người đều có quyền tự do tư tưởng.",
        "Tất cả mọi người đều có quyền nghỉ ngơi.",
        "Không ai bị tra tấn.",
        "Mọi người có quyền được bảo vệ.",
        "Tự do và bình đẳng là quyền của mọi người.",
        "Mọi người sinh ra đều có phẩm giá.",
    ],
}
METHODS = ("crane", "lape")
"""crane with causal verification (relevance shards in stats/) and one activation method
(activation shards, both parts, in activations/)."""
STAT_DIRS = ("stats", "activations")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(
        OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false", CRANE_DIST_TIMEOUT="120",
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dp-corpus") / "corpus.jsonl"
    rows = [{"lang": lang, "text": t} for lang, texts in TEXTS.items() for t in texts]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def identify_args(model: Path, corpus: Path, out: Path) -> list[str]:
    # 10 texts per language: 4 held out for verification, 6 → 2 relevance shards, and 10 → 4
    # activation shards per language: 18 shards dealt over the ranks
    return [
        "identify", "--model", str(model), "--langs", "en,zh,vi", "--corpus", str(corpus),
        "--method", ",".join(METHODS), "--budget", "6", "--quantile", "0.5",
        "--shard-texts", "3", "--verify-tests", "2", "--out", str(out),
    ]


def run_here(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        main(argv)
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    capsys.readouterr()


def torchrun(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "crane", *argv],
        capture_output=True, text=True, env=_env(**env), timeout=300,
    )


def shard_files(run: Path) -> dict[str, Path]:
    """Complete shard files (tensor file + sidecar) by path relative to the run directory."""
    return {
        str(p.relative_to(run)): p
        for d in STAT_DIRS
        for p in sorted((run / d).rglob("shard-*.safetensors"))
        if p.with_name(p.name + ".json").is_file()
    }


def mtimes(files: dict[str, Path]) -> dict[str, int]:
    return {
        name: (p.stat().st_mtime_ns, p.with_name(p.name + ".json").stat().st_mtime_ns)
        for name, p in files.items()
    }


def neuron_sets(run: Path) -> dict[str, dict]:
    return {m: NeuronSet.load(run / f"neurons-{m}.json").neurons for m in METHODS}


def max_abs_diff(a: Path, b: Path) -> float:
    """Largest difference between two runs' shards (every tensor); counts must be equal."""
    worst = 0.0
    files_a, files_b = shard_files(a), shard_files(b)
    assert files_a.keys() == files_b.keys()
    for name in files_a:
        sa, sb = Stats.load(files_a[name]), Stats.load(files_b[name])
        assert sa.meta == sb.meta, name
        assert sa.languages.keys() == sb.languages.keys(), name
        for lang, la in sa.languages.items():
            lb = sb.languages[lang]
            assert la.counts == lb.counts, (name, lang)
            assert la.tensors.keys() == lb.tensors.keys(), (name, lang)
            for key, value in la.tensors.items():
                torch.testing.assert_close(lb.tensors[key], value, rtol=1e-6, atol=1e-9)
                worst = max(worst, float((lb.tensors[key] - value).abs().max()))
    return worst


def merged(run: Path, directory: str) -> Stats:
    return merge_all(
        Stats.load(p) for name, p in shard_files(run).items()
        if name.startswith(directory + "/") and ".texts." not in name
    )


@pytest.fixture(scope="module")
def reference(
    tiny_llama_dir: Path, corpus_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A one-process run (in this process, one thread) of the same command."""
    out = tmp_path_factory.mktemp("dp-ref") / "run"
    try:
        main(identify_args(tiny_llama_dir, corpus_file, out))
    except SystemExit as exc:
        assert not exc.code
    return out


def test_two_processes_write_the_shards_and_sets_of_one(
    tiny_llama_dir: Path, corpus_file: Path, reference: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    started = time.perf_counter()
    run = torchrun(identify_args(tiny_llama_dir, corpus_file, out))
    seconds = time.perf_counter() - started
    assert run.returncode == 0, run.stdout + run.stderr
    # the same shard files (2 relevance shards per language; the activation baselines are fitted
    # on the same texts: 2 shards per language, each with its per-text file), the same counts
    # and sums, the same neuron sets
    files = shard_files(out)
    assert sorted(files) == sorted(shard_files(reference))
    assert sum(n.startswith("stats/") for n in files) == 6
    assert sum(n.startswith("activations/") for n in files) == 12
    assert max_abs_diff(reference, out) <= 1e-9
    for directory in STAT_DIRS:
        one, two = merged(reference, directory), merged(out, directory)
        for lang in TEXTS:
            assert one[lang].counts == two[lang].counts
            for key, value in one[lang].tensors.items():
                torch.testing.assert_close(two[lang].tensors[key], value, rtol=1e-6, atol=1e-9)
    assert neuron_sets(out) == neuron_sets(reference)
    def verification(run_dir: Path) -> dict:
        """The verification reports without their wall-clock seconds."""
        report = json.loads((run_dir / "identify-crane.json").read_text())["verification"]
        return {lang: {k: v for k, v in r.items() if k != "seconds"} for lang, r in report.items()}

    assert verification(out) == verification(reference)
    # rank 0 alone reports progress and writes the outputs
    log = run.stdout + run.stderr
    assert log.count("loading the weights") == 1, log
    assert log.count("wrote ") == len(METHODS), log
    assert "all 2 processes have saved their shards" in log
    print(f"2-process run: {seconds:.1f} s")

    # a one-process rerun in the two-process run directory reuses every shard
    before = mtimes(files)
    run_here(identify_args(tiny_llama_dir, corpus_file, out), capsys)
    assert mtimes(shard_files(out)) == before
    assert neuron_sets(out) == neuron_sets(reference)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_killed_rank_stops_the_other_and_a_rerun_resumes(
    tiny_llama_dir: Path, corpus_file: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "crane", *identify_args(tiny_llama_dir, corpus_file, out)]
    port = str(_free_port())
    # launched by hand, as on two nodes: no torchrun agent stops rank 0 when rank 1 dies
    procs = [
        subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=_env(
                RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
                # rank 1 dies (SIGKILL) while saving its second shard
                **({"CRANE_KILL_AT": "write:shard-*.safetensors.json:2"} if rank else {}),
            ),
        )
        for rank in (0, 1)
    ]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert procs[1].returncode == -9, logs[1]
    assert procs[0].returncode == 2, logs[0]
    assert "Rank 0 lost contact with the other processes" in logs[0]
    assert "Traceback" not in logs[0]
    assert not list(out.glob("neurons-*.json"))
    saved = shard_files(out)
    assert 0 < len(saved) < len(shard_files(reference))
    before = mtimes(saved)

    run = torchrun(identify_args(tiny_llama_dir, corpus_file, out))
    assert run.returncode == 0, run.stdout + run.stderr
    after = mtimes(shard_files(out))
    assert {name: after[name] for name in before} == before  # complete shards were reused
    assert sorted(after) == sorted(shard_files(reference))
    assert max_abs_diff(reference, out) <= 1e-9
    assert neuron_sets(out) == neuron_sets(reference)


EXCHANGE = textwrap.dedent(
    """
    import sys
    from crane.distributed import Distributed, DistributedError
    from crane.errors import ConfigError
    dist = Distributed.from_env()
    with dist.session("cpu"):
        try:
            with dist.all_or_none():
                if dist.rank == 1:
                    raise ConfigError("Language 'xq' has [no] texts.")
        except DistributedError as exc:
            print("OTHER:", exc)
        except ConfigError as exc:
            print("OWN:", exc)
        else:
            print("NONE")
    """
)


def test_an_error_on_one_rank_stops_every_rank(tmp_path: Path) -> None:
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", EXCHANGE], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
            env=_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                     MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
        )
        for rank in (0, 1)
    ]
    out = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], out
    assert "OTHER: Rank 1 of 2 failed (Language 'xq' has (no) texts); rank 0 stops" in out[0], out
    assert "OWN: Language 'xq' has [no] texts." in out[1], out


def test_launch_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    alone = Distributed.from_env()
    assert (alone.enabled, alone.is_main, alone.rank_and_world) == (False, True, None)
    assert alone.device_for("cuda:3") == "cuda:3"  # untouched when alone
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    dist = Distributed.from_env()
    assert (dist.enabled, dist.is_main, dist.rank_and_world) == (True, False, (3, 4))
    assert dist.local_rank == 1
    assert dist.device_for("cpu") == "cpu"
    assert Distributed.backend_for("cpu") == "gloo"
    assert Distributed.backend_for("cuda:1") == "nccl"
    for device in ("shard", "cuda:0"):
        with pytest.raises(ConfigError, match="--device cuda"):
            dist.device_for(device)
    if not torch.cuda.is_available():
        assert dist.device_for("auto") == "cpu"  # the best device here, as alone
    if torch.cuda.device_count() <= 1:
        with pytest.raises(ConfigError, match="LOCAL_RANK=1"):
            dist.device_for("cuda")
    monkeypatch.setenv("CRANE_DIST_BACKEND", "nccl")
    with pytest.raises(ConfigError, match="nccl"), dist.session("cpu"):
        pass
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="torchrun"):
        Distributed.from_env()


def test_parts_cover_every_shard_once(tiny_llama_dir: Path, tmp_path: Path) -> None:
    loaded = load_model(tiny_llama_dir)
    corpus = Corpus({lang: texts[:5] for lang, texts in TEXTS.items()})
    options = RelevanceOptions(method="gradxact", shard_texts=2, batch_size=2)
    done: list[list[tuple[str, int]]] = [[], [], []]
    parts = [
        collect_relevance(
            loaded.model, loaded.tokenizer, corpus, options=options, out_dir=tmp_path,
            part=(rank, 3), on_shard=lambda lang, i, rank=rank: done[rank].append((lang, i)),
        )
        for rank in range(3)
    ]
    # 3 shards per language, numbered 0..8 over en, zh, vi and dealt round-robin
    assert done == [
        [("en", 0), ("zh", 0), ("vi", 0)],
        [("en", 1), ("zh", 1), ("vi", 1)],
        [("en", 2), ("zh", 2), ("vi", 2)],
    ]
    assert all(p.meta["part"] == [rank, 3] for rank, p in enumerate(parts))
    recomputed: list[tuple[str, int]] = []
    whole = collect_relevance(
        loaded.model, loaded.tokenizer, corpus, options=options, out_dir=tmp_path,
        on_shard=lambda lang, i: recomputed.append((lang, i)),
    )
    assert recomputed == []
    total = merge_all(parts)
    for lang in corpus.languages:
        assert total[lang].counts == whole[lang].counts
        for key, value in whole[lang].tensors.items():
            torch.testing.assert_close(total[lang].tensors[key], value, rtol=1e-12, atol=1e-15)
    with pytest.raises(ConfigError, match="Rank 2 of 2 does not exist"):
        collect_relevance(loaded.model, loaded.tokenizer, corpus, options=options, part=(2, 2))


STUDY_TOML = """
model = "{model}"
languages = ["en", "zh", "vi"]
methods = ["gradxact", "lape"]
budget = "match:gradxact"
reference_budget = "6"

[identify]
identify_corpus = "udhr"
identify_max_texts = 8
quantile = 0.5
verify_tests = 2
shard_texts = 3

[evaluate]
bpb_max_texts = 1
n_boot = 10
"""
"""The settings of test_study.py's tiny_config, without choice files, generation or sweep."""


def test_crane_run_under_two_processes_finds_the_sets_of_one(
    tiny_llama_dir: Path, tmp_path: Path, capsys
) -> None:
    config = tmp_path / "study.toml"
    config.write_text(STUDY_TOML.format(model=tiny_llama_dir), encoding="utf-8")
    one, two = tmp_path / "one", tmp_path / "two"
    run_here(["run", str(config), "--out", str(one)], capsys)
    started = time.perf_counter()
    run = torchrun(["run", str(config), "--out", str(two)])
    seconds = time.perf_counter() - started
    assert run.returncode == 0, run.stdout + run.stderr
    methods = ("gradxact", "lape", "random")
    for method in methods:
        assert NeuronSet.load(two / f"neurons-{method}.json").neurons == NeuronSet.load(
            one / f"neurons-{method}.json"
        ).neurons, method
    # the statistics were split between the ranks, and are the shards of one process
    log = run.stdout + run.stderr
    assert "all 2 processes have saved their shards" in log, log
    shards = sorted(str(p.relative_to(two)) for p in two.glob("*/*/shard-*.safetensors.json"))
    assert shards == sorted(
        str(p.relative_to(one)) for p in one.glob("*/*/shard-*.safetensors.json")
    )
    assert len(shards) >= 6
    assert json.loads((two / "study.json").read_text())["metrics"] == json.loads(
        (one / "study.json").read_text()
    )["metrics"]
    assert log.count("study: ") == 1, log  # rank 0 alone prints
    print(f"2-process crane run: {seconds:.1f} s")
