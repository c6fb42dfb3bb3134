"""The identification corpus ``auto``: gettext where the catalogs exist, else UDHR with a note."""

from __future__ import annotations

import pytest
from conftest import run_cli

from crane.data import builtin
from crane.data.builtin import GettextUnavailable, resolve_identification_corpus
from crane.data.corpus import Corpus


def _missing(part: str = "identify", **_: object) -> Corpus:
    raise GettextUnavailable("No gettext catalogs under '/nowhere'.")


def _present(part: str = "identify", **_: object) -> Corpus:
    return Corpus({"en": ["a"], "zh": ["b"], "vi": ["c"]}, {"source": "gettext"})


def test_auto_is_gettext_where_the_catalogs_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtin, "gettext_corpus", _present)
    assert resolve_identification_corpus("auto") == ("gettext", None)


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
    # French is not in UDHR: refused after the corpus is resolved, before any model loads
    code, _, err = run_cli(
        ["identify", "--model", "unused", "--langs", "en,fr", "--out", str(tmp_path / "r")], capsys
    )
    assert code == 2
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "/nowhere" in notes[0] and "UDHR" in notes[0], err
