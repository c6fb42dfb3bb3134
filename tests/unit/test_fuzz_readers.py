"""Fuzzing the readers of user files: any bytes, any JSON-ish content either reads or raises
the tool's own error (:class:`~crane.errors.CraneError`), never another exception.

Covered: corpus files (plain text, JSONL, CSV, TSV), multiple-choice files (MMLU headerless CSV,
CMMLU/C-Eval CSV with a header, VMLU-style JSONL), neuron sets (JSON and safetensors) and
LAPE ``.neuron.pth`` files. Then one property per reader of the files crane writes and reads
back (neuron sets, LAPE files, study configurations, study results, manifests, shard sidecars):
a mutated valid file is refused or read exactly as it is written.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crane.data.choice_files import read_choice_file
from crane.data.corpus import read_corpus
from crane.errors import CraneError
from crane.lape_format import import_lape
from crane.neurons import NeuronSet

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ---- strategies ---------------------------------------------------------------------------
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
"""Anything ``json.dumps`` writes (no NaN: strict JSON)."""

cell_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=15
)
"""A CSV cell: any text without NUL (quotes, commas, tabs and newlines included)."""

field_names = st.sampled_from(
    ["text", "lang", "question", "answer", "choices", "A", "B", "C", "D", "id", "", "Question"]
)
lang_values = st.one_of(
    st.sampled_from(["en", "zh-Hans", "eng_Latn", "xx", "", "English"]), json_values
)
answers = st.one_of(st.sampled_from(["A", "b", "(C)", "D.", "0", "3", "E", ""]), json_values)


def _csv(rows: list[list[str]], delimiter: str) -> bytes:
    import csv

    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _jsonl(objects: list[Any]) -> bytes:
    return "\n".join(json.dumps(o, ensure_ascii=False) for o in objects).encode("utf-8")


def reads_or_refuses(call: Callable[[], Any]) -> None:
    """The property: ``call`` returns or raises a CraneError (any other exception fails)."""
    try:
        call()
    except CraneError as exc:
        message = str(exc)
        assert message and "\n" not in message.strip(), message


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder the examples overwrite (hypothesis reruns a test body many times)."""
    return tmp_path_factory.mktemp("fuzz")


# ---- corpus readers -------------------------------------------------------------------------
@FUZZ
@given(
    data=st.binary(max_size=400),
    suffix=st.sampled_from([".txt", ".jsonl", ".csv", ".tsv"]),
    unit=st.sampled_from(["line", "paragraph"]),
    lang=st.sampled_from([None, "en"]),
)
def test_corpus_any_bytes(
    scratch: Path, data: bytes, suffix: str, unit: str, lang: str | None
) -> None:
    path = scratch / f"en{suffix}"
    path.write_bytes(data)
    reads_or_refuses(lambda: read_corpus(path, lang=lang, unit=unit))


@FUZZ
@given(
    text=st.text(max_size=300),
    suffix=st.sampled_from([".txt", ".jsonl", ".csv", ".tsv"]),
    name=st.sampled_from(["en", "corpus", "zh-Hans", "vie_Latn"]),
)
def test_corpus_any_text(scratch: Path, text: str, suffix: str, name: str) -> None:
    path = scratch / f"{name}{suffix}"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    reads_or_refuses(lambda: read_corpus(path))


@FUZZ
@given(
    objects=st.lists(
        st.one_of(
            json_values,
            st.fixed_dictionaries({"text": json_values, "lang": lang_values}),
            st.dictionaries(field_names, json_values, max_size=4),
        ),
        max_size=6,
    ),
    text_field=st.sampled_from(["text", "lang", "missing"]),
    lang_field=st.sampled_from(["lang", "text", "language"]),
)
def test_corpus_jsonl_json_values(
    scratch: Path, objects: list[Any], text_field: str, lang_field: str
) -> None:
    path = scratch / "mixed.jsonl"
    path.write_bytes(_jsonl(objects))
    reads_or_refuses(lambda: read_corpus(path, text_field=text_field, lang_field=lang_field))


@FUZZ
@given(
    header=st.lists(st.one_of(field_names, cell_text), max_size=4),
    rows=st.lists(st.lists(cell_text, max_size=5), max_size=5),
    delimiter=st.sampled_from([",", "\t"]),
)
def test_corpus_csv_cells(
    scratch: Path, header: list[str], rows: list[list[str]], delimiter: str
) -> None:
    path = scratch / ("table.csv" if delimiter == "," else "table.tsv")
    path.write_bytes(_csv([header, *rows], delimiter))
    reads_or_refuses(lambda: read_corpus(path))


# ---- multiple-choice readers ----------------------------------------------------------------
@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".csv", ".tsv", ".jsonl"]))
def test_choice_any_bytes(scratch: Path, data: bytes, suffix: str) -> None:
    path = scratch / f"mc{suffix}"
    path.write_bytes(data)
    reads_or_refuses(lambda: read_choice_file(path))


@FUZZ
@given(
    rows=st.lists(
        st.one_of(
            # MMLU: question,A,B,C,D,answer without a header
            st.tuples(cell_text, cell_text, cell_text, cell_text, cell_text, answers.map(str)).map(
                list
            ),
            st.lists(cell_text, max_size=7),
        ),
        max_size=5,
    ),
    header=st.sampled_from(
        [
            None,
            ["", "Question", "A", "B", "C", "D", "Answer"],
            ["id", "question", "A", "B", "C", "D", "answer"],
        ]
    ),
    delimiter=st.sampled_from([",", "\t"]),
)
def test_choice_csv_layouts(
    scratch: Path, rows: list[list[str]], header: list[str] | None, delimiter: str
) -> None:
    path = scratch / ("mmlu.csv" if delimiter == "," else "mmlu.tsv")
    path.write_bytes(_csv(([header] if header else []) + rows, delimiter))
    reads_or_refuses(lambda: read_choice_file(path))


@FUZZ
@given(
    objects=st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"question": json_values, "choices": json_values, "answer": answers}
            ),
            st.fixed_dictionaries(
                {
                    "question": cell_text,
                    "choices": st.lists(st.one_of(cell_text, json_values), max_size=5),
                    "answer": answers,
                }
            ),
            st.dictionaries(field_names, json_values, max_size=5),
            json_values,
        ),
        max_size=5,
    ),
    choices_field=st.sampled_from([None, "choices", "options"]),
)
def test_choice_jsonl_values(scratch: Path, objects: list[Any], choices_field: str | None) -> None:
    path = scratch / "vmlu.jsonl"
    path.write_bytes(_jsonl(objects))
    reads_or_refuses(lambda: read_choice_file(path, choices_field=choices_field))


# ---- neuron sets --------------------------------------------------------------------------
@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".json", ".safetensors"]))
def test_neuron_set_any_bytes(scratch: Path, data: bytes, suffix: str) -> None:
    path = scratch / f"set{suffix}"
    path.write_bytes(data)
    reads_or_refuses(lambda: NeuronSet.load(path))


layer_maps = st.dictionaries(
    st.one_of(st.sampled_from(["0", "1", "-1", "x", "1.5", " 2"]), st.text(max_size=3)),
    st.one_of(
        st.lists(st.one_of(st.integers(-5, 200), st.floats(), json_values), max_size=4),
        json_values,
    ),
    max_size=3,
)


@FUZZ
@given(
    neurons=st.one_of(st.dictionaries(st.text(max_size=5), layer_maps, max_size=3), json_values),
    n_layers=st.one_of(st.none(), st.integers(-2, 4), json_values),
    d_ff=st.one_of(st.none(), st.integers(-2, 300), json_values),
    site=st.one_of(st.sampled_from(["down_in", "act", "mlp"]), json_values),
    meta=json_values,
    version=st.sampled_from([1, 0, "1", None]),
)
def test_neuron_set_json_values(
    scratch: Path, neurons: Any, n_layers: Any, d_ff: Any, site: Any, meta: Any, version: Any
) -> None:
    record = {
        "format": "crane-neuron-set",
        "version": version,
        "site": site,
        "n_layers": n_layers,
        "d_ff": d_ff,
        "meta": meta,
        "neurons": neurons,
    }
    path = scratch / "set.json"
    # json.dumps writes Infinity/NaN for float leaves; the reader must cope with those too
    path.write_text(json.dumps(record))
    reads_or_refuses(lambda: NeuronSet.load(path))


@FUZZ
@given(
    header=json_values,
    masks=st.dictionaries(
        st.text(min_size=1, max_size=4),
        st.sampled_from(["bool2d", "int2d", "float1d", "bool3d"]),
        max_size=2,
    ),
)
def test_neuron_set_safetensors(scratch: Path, header: Any, masks: dict[str, str]) -> None:
    from safetensors.torch import save

    shapes = {
        "bool2d": torch.zeros(2, 4, dtype=torch.bool),
        "int2d": torch.arange(8).reshape(2, 4),
        "float1d": torch.ones(3),
        "bool3d": torch.ones(1, 2, 2, dtype=torch.bool),
    }
    tensors = {name: shapes[kind].clone() for name, kind in masks.items()}
    path = scratch / "set.safetensors"
    path.write_bytes(save(tensors, {"crane": json.dumps(header)}))
    reads_or_refuses(lambda: NeuronSet.load(path))


# ---- LAPE importer --------------------------------------------------------------------------
pth_leaves = st.one_of(
    st.lists(st.integers(-3, 300), max_size=4).map(lambda v: torch.tensor(v, dtype=torch.long)),
    st.just(torch.zeros(2, 2, dtype=torch.long)),
    st.just(torch.tensor([0.5, 1.5])),
    st.just(torch.tensor(3)),
    json_scalars,
)
pth_values = st.recursive(
    pth_leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=10,
)


@FUZZ
@given(
    value=pth_values,
    languages=st.lists(
        st.sampled_from(["en", "zh", "vi", "fr"]), min_size=1, max_size=3, unique=True
    ),
    d_ff=st.sampled_from([None, 96, 0]),
)
def test_lape_any_plain_value(
    scratch: Path, value: Any, languages: list[str], d_ff: int | None
) -> None:
    path = scratch / "x.neuron.pth"
    torch.save(value, path)
    reads_or_refuses(lambda: import_lape(path, languages, d_ff=d_ff))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@FUZZ
@given(data=st.binary(max_size=400))
def test_lape_any_bytes(scratch: Path, data: bytes) -> None:
    path = scratch / "y.neuron.pth"
    path.write_bytes(data)
    reads_or_refuses(lambda: import_lape(path, ["en"]))


# ==== mutations of a valid file, one property per reader ========================================
#
# A valid file written by crane is mutated (a value replaced, a key removed or added, a key given
# twice, a byte flipped, deleted or inserted). The reader either refuses it with the tool's own
# error, or reads exactly what the mutated file says: nothing merged, dropped, coerced or read
# from elsewhere (so an unmutated meaning loads to the same content as before).

MUTATE = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

Path_ = tuple[Any, ...]


def _nodes(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path into a JSON value (the root is ``()``)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _nodes(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _nodes(item, (*prefix, index))
    return found


def _at(value: Any, path: Path_) -> Any:
    for step in path:
        value = value[step]
    return value


def _dumps(value: Any, twice: tuple[Path_, str, Any] | None = None, path: Path_ = ()) -> str:
    """``json.dumps``, except that the object at ``twice[0]`` gives key ``twice[1]`` once more
    (first, with value ``twice[2]``)."""
    if isinstance(value, dict):
        items = [f"{json.dumps(k)}: {_dumps(v, twice, (*path, k))}" for k, v in value.items()]
        if twice is not None and twice[0] == path:
            items.insert(0, f"{json.dumps(twice[1])}: {json.dumps(twice[2])}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_dumps(v, twice, (*path, i)) for i, v in enumerate(value)) + "]"
    return json.dumps(value)


near_values = st.one_of(
    json_values,
    st.sampled_from([True, False, None, -1, 0, 1, 1.5, 10**9, "", "01", "en", "EN", "xq", [], {}]),
    st.floats(allow_nan=True, allow_infinity=True),
)
"""Replacement values: anything JSON, and the near misses that a loose reader accepts."""


MUTATIONS = ("replace", "delete", "add", "twice", "byte")


@st.composite
def json_mutations(draw: Any, document: Any, kinds: tuple[str, ...] = MUTATIONS) -> str:
    """The text of ``document`` after one random mutation of one of ``kinds``."""
    copy = json.loads(json.dumps(document))
    kind = draw(st.sampled_from(kinds))
    inner = [p for p in _nodes(copy) if p]
    if kind == "replace" and inner:
        path = draw(st.sampled_from(inner))
        _at(copy, path[:-1])[path[-1]] = draw(near_values)
    elif kind == "delete" and inner:
        path = draw(st.sampled_from(inner))
        del _at(copy, path[:-1])[path[-1]]
    elif kind == "add":
        objects = [p for p in _nodes(copy) if isinstance(_at(copy, p), dict)]
        path = draw(st.sampled_from(objects))
        _at(copy, path)[draw(st.text(max_size=6))] = draw(near_values)
    elif kind == "twice":
        objects = [p for p in _nodes(copy) if isinstance(_at(copy, p), dict) and _at(copy, p)]
        if objects:
            path = draw(st.sampled_from(objects))
            key = draw(st.sampled_from(sorted(_at(copy, path))))
            return _dumps(copy, (path, key, draw(near_values)))
    elif kind == "byte":
        data = bytearray(json.dumps(copy).encode("utf-8"))
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["flip", "delete", "insert"]))
        if how == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "delete":
            del data[at]
        else:
            data.insert(at, draw(st.integers(0, 255)))
        return data.decode("utf-8", "replace")
    return json.dumps(copy)


def _meaning(text: str) -> Any:
    """What a JSON text says, or ``None`` when a strict reader must refuse it: not JSON, or an
    object that gives a key twice."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("a key twice")
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=unique)
    except (ValueError, RecursionError):
        return None


def refused_or(call: Callable[[], Any]) -> Any:
    """``call()``'s result, or ``None`` when it raised the tool's own one-line error."""
    try:
        return call()
    except CraneError as exc:
        assert str(exc) and "\n" not in str(exc).strip(), str(exc)
        return None


# ---- neuron sets ------------------------------------------------------------------------------
VALID_SET = NeuronSet(
    {"en": {0: [1, 5], 1: [7]}, "zh-Hans": {1: [2, 3, 95]}, "vi": {}},
    "down_in", 2, 96, {"method": "actmean", "model": {"spec": "tiny", "kind": "dir"}, "budget": 4},
).to_dict()  # fmt: skip


def _code_or_label(key: str) -> str:
    from crane.data.languages import normalize_language
    from crane.errors import LanguageError

    try:
        return normalize_language(key.strip())
    except LanguageError:
        return key.strip()


@MUTATE
@given(data=st.data())
def test_neuron_set_mutations_are_refused_or_read_as_written(scratch: Path, data: Any) -> None:
    text = data.draw(json_mutations(VALID_SET))
    path = scratch / "mutated.json"
    path.write_text(text, encoding="utf-8")
    loaded = refused_or(lambda: NeuronSet.load(path))
    if loaded is None:
        return
    meaning = _meaning(text)
    assert isinstance(meaning, dict), "a file that is not strict JSON was read"
    neurons = meaning["neurons"]
    assert len(loaded.neurons) == len(neurons)  # no language merged or dropped
    for lang, layers in neurons.items():
        got = loaded.neurons[_code_or_label(lang)]
        for layer, indices in layers.items():
            assert all(not isinstance(i, bool) for i in indices), "a boolean read as an index"
            assert str(int(layer)) == layer, "a layer key not written plainly"
            assert len(set(indices)) == len(indices), "a repeated index dropped"
            assert got.get(int(layer), []) == sorted(int(i) for i in indices)
        assert len(got) == len([ix for ix in layers.values() if ix])
    assert (loaded.site, loaded.n_layers, loaded.d_ff) == (
        meaning.get("site", "down_in"), meaning.get("n_layers"), meaning.get("d_ff"),
    )  # fmt: skip
    assert loaded.meta == (meaning.get("meta") or {})
    if meaning == VALID_SET:
        assert loaded.to_dict() == VALID_SET


# ---- LAPE files -------------------------------------------------------------------------------
def _valid_lape() -> list[list[torch.Tensor]]:
    return [
        [torch.tensor([1, 5]), torch.tensor([], dtype=torch.long)],
        [torch.tensor([False, True, False, True]), torch.tensor([True, False, False, False])],
    ]


lape_leaves = st.one_of(
    st.lists(st.integers(-2, 6), max_size=4).map(lambda v: torch.tensor(v, dtype=torch.long)),
    st.lists(st.booleans(), min_size=1, max_size=5).map(lambda v: torch.tensor(v)),
    st.just(torch.tensor([1, 2], dtype=torch.uint8)),
    st.just(torch.tensor([0.5])),
    st.just(torch.tensor(3)),
    st.just(torch.zeros(2, 4, dtype=torch.bool)),
    json_scalars,
)


@MUTATE
@given(
    where=st.tuples(st.integers(0, 1), st.integers(0, 1)),
    kind=st.sampled_from(["replace", "delete-layer", "add-layer", "delete-language"]),
    leaf=lape_leaves,
    d_ff=st.sampled_from([None, 4, 8]),
)
def test_lape_mutations_are_refused_or_read_as_written(
    scratch: Path, where: tuple[int, int], kind: str, leaf: Any, d_ff: int | None
) -> None:
    data: list[Any] = _valid_lape()
    lang, layer = where
    if kind == "replace":
        data[lang][layer] = leaf
    elif kind == "delete-layer":
        del data[lang][layer]
    elif kind == "add-layer":
        data[lang].append(leaf)
    else:
        del data[lang]
    path = scratch / "mutated.neuron.pth"
    torch.save(data, path)
    loaded = refused_or(lambda: import_lape(path, ["en", "zh"], d_ff=d_ff))
    if loaded is None:
        return
    assert len(data) == 2 and loaded.n_layers == len(data[0]) == len(data[1])
    widths = {len(ix) for layers in data for ix in layers if ix.dtype == torch.bool}
    assert loaded.d_ff == (d_ff if d_ff is not None else next(iter(widths), None))
    for name, layers in zip(["en", "zh"], data, strict=True):
        for index, ix in enumerate(layers):
            assert isinstance(ix, torch.Tensor) and ix.dim() == 1 and ix.dtype != torch.uint8
            if ix.dtype == torch.bool:
                expected = torch.nonzero(ix).flatten().tolist()  # a mask: its True positions
            else:
                assert not ix.is_floating_point()
                expected = sorted(set(ix.tolist()))
            assert loaded.layers(name).get(index, []) == expected


# ---- study configurations -------------------------------------------------------------------
VALID_CONFIG = {
    "model": "tiny-model",
    "languages": ["en", "zh"],
    "methods": ["actmean", "lape"],
    "identify": {"budget": "4", "quantile": 0.9, "identify_max_texts": 8, "seed": 3},
    "evaluate": {"n_boot": 20, "bpb_max_texts": 2},
}


def _toml(config: dict[str, Any]) -> str:
    """A TOML text of a two-level mapping (top-level keys first, then one table per section)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float) and v != v:
            return "nan"
        if isinstance(v, float) and v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        if v is None:
            return '""'  # TOML has no null
        return json.dumps(v)

    top = [f"{json.dumps(k)} = {value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    tables = [
        f"[{json.dumps(k)}]\n" + "\n".join(f"{json.dumps(n)} = {value(x)}" for n, x in v.items())
        for k, v in config.items()
        if isinstance(v, dict)
    ]
    return "\n".join(top) + "\n" + "\n".join(tables) + "\n"


@MUTATE
@given(data=st.data(), neutral=st.booleans())
def test_config_mutations_are_refused_or_read_as_written(
    scratch: Path, data: Any, neutral: bool
) -> None:
    """Neutral edits (a key moved to another section, comments, key order) load to the same
    configuration; any other edit is refused with the tool's error (exit 2) or loads to a
    configuration that holds the file's values and passes its own checks again."""
    from crane.study.config import StudyConfig, load_config

    path = scratch / "study.toml"
    path.write_text(_toml(VALID_CONFIG))
    original = load_config(path)
    config = json.loads(json.dumps(VALID_CONFIG))
    if neutral:
        moved = data.draw(st.sampled_from(sorted(config["identify"])))
        config["evaluate"][moved] = config["identify"].pop(moved)
        config["languages"] = ",".join(config["languages"]) if data.draw(st.booleans()) else [
            "EN", "zh"]  # fmt: skip
        path.write_text("# a comment\n" + _toml(config))
        assert load_config(path) == original
        return
    text = data.draw(json_mutations(config))
    meaning = _meaning(text)
    if isinstance(meaning, dict) and all(isinstance(k, str) for k in meaning):
        path.write_text(_toml(meaning))
    else:
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
    loaded = refused_or(lambda: load_config(path))  # ConfigError, LanguageError: exit 2
    if loaded is None:
        return
    loaded.validate()  # a configuration that was accepted passes its checks again
    assert StudyConfig.from_dict(loaded.to_dict()) == loaded
    assert isinstance(meaning, dict)
    flat = {k: v for k, v in meaning.items() if not isinstance(v, dict)}
    for section in (v for v in meaning.values() if isinstance(v, dict)):
        flat.update(section)
    for key in ("n_boot", "bpb_max_texts", "quantile", "seed", "budget", "identify_max_texts"):
        if key in flat:
            assert getattr(loaded, key) == flat[key], key  # read as written, not coerced


# ---- study results ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study_results(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> dict[str, Any]:
    """The study.json of a finished tiny study (one method, two languages)."""
    from crane.cli import main

    folder = tmp_path_factory.mktemp("fuzz-study")
    config = folder / "study.toml"
    config.write_text(
        f'model = "{tiny_llama_dir}"\nlanguages = ["en", "zh"]\nmethods = ["actmean"]\n'
        'budget = "4"\nidentify_max_texts = 4\nbpb_max_texts = 2\nn_boot = 5\n'
    )
    try:
        main(["run", str(config), "--out", str(folder / "run")])
    except SystemExit as exc:
        assert not exc.code, exc.code
    return json.loads((folder / "run" / "study.json").read_text())


@MUTATE
@given(data=st.data())
def test_study_results_mutations_are_refused_or_read_as_written(
    scratch: Path, study_results: dict[str, Any], data: Any
) -> None:
    from crane.results import StudyResults

    # values replaced or left out; keys added, renamed or given twice are not yet refused
    # everywhere (test_study_results_with_unknown_or_repeated_keys)
    text = data.draw(json_mutations(study_results, ("replace", "delete")))
    path = scratch / "study.json"
    path.write_text(text, encoding="utf-8")
    loaded = refused_or(lambda: StudyResults.load(path))
    if loaded is None:
        return
    said = _meaning(text)
    assert said is not None, "a file that is not strict JSON was read"
    # an optional entry left out reads as null (undefined), as the pipeline writes it
    assert _defined(loaded.to_dict()) == _defined(said), "read differently from the file"
    assert StudyResults.from_dict(loaded.to_dict()) == loaded
    if said == study_results:
        assert loaded.to_dict() == study_results


def _unknown_key(path: Path_) -> Callable[[dict[str, Any]], str]:
    def text(results: dict[str, Any]) -> str:
        copy = json.loads(json.dumps(results))
        _at(copy, path)["zz_unknown"] = 1
        return json.dumps(copy)

    return text


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: _dumps(r, ((), "languages", ["en", "vi"])),
        _unknown_key(("comparisons", "bpb")),
        _unknown_key(("comparisons", "bpb", "paired", "actmean", "random", "en")),
        _unknown_key(("overlap",)),
    ],
    ids=["key-twice", "unknown-in-comparisons", "unknown-in-a-paired-entry", "unknown-in-overlap"],
)
def test_study_results_with_unknown_or_repeated_keys(
    scratch: Path, study_results: dict[str, Any], mutate: Callable[[dict[str, Any]], str]
) -> None:
    from crane.results import StudyResults

    path = scratch / "study.json"
    path.write_text(mutate(study_results), encoding="utf-8")
    assert refused_or(lambda: StudyResults.load(path)) is None


def _defined(value: Any) -> Any:
    """``value`` without its undefined entries (null, empty objects and lists, [null, null])."""
    if isinstance(value, dict):
        kept = {key: _defined(item) for key, item in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [], [None, None])}
    if isinstance(value, list):
        return [_defined(item) for item in value]
    return value


# ---- manifests ------------------------------------------------------------------------------
@MUTATE
@given(data=st.data())
def test_manifest_mutations_are_refused_or_trusted_only_when_intact(
    scratch: Path, data: Any
) -> None:
    """A stage counts as complete only when its record on disk is the one written (same key,
    same outputs, intact files); options and model records are read as written or not at all."""
    from crane.errors import ConfigError
    from crane.manifest import Manifest

    run_dir = scratch / "manifest-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    (run_dir / "a.json").write_text("{}\n")
    model = {"sha256": "ab" * 32, "dtype": "float32", "revision": None}
    written = Manifest(run_dir, model)
    written.record("identify", "key-1", [run_dir / "a.json"], 1.0)
    written.record_options({"site": "down_in", "budget": "4"})
    valid = json.loads((run_dir / "manifest.json").read_text())
    text = data.draw(json_mutations(valid))
    (run_dir / "manifest.json").write_text(text, encoding="utf-8")
    meaning = _meaning(text)
    try:
        manifest = Manifest(run_dir, model)
    except ConfigError as exc:
        assert "\n" not in str(exc).strip()
        return
    if manifest.complete("identify", "key-1"):
        assert isinstance(meaning, dict)
        entry = meaning["stages"]["identify"]
        assert (
            entry["key"] == "key-1" and entry["outputs"] == valid["stages"]["identify"]["outputs"]
        )
    record = manifest.recorded_options()
    assert record is None or (isinstance(meaning, dict) and record == meaning["options"])
    on_disk = meaning.get("model") if isinstance(meaning, dict) else None
    assert on_disk is None or on_disk == model  # another model's record was refused


# ---- shard sidecars -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_shard(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One statistics shard saved as a collection saves it, and the inputs it was made from."""
    from crane.shards import COUNTS_KEY, _counts_digest
    from crane.stats import LanguageStats, Stats

    folder = tmp_path_factory.mktemp("fuzz-shard")
    expected = {"kind": "activations", "language": "en", "shard": 0, "n_texts": 2}
    stats = Stats({"en": LanguageStats({"sum": torch.arange(6.0).reshape(2, 3)}, {"n_tokens": 9})})
    stats.meta = {**expected, COUNTS_KEY: _counts_digest({"en": {"n_tokens": 9}})}
    stats.save(folder / "shard-00000.safetensors")
    return folder / "shard-00000.safetensors", expected


@MUTATE
@given(data=st.data(), target=st.sampled_from(["sidecar", "tensors"]))
def test_shard_mutations_are_recomputed_or_read_as_written(
    scratch: Path, saved_shard: tuple[Path, dict[str, Any]], data: Any, target: str
) -> None:
    """A damaged shard is either recomputed (its sidecar does not match its inputs, or its
    numbers are unsound) or read to exactly the saved statistics."""
    from crane.shards import _matches, _sound_shard
    from crane.stats import Stats, read_sidecar

    source, expected = saved_shard
    folder = scratch / "shard-run" / "en"
    shutil.rmtree(folder.parent, ignore_errors=True)
    folder.mkdir(parents=True)
    shard = folder / "shard-00000.safetensors"
    shutil.copy(source, shard)
    shutil.copy(source.with_name(source.name + ".json"), shard.with_name(shard.name + ".json"))
    original = Stats.load(shard)
    if target == "sidecar":
        side = shard.with_name(shard.name + ".json")
        side.write_text(data.draw(json_mutations(json.loads(side.read_text()))), encoding="utf-8")
    else:
        raw = bytearray(shard.read_bytes())
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] ^= 1 << data.draw(st.integers(0, 7))
        shard.write_bytes(bytes(raw))
    if not _matches(read_sidecar(shard), expected):
        return  # recomputed
    reused = _sound_shard(scratch / "shard-run", "en", 0, [""])
    if reused is None:
        return  # recomputed
    again = reused[""]
    assert again.meta == original.meta
    assert again["en"].counts == original["en"].counts
    assert again["en"].tensors.keys() == original["en"].tensors.keys()
    for name, tensor in original["en"].tensors.items():
        assert torch.equal(again["en"].tensors[name], tensor)
