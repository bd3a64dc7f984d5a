"""`kta sweep` schema: the search space (a configs/sweep/ preset) and how Optuna searches it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kta_cli.schema.checks import non_negative, one_of, positive


@dataclass
class SweepOptions:
    # {dotted config key: {type: float|int|categorical, low, high, log, step, choices}}
    params: dict[str, Any] = field(default_factory=dict)
    metric: str = "best_val_acc"  # a key of the trial command's metrics.json
    direction: str = one_of("maximize", "minimize")
    trials: int = positive(10)  # in the whole study, over every worker and every rerun
    timeout: float | None = positive(None)  # seconds this process asks new trials for
    sampler: str = one_of("tpe", "random", "grid")
    seed: int = 0
    pruner: str = one_of("median", "hyperband", "none")
    pruner_startup: int = non_negative(2)  # trials run to the end before the median pruner prunes
    pruner_warmup: int = non_negative(0)  # epochs of each trial the median pruner never prunes
    storage: str | None = None  # null: a journal file in the sweep folder; or sqlite:///x.db
    name: str | None = None  # the study; null: <command>-<space file>
    dir: str | None = None  # the sweep folder; null: outputs/sweep/<name>


@dataclass
class SweepSchema:
    sweep: SweepOptions = field(default_factory=SweepOptions)
