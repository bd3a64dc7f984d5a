"""The comparison as files: CSV (numbers, for a spreadsheet or pandas), Markdown (mean ± std,
for a results page) and JSON (everything, including each group's run folders)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from kta_cli.report.run_folder import write_text_atomic


def csv_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    columns = list(rows[0])
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: " ".join(v) if isinstance(v, list) else v for k, v in row.items()})
    return buffer.getvalue()


def markdown_text(header: list[str], body: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, body)]) + "\n"


def write_tables(
    run_dir: Path,
    stem: str,
    rows: list[dict[str, Any]],
    shown: tuple[list[str], list[list[str]]],
    extra: dict[str, Any],
) -> list[Path]:
    """<stem>.csv, <stem>.md and <stem>.json in the run folder; `shown` is the console table
    (header, cells) the Markdown repeats; `extra` goes into the JSON beside the rows."""
    paths = [run_dir / f"{stem}.{ext}" for ext in ("csv", "md", "json")]
    write_text_atomic(paths[0], csv_text(rows))
    shared = extra.get("shared")  # settings every group ran with, left out of the rows
    note = f"Every group also ran with: `{' '.join(shared)}`\n\n" if shared else ""
    write_text_atomic(paths[1], note + markdown_text(*shown))
    write_text_atomic(paths[2], json.dumps({**extra, "rows": rows}, indent=2) + "\n")
    return paths
