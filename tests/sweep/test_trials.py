"""Trials told to the study whatever happens to the run: a fake launch stands in for the
command (it writes metrics.json as a run would), so these need no training."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from kta_cli.engine.runtime import exit_stopped
from kta_cli.engine.stopping import Interrupted
from kta_cli.errors import KtaError
from kta_cli.sweep.space import parse_space
from kta_cli.sweep.study import UNCOUNTED, counted, load_study, open_storage
from kta_cli.sweep.trials import SweepPlan, TrialPruning, run_trials


def plan_in(folder: Path, budget: int = 3) -> SweepPlan:
    return SweepPlan(
        command="train",
        fixed=["model=test_resnet"],
        space=parse_space({"optim.lr": {"type": "float", "low": 0.01, "high": 1.0}}),
        metric="best_val_acc",
        budget=budget,
        timeout=None,
        sampler="random",
        seed=0,
        folder=folder,
    )


def study_in(folder: Path) -> optuna.Study:
    return load_study(
        storage=open_storage(None, folder),
        name="s",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.NopPruner(),
        provenance={"command": "train"},
    )


def writes(value: float):
    def launch(overrides: list[str], run_dir: Path) -> None:
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_text(json.dumps({"best_val_acc": value}))

    return launch


def test_an_interrupted_trial_gives_its_slot_back_and_keeps_the_finished(tmp_path: Path):
    study, plan = study_in(tmp_path), plan_in(tmp_path)
    assert run_trials(study, plan_in(tmp_path, budget=1), writes(0.5)) == 1

    def stopped(overrides: list[str], run_dir: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trials(study, plan, stopped)
    states = [(t.state, t.user_attrs.get(UNCOUNTED)) for t in study.get_trials()]
    assert states == [(TrialState.COMPLETE, None), (TrialState.FAIL, "interrupted")]
    assert run_trials(study_in(tmp_path), plan, writes(0.7)) == 2  # the rerun continues
    assert len(counted(study)) == 3 and study.best_value == 0.7
    done = json.loads((tmp_path / "train" / "trial_0000" / "metrics.json").read_text())
    assert done["status"] == "complete" and done["best_val_acc"] == 0.5


def test_a_stopped_trial_says_its_slot_goes_back_not_how_to_resume_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def stopped(overrides: list[str], run_dir: Path) -> None:
        stop = Interrupted("SIGTERM", epoch=1, step=7)
        stop.checkpoint = run_dir / "last.ckpt"
        exit_stopped("train", stop)  # what a training run does when a signal stops it

    with pytest.raises(SystemExit):
        run_trials(study_in(tmp_path), plan_in(tmp_path), stopped)
    out = " ".join(capsys.readouterr().out.split())
    assert "stopped by SIGTERM in epoch 2 after step 7: trial 0 gives its slot back" in out
    assert "trainer.resume" not in out  # the sweep, not the trial, is what the user reruns


def test_a_failed_run_uses_its_slot_and_the_search_goes_on(tmp_path: Path) -> None:
    study, calls = study_in(tmp_path), []

    def diverges_once(overrides: list[str], run_dir: Path) -> None:
        calls.append(overrides)
        if len(calls) == 1:
            raise KtaError("loss became nan at epoch 0 step 3")
        writes(0.5)(overrides, run_dir)

    assert run_trials(study, plan_in(tmp_path, budget=2), diverges_once) == 2
    first, second = study.get_trials()
    assert first.state == TrialState.FAIL and "loss became nan" in first.user_attrs["error"]
    assert second.state == TrialState.COMPLETE
    assert calls[0][0] == "model=test_resnet" and calls[0][1].startswith("optim.lr=")


def test_a_missing_metric_stops_the_sweep_without_using_a_slot(tmp_path: Path) -> None:
    study = study_in(tmp_path)
    plan = plan_in(tmp_path)
    plan.metric = "best_val_acc_"
    with pytest.raises(KtaError, match="did you mean 'best_val_acc'"):
        run_trials(study, plan, writes(0.5))
    assert counted(study) == []


def test_pruning_ends_the_run_after_the_epoch_and_never_on_the_last() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(0.5))
    trial = study.ask()
    pruning = TrialPruning(trial, "best_val_acc")
    trainer = SimpleNamespace(
        state=SimpleNamespace(epoch=1, stopped_early=False), settings=SimpleNamespace(epochs=3)
    )
    pruning({"val_acc": 0.9}, trainer)
    assert not trainer.state.stopped_early and pruning.pruned_epoch is None
    trainer.state.epoch = 2
    pruning({"val_acc": 0.1}, trainer)  # below the threshold: stop after this epoch
    assert trainer.state.stopped_early and pruning.pruned_epoch == 2
    assert study.trials[0].intermediate_values == {0: 0.9, 1: 0.1}
    last = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(0.5)).ask()
    final_epoch = SimpleNamespace(
        state=SimpleNamespace(epoch=3, stopped_early=False), settings=SimpleNamespace(epochs=3)
    )
    TrialPruning(last, "val_acc")({"val_acc": 0.1}, final_epoch)
    assert not final_epoch.state.stopped_early  # nothing left to save by stopping
