from __future__ import annotations

import pytest

from crane.data.languages import (
    ISO_639_1,
    ISO_639_2_TO_1,
    is_language_code,
    language_name,
    normalize_language,
    parse_language_list,
)
from crane.errors import CraneError, LanguageError


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("EN", "en"),
        ("en", "en"),
        (" vi ", "vi"),
        ("zh-hans", "zh-Hans"),
        ("ZH_HANT_tw", "zh-Hant-TW"),
        ("zh_CN", "zh-CN"),
        ("en-us", "en-US"),
        ("es-419", "es-419"),
        ("eng", "en"),
        ("cmn", "zh"),
        ("zho", "zh"),
        ("chi", "zh"),
        ("vie", "vi"),
        ("fra", "fr"),
        ("fre", "fr"),
        ("deu", "de"),
        ("ger", "de"),
        ("spa", "es"),
        ("jpn", "ja"),
        ("kor", "ko"),
        ("rus", "ru"),
        ("ara", "ar"),
        ("hin", "hi"),
        ("cmn_hans", "zh-Hans"),
        ("cmn-Hans", "zh-Hans"),
        ("zh-cmn-Hans", "zh-Hans"),
        ("eng_Latn", "en"),  # FLORES style: the default script is dropped
        ("vie_Latn", "vi"),
        ("arb_Arab", "ar"),
        ("sr-latn", "sr-Latn"),
        # codes without an ISO 639-1 equivalent keep their registered code (via langcodes)
        ("yue", "yue"),
        ("YUE_Hant", "yue-Hant"),
        ("fil", "fil"),
        ("zho_Hans", "zh-Hans"),
        ("zh-Hans", "zh-Hans"),
        ("pt-BR", "pt-BR"),
        ("quz", "quz"),
        ("ckb", "ckb"),
        ("zlm", "ms"),
        # deprecated codes become their successors; implied subtags are kept
        ("iw", "he"),
        ("mo", "ro"),
        ("prs", "fa-AF"),
        ("sh", "sr-Latn"),
    ],
)
def test_normalize_language(code: str, expected: str) -> None:
    assert normalize_language(code) == expected


def test_normalize_is_idempotent() -> None:
    for code in ["zh-Hans", "zh-Hant-TW", "en-US", "sr-Latn-RS", "vi"]:
        assert normalize_language(normalize_language(code)) == normalize_language(code)


def test_iso_table_is_complete() -> None:
    assert len(ISO_639_1) == 184
    assert all(len(k) == 2 and k.islower() for k in ISO_639_1)
    assert ISO_639_1["vi"] == "Vietnamese" and ISO_639_1["zh"] == "Chinese"
    # every three-letter code maps onto a code of the table
    assert set(ISO_639_2_TO_1.values()) == set(ISO_639_1)


@pytest.mark.parametrize(
    "bad", ["xx", "qqq", "qaa", "und", "mul", "zxx", "", "e", "english", "en--US", "en-€", "123"]
)
def test_unknown_codes_raise_language_error(bad: str) -> None:
    with pytest.raises(LanguageError) as err:
        normalize_language(bad)
    assert isinstance(err.value, CraneError)
    msg = str(err.value)
    assert repr(bad) in msg and "ISO 639-1" in msg and "zh-Hans" in msg
    assert "crane data show" in msg
    assert not is_language_code(bad)


def test_language_name() -> None:
    assert language_name("en") == "English"
    assert language_name("eng") == "English"
    assert language_name("zh-Hans") == "Chinese (Simplified)"
    assert language_name("zh-Hant-TW") == "Chinese (Traditional, TW)"
    assert language_name("vi") == "Vietnamese"
    assert language_name("yue") == "Chinese, Yue"  # named after its UDHR declaration
    assert language_name("yue-Hant") == "Chinese, Yue (Traditional)"
    assert language_name("got") == "got"  # no declaration: the code itself
    with pytest.raises(LanguageError):
        language_name("xx")


def test_parse_language_list() -> None:
    assert parse_language_list("en,zh,vi") == ["en", "zh", "vi"]
    assert parse_language_list("en, ZH ,vi,eng,zh") == ["en", "zh", "vi"]
    assert parse_language_list("vi en") == ["vi", "en"]
    assert parse_language_list(["cmn_hans", "zh-Hans"]) == ["zh-Hans"]
    for empty in ["", " , ,", []]:
        with pytest.raises(LanguageError, match="No languages"):
            parse_language_list(empty)
    with pytest.raises(LanguageError, match="'xx'"):
        parse_language_list("en,xx")
    assert parse_language_list(["en", "de", "ja", "sw", "yue", "fil", "sr-Latn", "zho_Hans"]) == [
        "en", "de", "ja", "sw", "yue", "fil", "sr-Latn", "zh-Hans",
    ]  # fmt: skip
