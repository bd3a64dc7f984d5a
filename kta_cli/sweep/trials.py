"""Running trials: each is one ordinary run of the searched command in its own run folder,
reporting its validation metric every epoch so that the pruner can stop it early.

The command itself runs through `launch(overrides, run_dir)` (the dispatcher's path, given by
commands/sweep.py), so a trial is exactly the run a user gets by typing its overrides.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import Trial, TrialState

from kta_cli.engine.loop import Trainer, epoch_end_hook
from kta_cli.engine.runtime import stop_hint
from kta_cli.errors import KtaError, did_you_mean
from kta_cli.report.reporter import console
from kta_cli.report.run_folder import write_metrics
from kta_cli.sweep.space import Param, as_override
from kta_cli.sweep.study import make_sampler, next_trial, release

Launch = Callable[[list[str], Path], None]


@dataclass
class SweepPlan:
    command: str
    fixed: list[str]  # the command's own overrides, the same for every trial
    space: list[Param]
    metric: str
    budget: int
    timeout: float | None
    sampler: str
    seed: int
    folder: Path  # the sweep folder; trials in folder/<command>/trial_<n>


def epoch_metric(metric: str, record: dict[str, float]) -> str | None:
    """The per-epoch figure that tracks `metric`: best_val_acc and test_acc follow val_acc."""
    for key in (metric, metric.removeprefix("best_"), metric.replace("test_", "val_", 1)):
        if key in record:
            return key
    return None


class TrialPruning:
    """The epoch-end hook: report the epoch's value to the trial, and when the pruner says so,
    end the run after this epoch (it finishes as an early-stopped run: metrics.json, best.ckpt)."""

    def __init__(self, trial: Trial, metric: str) -> None:
        self.trial, self.metric = trial, metric
        self.reported = 0
        self.pruned_epoch: int | None = None

    def __call__(self, record: dict[str, float], trainer: Trainer) -> None:
        if self.pruned_epoch is not None:  # a command with several Trainers: stop each one
            trainer.state.stopped_early = True
            return
        key = epoch_metric(self.metric, record)
        if key is None or not math.isfinite(record[key]):
            return
        self.trial.report(record[key], self.reported)
        self.reported += 1
        more_to_come = trainer.state.epoch < trainer.settings.epochs
        if more_to_come and self.trial.should_prune():
            self.pruned_epoch = trainer.state.epoch
            trainer.state.stopped_early = True


def run_trials(study: optuna.Study, plan: SweepPlan, launch: Launch) -> int:
    """Trials until the study has `budget` or this process's timeout passes; how many ran here."""
    started, ran = time.monotonic(), 0
    while plan.timeout is None or time.monotonic() - started < plan.timeout:
        trial = next_trial(study, plan.budget)
        if trial is None:
            break
        if plan.sampler != "grid":  # seeded per trial: two workers draw different values
            study.sampler = make_sampler(plan.sampler, plan.seed + trial.number, plan.space)
        run_one(study, trial, plan, launch)
        ran += 1
    return ran


def run_one(study: optuna.Study, trial: Trial, plan: SweepPlan, launch: Launch) -> None:
    """One trial, told to the study whatever happens: complete, pruned or failed; stopped by a
    signal or Ctrl-C it gives its slot back (a rerun runs it again) and the sweep stops."""
    overrides = [as_override(p.key, p.suggest(trial)) for p in plan.space]
    run_dir = plan.folder / plan.command / f"trial_{trial.number:04d}"
    trial.set_user_attr("overrides", overrides)
    trial.set_user_attr("run_dir", str(run_dir))
    pruning = TrialPruning(trial, plan.metric)
    console.print(f"[bold]trial {trial.number}[/bold]: {' '.join(overrides)}")
    try:
        hint = f"trial {trial.number} gives its slot back to the study"
        with epoch_end_hook(pruning), stop_hint(hint):
            launch([*plan.fixed, *overrides], run_dir)
        value = read_metric(run_dir, plan.metric, plan.command)
    except (KeyboardInterrupt, SystemExit):
        release(study, trial, "interrupted")
        raise
    except Exception as error:
        if isinstance(error, MetricMissing) or is_config_error(error):
            release(study, trial, "config error")  # a mistake every trial would repeat
            raise
        message = str(error).splitlines()[0] if str(error) else repr(error)
        trial.set_user_attr("error", message)
        study.tell(trial, state=TrialState.FAIL)  # a diverged lr, say: the search goes on
        console.print(f"[red]trial {trial.number} failed[/red]: {message}")
        return
    if pruning.pruned_epoch is not None:
        mark_run(run_dir, "pruned", pruned_at_epoch=pruning.pruned_epoch)
        study.tell(trial, state=TrialState.PRUNED)
        console.print(f"trial {trial.number} pruned after epoch {pruning.pruned_epoch}")
        return
    mark_run(run_dir, "complete")
    study.tell(trial, value)
    console.print(f"trial {trial.number}: {plan.metric} {value:.4g}")


class MetricMissing(KtaError):
    """sweep.metric is not among the metrics the command writes."""


def is_config_error(error: BaseException) -> bool:
    """Hydra or OmegaConf refused the trial's overrides (a value of the wrong type, say)."""
    return type(error).__module__.startswith(("hydra", "omegaconf"))


def read_metric(run_dir: Path, metric: str, command: str) -> float:
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise KtaError(f"kta {command} wrote no metrics.json in {run_dir}; nothing to optimise")
    metrics: dict[str, Any] = json.loads(path.read_text())
    numbers = [k for k, v in metrics.items() if isinstance(v, (int, float))]
    if metric not in numbers:
        raise MetricMissing(did_you_mean(metric, numbers, what=f"sweep.metric for kta {command}"))
    value = float(metrics[metric])
    if not math.isfinite(value):
        raise KtaError(f"{metric} is {value} in {path}")
    return value


def mark_run(run_dir: Path, status: str, **extra: Any) -> None:
    """`status` (complete | pruned) in the trial's metrics.json, beside the command's metrics."""
    path = run_dir / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    write_metrics(run_dir, {"status": status, **extra, **metrics})
