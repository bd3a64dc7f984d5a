"""Put a study's section into docs/results.md in place of the section with the same heading,
leaving every other section as it is (a study that wrote the whole file would erase the others)."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"


def write_sections(text: str, path: Path = RESULTS) -> None:
    """Each `## heading` section of `text` replaces the same-named one in `path`, or is added at
    the end; whatever comes before the first `## ` of `text` (its `# title`) is dropped."""
    document = path.read_text() if path.is_file() else "# Results\n"
    for heading, body in sections(text):
        pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.M | re.S)
        block = f"## {heading}\n{body.rstrip()}\n\n"
        if pattern.search(document):
            document = pattern.sub(lambda _, new=block: new, document, count=1)
        else:
            document = document.rstrip() + "\n\n" + block
    path.write_text(document.rstrip() + "\n")


def sections(text: str) -> list[tuple[str, str]]:
    parts = re.split(r"^## (.+)\n", text, flags=re.M)
    return list(zip(parts[1::2], parts[2::2], strict=True))
