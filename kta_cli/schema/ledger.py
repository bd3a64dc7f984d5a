"""`kta compare` schema: which runs, which metrics, and the lineage of one run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CompareSchema:
    runs: list[str] = field(default_factory=list)  # run folders, sweep folders, globs
    metrics: list[str] | None = None  # null: each command's main metrics (test_acc, ...)
    descending: bool = True  # sort by the first metric, highest first (false: lowest first)
    lineage: str | None = None  # a run folder or checkpoint: the chain it came from
