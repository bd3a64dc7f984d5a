"""A study writing docs/results.md replaces its own sections and leaves the other studies'."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from docs_section import write_sections  # noqa: E402


def test_a_study_replaces_its_section_and_keeps_the_others(tmp_path: Path) -> None:
    results = tmp_path / "results.md"
    results.write_text("# Results\n\n## Transfer\n\nold table\n\n## Few-shot\n\nkept\n")
    write_sections("# Results\n\n## Transfer\n\nnew table\n\n## Sweep study\n\nadded\n", results)
    assert results.read_text() == (
        "# Results\n\n## Transfer\n\nnew table\n\n## Few-shot\n\nkept\n\n## Sweep study\n\nadded\n"
    )
