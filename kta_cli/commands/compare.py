"""`kta compare <runs | sweep folders | globs> [metrics=[...]]` and `kta compare --lineage <run>`.

Reads the config and hands plain arguments to kta_cli/ledger/ (runs.py: which folders and what
they hold; groups.py: seeds grouped, mean ± std; lineage.py: parent pointers followed).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.table import Table

from kta_cli.errors import KtaError
from kta_cli.ledger import groups as grouping
from kta_cli.ledger.lineage import Step, lineage
from kta_cli.ledger.lineage import as_rows as lineage_rows
from kta_cli.ledger.runs import read_runs, relative
from kta_cli.ledger.tables import write_tables
from kta_cli.report.reporter import console
from kta_cli.report.run_folder import current_run_dir, human_size, mark_latest


def run(cfg: DictConfig) -> dict[str, Any]:
    if cfg.lineage is not None:
        return show_lineage(str(cfg.lineage))
    metrics = list(cfg.metrics) if cfg.metrics is not None else None
    return compare([str(r) for r in cfg.runs], metrics, bool(cfg.descending))


def compare(specs: list[str], asked: list[str] | None, descending: bool) -> dict[str, Any]:
    runs, excluded = grouping.split_excluded(read_runs(specs))
    if not runs:
        raise KtaError(f"every run matched was {excluded[0].status}: nothing to average")
    metrics = grouping.chosen_metrics(runs, asked)
    groups = grouping.group_runs(runs, metrics, descending)
    shared, labels = grouping.short_labels(groups)
    header = ["#", "run group (seeds folded)", "n", *metrics]
    body = [
        [str(i), label, str(len(group.runs)),
         *(grouping.shown(group.summaries[m], len(group.runs)) for m in metrics)]
        for i, (group, label) in enumerate(zip(groups, labels, strict=True), start=1)
    ]  # fmt: skip
    if shared:
        console.print(f"every group also ran with: {' '.join(shared)}")
    counted = f"{plural(len(runs), 'run')} in {plural(len(groups), 'group')}"
    table = Table(title=f"kta compare: {counted}, mean ± std", header_style="bold")
    for name in header:
        left = name.startswith("run")
        table.add_column(name, justify="left" if left else "right", overflow="fold")
    for cells in body:
        table.add_row(*cells)
    console.print(table)
    skipped = [{"run": relative(r.path), "status": r.status} for r in excluded]
    for entry in skipped:
        console.print(f"excluded ({entry['status']}): {entry['run']}")
    rows = grouping.as_rows(groups, metrics)
    extra = {"metrics": metrics, "shared": shared, "runs": len(runs), "excluded": skipped}
    return finish("compare", rows, (header, body), extra)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def show_lineage(start: str) -> dict[str, Any]:
    steps = lineage(start)
    header = ["step", "command", "run", "accuracy", "params", "checkpoint", "latency ms"]
    body = [step_cells(i, step) for i, step in enumerate(steps, start=1)]
    table = Table(title=f"kta compare --lineage: {len(steps)} steps, oldest first",
                  header_style="bold")  # fmt: skip
    for name in header:
        left = name in ("command", "run")
        table.add_column(name, justify="left" if left else "right", overflow="fold")
    for cells in body:
        table.add_row(*cells)
    console.print(table)
    first = steps[0]
    if first.missing_parent:
        console.print(f"the chain starts at a checkpoint that is gone: {first.parent}")
    extra = {"lineage": start}
    return finish("lineage", lineage_rows(steps), (header, body), extra)


def step_cells(index: int, step: Step) -> list[str]:
    def text(name: str, form: Callable[[float], str]) -> str:
        value = step.figures[name]
        return "-" if value is None else form(value)

    return [
        str(index), step.record.command, relative(step.record.path),
        text("accuracy", "{:.4f}".format), text("parameters", "{:,.0f}".format),
        text("checkpoint_bytes", human_size), text("latency_ms", "{:.3f}".format),
    ]  # fmt: skip


def finish(
    stem: str, rows: list[dict[str, Any]], shown: tuple[list[str], list[list[str]]],
    extra: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    run_dir: Path = current_run_dir()
    paths = write_tables(run_dir, stem, rows, shown, extra)
    mark_latest(run_dir, "compare")
    console.print(f"tables: {', '.join(p.name for p in paths)} in {run_dir}")
    return {**extra, "rows": rows}
