from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from crane.data.corpus import Corpus, corpus_sha256, read_corpus
from crane.errors import ConfigError, CorpusError, LanguageError

VI_NFC = "Tất cả mọi người sinh ra đều được tự do và bình đẳng."
VI_NFD = unicodedata.normalize("NFD", VI_NFC)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --- Corpus -------------------------------------------------------------------------------


def test_corpus_normalises_texts_and_languages() -> None:
    assert VI_NFD != VI_NFC
    c = Corpus({"VIE": [f"  {VI_NFD}\n", "", "   "], "en": ["a"], "EN": ["b"], "zh": [" "]})
    assert c.languages == ["vi", "en"]  # zh had only empty texts
    assert c["vi"] == [VI_NFC]
    assert c["en"] == ["a", "b"]
    assert c.provenance["normalization"] == "NFC"
    assert c.provenance["counts"]["vi"] == {
        "texts": 1,
        "chars": len(VI_NFC),
        "bytes": len(VI_NFC.encode("utf-8")),
    }


def test_sha256_depends_only_on_normalised_content() -> None:
    a = Corpus({"vi": [VI_NFD]}, {"source": "a"})
    b = Corpus({"vi": [VI_NFC + "  "]}, {"source": "b"})
    c = Corpus({"vi": [VI_NFC, "x"]})
    assert a.sha256 == b.sha256 == corpus_sha256({"vi": [VI_NFC]})
    assert c.sha256 != a.sha256
    # language order does not matter, text order does
    assert Corpus({"en": ["x"], "vi": ["y"]}).sha256 == Corpus({"vi": ["y"], "en": ["x"]}).sha256
    assert Corpus({"en": ["x", "y"]}).sha256 != Corpus({"en": ["y", "x"]}).sha256


def test_select_take_merge_summary() -> None:
    c = Corpus({"en": ["one", "two", "three"], "zh": ["一", "二"], "vi": ["một"]}, {"source": "s"})
    sel = c.select(["vi", "EN"])
    assert sel.languages == ["vi", "en"] and sel["en"] == ["one", "two", "three"]
    assert sel.provenance["parent_sha256"] == c.sha256
    assert c.select("zh")["zh"] == ["一", "二"]

    taken = c.take(2)
    assert taken["en"] == ["one", "two"] and taken["zh"] == ["一", "二"] and taken["vi"] == ["một"]
    assert taken.take(2).sha256 == taken.sha256

    other = Corpus({"en": ["four"], "fr": ["un"]}, {"source": "t"})
    merged = c.merge(other)
    assert merged["en"] == ["one", "two", "three", "four"]
    assert merged.languages == ["en", "zh", "vi", "fr"]
    assert merged.provenance["source"] == ["s", "t"]

    rows = {r["language"]: r for r in c.summary()}
    assert rows["zh"] == {"language": "zh", "name": "Chinese", "texts": 2, "chars": 2, "bytes": 6}
    assert rows["en"]["bytes"] == len("onetwothree")


def test_missing_language_names_available_ones() -> None:
    c = Corpus({"en": ["x"], "vi": ["y"]})
    with pytest.raises(LanguageError, match=r"'zh'.*available: en, vi"):
        c.select(["en", "zh"])
    with pytest.raises(LanguageError, match="available: en, vi"):
        c["zh"]
    assert "EN" in c and "zh" not in c and "xx" not in c


# --- plain text ---------------------------------------------------------------------------


def test_plain_text_lines_language_from_file_name(tmp_path: Path) -> None:
    p = write(tmp_path / "en.txt", "\ufeffFirst line.\r\n\r\n  Second line.  \nThird\n")
    c = read_corpus(p)
    assert c.languages == ["en"]
    assert c["en"] == ["First line.", "Second line.", "Third"]
    assert c.provenance["source"] == str(p)
    assert c.provenance["reader"]["unit"] == "line"
    assert c.provenance["counts"]["en"]["texts"] == 3


def test_plain_text_language_from_dotted_name_and_parent(tmp_path: Path) -> None:
    assert read_corpus(write(tmp_path / "corpus.zh-Hans.txt", "你好")).languages == ["zh-Hans"]
    assert read_corpus(write(tmp_path / "vie_Latn.txt", "xin chào")).languages == ["vi"]
    assert read_corpus(write(tmp_path / "vi" / "part1.txt", "xin chào")).languages == ["vi"]


def test_lang_argument_overrides_file_name(tmp_path: Path) -> None:
    p = write(tmp_path / "en.txt", "bonjour")
    assert read_corpus(p, lang="FRA").languages == ["fr"]


def test_paragraph_mode(tmp_path: Path) -> None:
    text = "Para one line one\nline two\n\n   \n\nPara two\n\n\nPara three\n"
    p = write(tmp_path / "en.txt", text)
    c = read_corpus(p, unit="paragraph")
    assert c["en"] == ["Para one line one\nline two", "Para two", "Para three"]
    assert len(read_corpus(p)["en"]) == 4  # line mode: four non-empty lines


def test_decomposed_vietnamese_is_nfc_after_reading(tmp_path: Path) -> None:
    p = write(tmp_path / "vi.txt", VI_NFD + "\n")
    c = read_corpus(p)
    assert c["vi"] == [VI_NFC]
    assert unicodedata.is_normalized("NFC", c["vi"][0])
    assert c.provenance["counts"]["vi"]["chars"] == len(VI_NFC) < len(VI_NFD)


def test_unknown_language_cannot_be_determined(tmp_path: Path) -> None:
    p = write(tmp_path / "sample" / "corpus.txt", "hello")
    with pytest.raises(LanguageError, match=r"corpus\.txt.*pass --lang or add a 'lang' field"):
        read_corpus(p)
    with pytest.raises(LanguageError, match="'xx'"):
        read_corpus(p, lang="xx")


# --- JSONL --------------------------------------------------------------------------------


def jsonl(rows: list[object]) -> str:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"


def test_jsonl_fields(tmp_path: Path) -> None:
    rows = [
        {"text": "Hello", "lang": "en"},
        {"text": "你好", "lang": "zh"},
        {"text": VI_NFD, "lang": "vie"},
        {"text": None, "lang": "en"},
        {"text": "  ", "lang": "en"},
        "bare string, language from --lang",
    ]
    p = write(tmp_path / "mixed.jsonl", jsonl(rows) + "\n\n")
    with pytest.raises(LanguageError, match=r"line 6 of corpus file .*mixed\.jsonl"):
        read_corpus(p)
    c = read_corpus(write(tmp_path / "ok.jsonl", jsonl(rows[:5])))
    assert c.texts == {"en": ["Hello"], "zh": ["你好"], "vi": [VI_NFC]}
    # lang overrides every row
    assert read_corpus(p, lang="en").languages == ["en"]
    assert len(read_corpus(p, lang="en")["en"]) == 4


def test_jsonl_custom_fields_and_name_fallback(tmp_path: Path) -> None:
    rows = [{"sentence": "một", "language": "vi"}, {"sentence": "two"}]
    p = write(tmp_path / "en.ndjson", jsonl(rows))
    c = read_corpus(p, text_field="sentence", lang_field="language")
    assert c.texts == {"vi": ["một"], "en": ["two"]}  # row 2 falls back to the file name


def test_jsonl_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.jsonl", '{"text": "ok", "lang": "en"}\n{"text": oops}\n')
    with pytest.raises(
        CorpusError, match=r"Line 2 of corpus file '.*bad\.jsonl' is not valid JSON"
    ):
        read_corpus(bad)
    missing = write(tmp_path / "en.jsonl", jsonl([{"body": "x", "id": 1}]))
    with pytest.raises(
        CorpusError, match=r"en\.jsonl.*no field 'text' \(available: 'body', 'id'\)"
    ):
        read_corpus(missing)
    number = write(tmp_path / "num.jsonl", jsonl([{"text": 3, "lang": "en"}]))
    with pytest.raises(CorpusError, match=r"num\.jsonl.*not a string"):
        read_corpus(number)
    array = write(tmp_path / "arr.jsonl", "[1, 2]\n")
    with pytest.raises(CorpusError, match=r"arr\.jsonl.*not an object"):
        read_corpus(array)
    nolang = write(tmp_path / "data.jsonl", jsonl([{"text": "x"}]))
    with pytest.raises(LanguageError, match=r"data\.jsonl.*pass --lang or add a 'lang' field"):
        read_corpus(nolang)
    unknown = write(tmp_path / "u.jsonl", jsonl([{"text": "x", "lang": "klingon"}]))
    with pytest.raises(LanguageError, match=r"[Ll]ine 1 of corpus file '.*u\.jsonl'.*'klingon'"):
        read_corpus(unknown)


# --- CSV / TSV / Parquet ------------------------------------------------------------------


def test_csv_and_tsv(tmp_path: Path) -> None:
    csv_text = 'id,text,lang\n1,"Hello, world",en\n2,"two\nlines",en\n3,Xin chào,vi\n4,,vi\n'
    c = read_corpus(write(tmp_path / "c.csv", csv_text))
    assert c.texts == {"en": ["Hello, world", "two\nlines"], "vi": ["Xin chào"]}
    t = read_corpus(write(tmp_path / "zh.tsv", "sentence\n你好\n再见\n"), text_field="sentence")
    assert t.texts == {"zh": ["你好", "再见"]}


def test_csv_missing_column_names_available_ones(tmp_path: Path) -> None:
    p = write(tmp_path / "en.csv", "id,body\n1,x\n")
    with pytest.raises(CorpusError, match=r"en\.csv.*no column 'text' \(available: 'id', 'body'\)"):
        read_corpus(p)


@pytest.fixture(scope="module")
def arrow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, imported and warmed up once (first write is slow)."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"text": ["warm-up"]}), tmp_path_factory.mktemp("pq") / "w.parquet")
    return pa, pq


def test_parquet(tmp_path: Path, arrow: tuple[Any, Any]) -> None:
    pa, pq = arrow
    table = pa.table(
        {
            "content": ["Hello", VI_NFD, None, "你好"],
            "code": ["en", "vi", "vi", None],
            "n": [1, 2, 3, 4],
        }
    )
    p = tmp_path / "zh.parquet"
    pq.write_table(table, p)
    c = read_corpus(p, text_field="content", lang_field="code")
    assert c.texts == {"en": ["Hello"], "vi": [VI_NFC], "zh": ["你好"]}  # null lang → file name
    with pytest.raises(
        CorpusError, match=r"zh\.parquet.*no column 'text' \(available: 'content', 'code', 'n'\)"
    ):
        read_corpus(p)
    with pytest.raises(CorpusError, match=r"zh\.parquet.*not string"):
        read_corpus(p, text_field="n")
    broken = write(tmp_path / "en.parquet", b"PAR1 this is not parquet")
    with pytest.raises(CorpusError, match=r"en\.parquet.*not a readable Parquet file"):
        read_corpus(broken)


# --- directories --------------------------------------------------------------------------


def test_directory_recursive_sorted_merged(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write(root / "vi" / "b.txt", "câu hai")
    write(root / "vi" / "a.txt", "câu một")
    write(root / "en.txt", "sentence one")
    write(root / "more" / "mixed.jsonl", jsonl([{"text": "sentence two", "lang": "en"}]))
    write(root / "README.md", "not a corpus file")
    write(root / ".hidden" / "en.txt", "must be skipped")
    c = read_corpus(root)
    assert c.texts == {"en": ["sentence one", "sentence two"], "vi": ["câu một", "câu hai"]}
    assert c.provenance["files"] == ["en.txt", "more/mixed.jsonl", "vi/a.txt", "vi/b.txt"]
    assert read_corpus(root).sha256 == c.sha256  # deterministic
    only_txt = read_corpus(root, fmt="txt")
    assert only_txt["en"] == ["sentence one"]


def test_directory_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match=r"Directory '.*empty' contains no corpus files"):
        read_corpus(empty)
    write(tmp_path / "docs" / "notes.md", "x")
    with pytest.raises(CorpusError, match="contains no corpus files"):
        read_corpus(tmp_path / "docs")
    write(tmp_path / "blank" / "en.txt", "\n \n")
    with pytest.raises(CorpusError, match=r"Directory '.*blank' contains no texts"):
        read_corpus(tmp_path / "blank")


# --- file errors --------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"'.*nope\.txt' does not exist"):
        read_corpus(tmp_path / "nope.txt")


def test_not_utf8_reports_offset(tmp_path: Path) -> None:
    p = write(tmp_path / "en.txt", b"hello world\xff!")
    with pytest.raises(CorpusError) as err:
        read_corpus(p)
    msg = str(err.value)
    assert "en.txt" in msg and "not valid UTF-8" in msg and "0xff" in msg and "offset 11" in msg


def test_latin1_file_is_rejected(tmp_path: Path) -> None:
    p = write(tmp_path / "vi.txt", "Việt".encode() + " café".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"vi\.txt.*0xe9 at offset 10"):
        read_corpus(p)


def test_binary_file(tmp_path: Path) -> None:
    p = write(tmp_path / "en.txt", "hi".encode("utf-16-le"))
    with pytest.raises(CorpusError, match=r"en\.txt.*NUL byte at offset 1"):
        read_corpus(p)


def test_empty_file(tmp_path: Path) -> None:
    for name, text in [("en.txt", ""), ("vi.txt", "  \n\n"), ("en.jsonl", "\n")]:
        p = write(tmp_path / name, text)
        with pytest.raises(CorpusError, match=rf"'{tmp_path}/{name}' contains no texts"):
            read_corpus(p)


def test_bad_options(tmp_path: Path) -> None:
    p = write(tmp_path / "en.txt", "x")
    with pytest.raises(ConfigError, match="format 'xml'"):
        read_corpus(p, fmt="xml")
    with pytest.raises(ConfigError, match="unit 'word'"):
        read_corpus(p, unit="word")
    q = write(tmp_path / "en.dat", "x")
    with pytest.raises(CorpusError, match=r"en\.dat.*pass a format"):
        read_corpus(q)
    assert read_corpus(q, fmt="text")["en"] == ["x"]
