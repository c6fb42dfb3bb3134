"""The identification corpus ``auto``: gettext where the catalogs give enough sentences in every
language of the run, else UDHR with a note."""

from __future__ import annotations

import pytest
from conftest import run_cli

from crane.data import builtin
from crane.data.builtin import (
    MIN_GETTEXT_SENTENCES,
    GettextUnavailable,
    resolve_identification_corpus,
)
from crane.data.corpus import Corpus
from crane.data.languages import parse_language_list


def _missing(part: str = "identify", **_: object) -> Corpus:
    raise GettextUnavailable("No gettext catalogs under '/nowhere'.")


def _sentences(n: int):
    def make(part: str = "identify", *, languages=None, **_: object) -> Corpus:
        langs = parse_language_list(languages or ["en", "zh", "vi"])
        return Corpus({lang: [f"{lang} {i}" for i in range(n)] for lang in langs}, {})

    return make


_present = _sentences(MIN_GETTEXT_SENTENCES)


def test_auto_is_gettext_where_the_catalogs_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtin, "gettext_corpus", _present)
    assert resolve_identification_corpus("auto") == ("gettext", None)
    assert resolve_identification_corpus("auto", ["en", "fr"]) == ("gettext", None)


def test_auto_falls_back_when_gettext_has_too_few_sentences(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(builtin, "gettext_corpus", _sentences(MIN_GETTEXT_SENTENCES - 1))
    spec, note = resolve_identification_corpus("auto", "en,sw")
    assert spec == "udhr"
    assert note is not None and f"only {MIN_GETTEXT_SENTENCES - 1}" in note and "en, sw" in note


def test_auto_asks_gettext_for_the_languages_of_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[object] = []

    def record(part: str = "identify", *, languages=None, **_: object) -> Corpus:
        asked.append(languages)
        if "sw" in (languages or []):
            raise GettextUnavailable("No sw catalogs under '/usr/share/locale'.")
        return _present(part, languages=languages)

    monkeypatch.setattr(builtin, "gettext_corpus", record)
    assert resolve_identification_corpus("auto", ["en", "de", "ja"]) == ("gettext", None)
    spec, note = resolve_identification_corpus("auto", ["en", "de", "ja", "sw"])
    assert spec == "udhr" and note is not None and "sw catalogs" in note
    assert asked == [["en", "de", "ja"], ["en", "de", "ja", "sw"]]


def test_auto_falls_back_to_udhr_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtin, "gettext_corpus", _missing)
    spec, note = resolve_identification_corpus("auto")
    assert spec == "udhr"
    assert note is not None and "/nowhere" in note and "UDHR" in note


@pytest.mark.parametrize("spec", ["udhr", "gettext:identify", "corpus/dir", "Auto"])
def test_other_specs_pass_through_untouched(spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtin, "gettext_corpus", _missing)  # never consulted
    assert resolve_identification_corpus(spec) == (spec, None)


def test_the_cli_shows_the_fallback_note_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(builtin, "gettext_corpus", _missing)
    # Gothic is not in UDHR: refused after the corpus is resolved, before any model loads
    code, _, err = run_cli(
        ["identify", "--model", "unused", "--langs", "en,got", "--out", str(tmp_path / "r")], capsys
    )
    assert code == 2
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "/nowhere" in notes[0] and "UDHR" in notes[0], err
