"""The Optuna study a sweep works on: its storage (a journal file several processes share, or a
database URL), sampler and pruner, and the trial budget every worker counts against.

Several `kta sweep` processes on one storage ask trials from the same study; the budget is the
study's, so a rerun continues it and two workers never run more trials than asked between them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import Trial, TrialState

from kta_cli.errors import KtaError
from kta_cli.sweep.space import Param

# A trial that does not use up the budget: stopped by a signal (its slot runs again on the next
# start) or asked by two workers at the same moment for the last slot (see next_trial).
UNCOUNTED = "kta_uncounted"


def open_storage(spec: str | None, sweep_dir: Path) -> BaseStorage:
    """A journal file (default sweep_dir/study.journal; any path) or a database URL."""
    if spec and "://" in spec:
        try:
            return RDBStorage(spec)
        except Exception as error:  # sqlalchemy's errors: bad URL, unreachable server, ...
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise KtaError(f"sweep.storage={spec} cannot be opened: {reason}") from None
    path = Path(spec) if spec else sweep_dir / "study.journal"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return JournalStorage(JournalFileBackend(str(path)))
    except OSError as error:
        raise KtaError(f"sweep.storage={path} cannot be opened: {error}") from None


class BudgetedGridSampler(optuna.samplers.GridSampler):
    """The grid without its own stop (Study.stop works inside study.optimize only, and a sweep
    asks and tells); the sweep's budget is capped at the grid's size instead."""

    def after_trial(self, study: optuna.Study, trial: Any, state: TrialState, values: Any) -> None:
        return None


def make_sampler(name: str, seed: int, space: list[Param]) -> optuna.samplers.BaseSampler:
    if name == "grid":
        grid = {param.key: param.grid() for param in space}
        return BudgetedGridSampler(grid, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(name: str, *, startup: int, warmup: int) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def load_study(
    *,
    storage: BaseStorage,
    name: str,
    direction: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    provenance: dict[str, Any],
) -> optuna.Study:
    """Create the study or continue it; refuse to continue one made by another command line
    (another command, other fixed overrides, another space): its trials would not compare."""
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise KtaError(
            f"study {name} was created to {study.direction.name.lower()}, not to {direction}; "
            "use sweep.name=<new> (and sweep.dir) to start another"
        )
    saved = study.user_attrs.get("provenance")
    if saved is None:
        for key, value in provenance.items():
            study.set_user_attr(key, value)
        study.set_user_attr("provenance", True)
        return study
    for key, value in provenance.items():
        if study.user_attrs.get(key) != value:
            raise KtaError(
                f"study {name} was started with {key} {study.user_attrs.get(key)!r}, not "
                f"{value!r}; use the same command line to continue it, or sweep.name=<new> "
                "(and sweep.dir) to start another"
            )
    return study


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that use up the budget: finished, failed, pruned, and running elsewhere."""
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(UNCOUNTED)]


def next_trial(study: optuna.Study, budget: int) -> Trial | None:
    """A new trial while the study has fewer than `budget`, else None.

    Counting and asking are two steps, so two workers may ask for the last slot together; the
    storage numbers trials atomically, and the one whose trial comes later gives its slot back.
    """
    if len(counted(study)) >= budget:
        return None
    trial = study.ask()
    ahead = [t for t in counted(study) if t.number < trial.number]
    if len(ahead) >= budget:
        release(study, trial, "surplus")
        return None
    return trial


def release(study: optuna.Study, trial: Trial, reason: str) -> None:
    """End `trial` as failed without using up the budget."""
    trial.set_user_attr(UNCOUNTED, reason)
    study.tell(trial, state=TrialState.FAIL)
