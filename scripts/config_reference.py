"""Write docs/config.md, the configuration reference, from crane/study/config.py.

    python scripts/config_reference.py          # write docs/config.md
    python scripts/config_reference.py --check  # exit 1 when docs/config.md is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from crane.study.reference import config_reference

PAGE = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def main(argv: list[str]) -> int:
    text = config_reference()
    if "--check" in argv:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            print(f"{PAGE} is out of date; run: python scripts/config_reference.py")
            return 1
        print(f"{PAGE} is up to date")
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
