"""Runs that differ only in seed, grouped: one row per group, mean ± sample std and n of each
metric asked for, sorted by the first.

Written by hand: a dozen lines of `statistics` over JSON records; pandas would be a new heavy
dependency for a groupby.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from kta_cli.errors import KtaError, did_you_mean
from kta_cli.ledger.runs import RunRecord, relative

# The figure a command's runs are usually judged by, when metrics=[...] is not given.
MAIN_METRICS: dict[str, tuple[str, ...]] = {
    "train": ("test_acc",),
    "distill": ("test_acc", "gap_closure"),
    "prune": ("test_acc_after_finetune", "params_ratio"),
    "quantize": ("acc_after", "file_ratio"),
    "eval": ("acc",),
    "adapt": ("test_acc",),
}
FALLBACK_METRICS = ("test_acc", "acc")


@dataclass
class Summary:
    mean: float
    std: float | None  # sample std (n - 1); None for a single run
    n: int


@dataclass
class Group:
    command: str
    overrides: list[str]
    runs: list[RunRecord]
    summaries: dict[str, Summary | None] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return " ".join([self.command, *self.overrides])

    @property
    def seeds(self) -> list[str]:
        return [",".join(f"{k}={v}" for k, v in sorted(r.seeds.items())) or "-" for r in self.runs]


def short_labels(groups: list[Group]) -> tuple[list[str], list[str]]:
    """(the overrides every group shares, each group's label without them): a table whose rows
    differ in one setting shows that setting, not ten identical ones and a teacher's path."""
    if len(groups) < 2:
        return [], [group.label for group in groups]
    shared = [o for o in groups[0].overrides if all(o in g.overrides for g in groups[1:])]
    labels = [" ".join([g.command, *(o for o in g.overrides if o not in shared)]) for g in groups]
    return shared, labels


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def numeric_metrics(runs: list[RunRecord]) -> list[str]:
    return sorted({k for r in runs for k, v in r.metrics.items() if is_number(v)})


def chosen_metrics(runs: list[RunRecord], asked: list[str] | None) -> list[str]:
    """The metrics asked for (each present in some run), else each command's main ones."""
    present = numeric_metrics(runs)
    if asked:
        for name in asked:
            if name not in present:
                raise KtaError(did_you_mean(name, present, what="metric") + " in these runs")
        return list(asked)
    chosen: list[str] = []
    for command in dict.fromkeys(r.command for r in runs):
        for name in MAIN_METRICS.get(command, FALLBACK_METRICS):
            if name in present and name not in chosen:
                chosen.append(name)
    if not chosen:
        raise KtaError("these runs have none of the usual metrics; name them, e.g. "
                       f"metrics=[{','.join(present[:2])}]")  # fmt: skip
    return chosen


def summarise(values: list[float]) -> Summary | None:
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else None
    return Summary(statistics.fmean(values), std, len(values))


def group_runs(runs: list[RunRecord], metrics: list[str], descending: bool = True) -> list[Group]:
    """Groups in order of the first metric's mean (best first when `descending`); groups without
    it last."""
    groups: dict[tuple[str, ...], Group] = {}
    for run in runs:
        key = run.group_key
        groups.setdefault(key, Group(key[0], list(key[1:]), [])).runs.append(run)
    for group in groups.values():
        for name in metrics:
            values = [r.metrics[name] for r in group.runs if is_number(r.metrics.get(name))]
            group.summaries[name] = summarise(values)

    def order(group: Group) -> tuple[bool, float]:
        first = group.summaries[metrics[0]]
        if first is None:
            return (True, 0.0)
        return (False, -first.mean if descending else first.mean)

    return sorted(groups.values(), key=order)


def split_excluded(runs: list[RunRecord]) -> tuple[list[RunRecord], list[RunRecord]]:
    kept = [r for r in runs if r.status == "ok"]
    return kept, [r for r in runs if r.status != "ok"]


def as_rows(groups: list[Group], metrics: list[str]) -> list[dict[str, Any]]:
    """Plain rows for CSV and JSON: one per group, `<metric>_mean/_std/_n` per metric."""
    rows = []
    for group in groups:
        row: dict[str, Any] = {"command": group.command, "overrides": " ".join(group.overrides),
                               "n": len(group.runs), "seeds": " ".join(group.seeds)}  # fmt: skip
        for name in metrics:
            summary = group.summaries[name]
            row[f"{name}_mean"] = summary.mean if summary else None
            row[f"{name}_std"] = summary.std if summary else None
            row[f"{name}_n"] = summary.n if summary else 0
        row["runs"] = [relative(r.path) for r in group.runs]
        rows.append(row)
    return rows


def number(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.4f}"


def shown(summary: Summary | None, runs: int) -> str:
    """'0.7350 ± 0.0150'; a single run shows no std; (n=2) when some runs lack the metric."""
    if summary is None:
        return "-"
    text = number(summary.mean)
    if summary.std is not None:
        text += f" ± {number(summary.std)}"
    return text + (f" (n={summary.n})" if summary.n != runs else "")
