"""The lm-eval bridge: lm-eval's own HFLM code with crane masks around every forward/generation.

Three offline tasks over local JSONL files (multiple choice, rolling log-likelihood, greedy
generation) run on the tiny Llama; no hub, no built-in task index.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

lm_eval = pytest.importorskip("lm_eval")

from crane.errors import ConfigError, NeuronSetError  # noqa: E402
from crane.intervene import mask_neurons  # noqa: E402
from crane.lm_eval_bridge import MODEL_NAME, evaluate, parse_languages, register  # noqa: E402
from crane.neurons import NeuronSet  # noqa: E402

MC, PPL, GEN = "crane_tiny_mc", "crane_tiny_ppl", "crane_tiny_gen"
TASKS = [MC, PPL, GEN]
BATCH = 8
LAYERS, D_FF = 2, 96  # the tiny Llama of conftest.py

MC_ITEMS = [
    ("The quick brown fox jumps over the", ["lazy dog.", "free and equal.", "rights.", "person."]),
    ("All human beings are born", ["free and equal", "lazy dog", "the fox", "brown"]),
    (
        "Everyone has the right to life, liberty and",
        ["security of person.", "the dog.", "equal.", "fox."],
    ),
    ("in dignity and", ["rights.", "dog.", "fox.", "life."]),
    ("The lazy", ["dog.", "rights.", "person.", "free."]),
    ("born free and", ["equal", "lazy", "quick", "brown"]),
    ("security of", ["person.", "dog.", "fox.", "rights."]),
    ("The quick brown", ["fox", "dog", "rights", "person"]),
]
PPL_TEXTS = [
    "All human beings are born free and equal in dignity and rights.",
    "The quick brown fox jumps over the lazy dog.",
    "Tất cả mọi người sinh ra đều được tự do và bình đẳng.",
]
GEN_ITEMS = [("The quick brown fox", "jumps"), ("All human beings are", "born")]


def _write_task(directory: Path, name: str, rows: list[dict[str, Any]], body: str) -> None:
    data = directory / f"{name}.jsonl"
    data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    header = (
        f"task: {name}\n"
        "dataset_path: json\n"
        "dataset_kwargs:\n"
        "  data_files:\n"
        f"    test: {json.dumps(str(data))}\n"
        f"  cache_dir: {json.dumps(str(directory / 'datasets-cache'))}\n"
        "test_split: test\n"
    )
    (directory / f"{name}.yaml").write_text(header + body, "utf-8")


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("lm-eval-tasks")
    mc_rows = [{"question": q, "choices": c, "answer": 0} for q, c in MC_ITEMS]
    _write_task(
        directory,
        MC,
        mc_rows,
        "output_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{answer}}"\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n",
    )
    _write_task(
        directory,
        PPL,
        [{"text": t} for t in PPL_TEXTS],
        "output_type: loglikelihood_rolling\n"
        'doc_to_text: ""\n'
        'doc_to_target: "{{text}}"\n'
        "metric_list:\n  - metric: word_perplexity\n  - metric: bits_per_byte\n",
    )
    _write_task(
        directory,
        GEN,
        [{"prompt": p, "answer": a} for p, a in GEN_ITEMS],
        "output_type: generate_until\n"
        'doc_to_text: "{{prompt}}"\n'
        'doc_to_target: "{{answer}}"\n'
        "generation_kwargs:\n  until: ['\\n']\n  max_gen_toks: 6\n  do_sample: false\n"
        "metric_list:\n  - metric: exact_match\n",
    )
    return directory


def _task_manager(task_dir: Path) -> Any:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(task_dir), include_defaults=False)


def _hf_args(model_dir: Path) -> dict[str, Any]:
    return {"pretrained": str(model_dir), "device": "cpu", "dtype": "float32", "batch_size": BATCH}


def _bridge(model: Any, task_dir: Path, neurons: Any = None, **kw: Any) -> dict[str, Any]:
    return evaluate(
        model,
        neurons,
        kw.pop("languages", "all"),
        TASKS,
        task_dir=task_dir,
        include_default_tasks=False,
        device="cpu",
        dtype="float32",
        batch_size=BATCH,
        log_samples=True,
        **kw,
    )


def _hf(lm: Any, task_dir: Path) -> dict[str, Any]:
    """lm-eval's own run of ``lm`` (an HFLM instance) on the three tasks."""
    return lm_eval.simple_evaluate(
        model=lm, tasks=TASKS, task_manager=_task_manager(task_dir), log_samples=True
    )


def _responses(results: dict[str, Any], task: str) -> list[Any]:
    """Per document, lm-eval's raw responses: (loglik, greedy) pairs or generated strings."""
    samples = sorted(results["samples"][task], key=lambda s: s["doc_id"])
    return [s["resps"] for s in samples]


def _logliks(results: dict[str, Any], task: str) -> list[float]:
    """One log-likelihood per request (lm-eval wraps it in (loglik, is_greedy) or a list)."""
    values = []
    for doc in _responses(results, task):
        for response in doc:
            while isinstance(response, (list, tuple)):
                response = response[0]
            values.append(float(response))
    return values


def _metric(results: dict[str, Any], task: str, metric: str) -> float:
    return float(results["results"][task][f"{metric},none"])


@pytest.fixture(scope="module")
def big_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Half of every layer's neurons for 'en', a few for 'zh', none for 'vi'; saved as JSON."""
    neurons = {
        "en": {layer: list(range(0, D_FF, 2)) for layer in range(LAYERS)},
        "zh": {LAYERS - 1: [1, 3, 5]},
        "vi": {},
    }
    path = tmp_path_factory.mktemp("sets") / "big.json"
    NeuronSet(neurons, "down_in", LAYERS, D_FF, {"method": "test"}).save(path)
    return path


@pytest.fixture(scope="module")
def hf_baseline(tiny_llama_dir: Path, task_dir: Path) -> dict[str, Any]:
    from lm_eval.models.huggingface import HFLM

    return _hf(HFLM(**_hf_args(tiny_llama_dir)), task_dir)


@pytest.fixture(scope="module")
def masked_en(tiny_llama_dir: Path, task_dir: Path, big_set: Path) -> dict[str, Any]:
    return _bridge(tiny_llama_dir, task_dir, big_set, languages="en")


def test_register_is_idempotent_and_names_the_model() -> None:
    from lm_eval.api.registry import get_model

    cls = register()
    assert register() is cls
    assert get_model(MODEL_NAME) is cls
    assert cls.__mro__[1].__name__ == "HFLM"


def test_importing_crane_does_not_import_lm_eval() -> None:
    code = "import sys, crane, crane.lm_eval_bridge; assert 'lm_eval' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_without_neurons_results_equal_lm_eval_hf(
    tiny_llama_dir: Path, task_dir: Path, hf_baseline: dict[str, Any]
) -> None:
    ours = _bridge(tiny_llama_dir, task_dir)
    for task in TASKS:
        assert _responses(ours, task) == _responses(hf_baseline, task)
    assert _metric(ours, MC, "acc") == _metric(hf_baseline, MC, "acc")
    assert _metric(ours, PPL, "bits_per_byte") == _metric(hf_baseline, PPL, "bits_per_byte")
    assert ours["config"]["model"] == MODEL_NAME
    assert "crane_mask" not in ours["config"]


def test_empty_selection_results_equal_lm_eval_hf(
    tiny_llama_dir: Path, task_dir: Path, big_set: Path, hf_baseline: dict[str, Any]
) -> None:
    ours = _bridge(tiny_llama_dir, task_dir, big_set, languages="vi")  # 'vi' has no neurons
    for task in TASKS:
        assert _responses(ours, task) == _responses(hf_baseline, task)
    assert ours["config"]["crane_mask"]["n_masked"] == 0


def test_masking_changes_every_loglikelihood(
    masked_en: dict[str, Any], hf_baseline: dict[str, Any]
) -> None:
    masked, plain = _logliks(masked_en, MC), _logliks(hf_baseline, MC)
    assert len(masked) == len(plain) == 4 * len(MC_ITEMS)
    assert all(a != b for a, b in zip(masked, plain, strict=True))
    assert _logliks(masked_en, PPL) != _logliks(hf_baseline, PPL)
    assert _metric(masked_en, PPL, "bits_per_byte") != _metric(hf_baseline, PPL, "bits_per_byte")
    record = masked_en["config"]["crane_mask"]
    assert record["languages"] == ["en"] and record["mode"] == "zero"
    assert record["n_masked"] == LAYERS * D_FF // 2
    assert record["neuron_set_meta"] == {"method": "test"}


def test_masked_run_equals_lm_eval_hf_under_mask_neurons(
    tiny_llama_dir: Path, task_dir: Path, big_set: Path, masked_en: dict[str, Any]
) -> None:
    """The bridge's masks are exactly crane's mask_neurons held around a plain lm-eval run."""
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(**_hf_args(tiny_llama_dir))
    with mask_neurons(lm.model, NeuronSet.load(big_set), languages=["en"]):
        reference = _hf(lm, task_dir)
    for task in TASKS:
        assert _responses(masked_en, task) == _responses(reference, task)


def test_scale_by_one_changes_nothing_and_scale_by_zero_equals_zero(
    tiny_llama_dir: Path,
    task_dir: Path,
    big_set: Path,
    hf_baseline: dict[str, Any],
    masked_en: dict[str, Any],
) -> None:
    one = _bridge(tiny_llama_dir, task_dir, big_set, languages="en", mode="scale", alpha=1.0)
    assert _logliks(one, MC) == _logliks(hf_baseline, MC)
    zero = _bridge(tiny_llama_dir, task_dir, big_set, languages="en", mode="scale", alpha=0.0)
    assert _logliks(zero, MC) == _logliks(masked_en, MC)


def test_masks_are_active_only_inside_lm_eval_calls(tiny_llama_dir: Path, big_set: Path) -> None:
    """Every forward of _model_call and of _model_generate sees the masked neurons at zero; the
    hooks are gone afterwards, so the wrapped model computes unmasked outputs again."""
    cls = register()
    lm = cls(**_hf_args(tiny_llama_dir), neurons=str(big_set), languages="en")
    masked = torch.tensor(NeuronSet.load(big_set).layers("en")[0])
    seen: list[torch.Tensor] = []

    def spy(_module: Any, args: tuple[Any, ...], _output: Any) -> None:
        seen.append(args[0][..., masked].abs().amax())  # down_proj's (masked) input

    down = lm.model.model.layers[0].mlp.down_proj
    handle = down.register_forward_hook(spy)
    try:
        inputs = torch.tensor([[2, 10, 11, 12, 13]])
        before = lm.model(inputs).logits
        assert seen.pop() > 0
        logits = lm._model_call(inputs)
        assert len(seen) == 1 and seen.pop() == 0
        lm._model_generate(inputs, max_length=inputs.shape[1] + 3, stop=[])
        assert len(seen) >= 3 and all(value == 0 for value in seen)
        seen.clear()
        after = lm.model(inputs).logits
        assert seen.pop() > 0
    finally:
        handle.remove()
    assert torch.equal(before, after) and not torch.equal(before, logits)
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in lm.model.modules())


def test_hooks_go_on_once_per_request_type_not_per_batch(
    tiny_llama_dir: Path, task_dir: Path, big_set: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crane.lm_eval_bridge as bridge

    entries: list[int] = []
    real = bridge.mask_neurons

    def counting(*args: Any, **kwargs: Any) -> Any:
        entries.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(bridge, "mask_neurons", counting)
    results = evaluate(
        tiny_llama_dir,
        big_set,
        "en",
        TASKS,
        task_dir,
        include_default_tasks=False,
        device="cpu",
        dtype="float32",
        batch_size=1,  # 32 + 3 log-likelihood batches and 2 generations
    )
    assert results["n-samples"][MC]["effective"] == len(MC_ITEMS)
    assert len(entries) == 3  # loglikelihood, loglikelihood_rolling, generate_until


def test_model_object_is_unmasked_after_evaluation(
    tiny_llama_dir: Path, task_dir: Path, big_set: Path, masked_en: dict[str, Any]
) -> None:
    from crane.models import load_model

    loaded = load_model(tiny_llama_dir, validate=False)
    inputs = torch.tensor([[2, 10, 11, 12, 13]])
    before = loaded.model(inputs).logits
    ours = _bridge(loaded, task_dir, big_set, languages="en")
    assert _logliks(ours, MC) == _logliks(masked_en, MC)
    assert torch.equal(loaded.model(inputs).logits, before)
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in loaded.model.modules())


# --- errors a user can cause -----------------------------------------------------------------


def test_set_for_another_model_shape_is_refused(
    tiny_llama_dir: Path, task_dir: Path, tmp_path: Path
) -> None:
    other = NeuronSet({"en": {0: [1]}}, "down_in", LAYERS, D_FF * 2).save(tmp_path / "o.json")
    with pytest.raises(NeuronSetError, match=r"made for a model with 2 layers × 192 neurons"):
        _bridge(tiny_llama_dir, task_dir, other)
    too_deep = NeuronSet({"en": {LAYERS + 3: [1]}}).save(tmp_path / "deep.json")
    with pytest.raises(NeuronSetError, match=r"uses layer 5, but the model has 2 layers"):
        _bridge(tiny_llama_dir, task_dir, too_deep)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"languages": "en+ko"}, NeuronSetError, r"has no language 'ko'; it has: en, zh, vi"),
        ({"mode": "mean"}, ConfigError, r"Mode 'mean' needs per-neuron reference means"),
        ({"mode": "scale"}, ConfigError, r"mode=scale needs alpha"),
        ({"alpha": 0.5}, ConfigError, r"alpha only applies to mode=scale"),
        ({"mode": "clamp"}, ConfigError, r"Unknown masking mode 'clamp'"),
    ],
)
def test_bad_mask_options_fail_before_loading(
    task_dir: Path, big_set: Path, options: dict[str, Any], error: type, message: str
) -> None:
    # the model path does not exist: the options must be refused before any load is tried
    with pytest.raises(error, match=message):
        _bridge("/nonexistent/model", task_dir, big_set, **options)


def test_unknown_task_and_missing_set_are_clear(
    tiny_llama_dir: Path, task_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"Unknown lm-eval task 'nope'"):
        evaluate(tiny_llama_dir, None, "all", ["nope"], task_dir, include_default_tasks=False)
    with pytest.raises(NeuronSetError, match=r"does not exist"):
        _bridge(tiny_llama_dir, task_dir, tmp_path / "missing.json")
    with pytest.raises(ConfigError, match=r"only apply with a neuron set"):
        _bridge(tiny_llama_dir, task_dir, None, languages="en")


def test_lm_eval_model_args_without_neurons_reject_mask_options(tiny_llama_dir: Path) -> None:
    cls = register()
    with pytest.raises(ConfigError, match=r"languages only applies with neurons=PATH"):
        cls.create_from_arg_string(f"pretrained={tiny_llama_dir},languages=en", {"device": "cpu"})


def test_parse_languages() -> None:
    assert parse_languages("all") is None and parse_languages(None) is None
    assert parse_languages("en+zh+en") == ["en", "zh"]
    assert parse_languages(["vi"]) == ["vi"]
    with pytest.raises(ConfigError, match="mixes 'all'"):
        parse_languages("all+en")
    with pytest.raises(ConfigError, match="empty"):
        parse_languages("+")


def test_cli_lm_eval_matches_the_python_bridge(
    tiny_llama_dir: Path, task_dir: Path, big_set: Path, tmp_path: Path, capsys: Any
) -> None:
    from crane.cli import main

    out = tmp_path / "results.json"
    main(["lm-eval", "--model", str(tiny_llama_dir), "--tasks", MC, "--task-dir", str(task_dir),
          "--neurons", str(big_set), "--langs", "en", "--device", "cpu", "--batch-size",
          str(BATCH), "--no-defaults", "--out", str(out)])
    assert "acc" in capsys.readouterr().out
    cli = json.loads(out.read_text())["results"][MC]
    direct = evaluate(tiny_llama_dir, big_set, "en", [MC], task_dir=task_dir,
                      include_default_tasks=False, device="cpu", dtype="float32", batch_size=BATCH)
    assert cli["acc,none"] == direct["results"][MC]["acc,none"]
