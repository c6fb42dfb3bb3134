"""Fuzzing the readers of user files: any bytes, any JSON-ish content either reads or raises
the tool's own error (:class:`~crane.errors.CraneError`), never another exception.

Covered: corpus files (plain text, JSONL, CSV, TSV), multiple-choice files (MMLU headerless CSV,
CMMLU/C-Eval CSV with a header, VMLU-style JSONL), neuron sets (JSON and safetensors) and
LAPE ``.neuron.pth`` files.
"""

from __future__ import annotations

import io
import json
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
