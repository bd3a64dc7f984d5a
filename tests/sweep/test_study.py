"""The study's budget: counted over every worker, a slot given back when two workers ask for
the last one together, and the storage a user names."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from kta_cli.errors import KtaError
from kta_cli.sweep import study as study_module
from kta_cli.sweep.study import UNCOUNTED, counted, load_study, next_trial, open_storage, release


def new_study(tmp_path: Path, **provenance: object) -> optuna.Study:
    return load_study(
        storage=open_storage(None, tmp_path),
        name="s",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.NopPruner(),
        provenance=provenance or {"command": "train"},
    )


def test_the_budget_counts_trials_of_every_worker(tmp_path: Path) -> None:
    study = new_study(tmp_path)
    elsewhere = study.ask()  # another worker's trial, still running
    mine = next_trial(study, 2)
    assert mine is not None and mine.number == elsewhere.number + 1
    assert next_trial(study, 2) is None  # two counted (one running elsewhere), budget two
    release(study, elsewhere, "interrupted")  # stopped by a signal: its slot runs again
    assert next_trial(study, 2) is not None


def test_the_later_of_two_askers_for_the_last_slot_gives_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = new_study(tmp_path)
    first = study.ask()  # the other worker asked between this worker's count and its ask
    real_counted = study_module.counted
    calls: list[int] = []

    def stale_first(study: optuna.Study) -> list:  # the count taken before `first` existed
        calls.append(1)
        return [] if len(calls) == 1 else real_counted(study)

    monkeypatch.setattr(study_module, "counted", stale_first)
    assert next_trial(study, 1) is None
    surplus = study.get_trials()[-1]
    assert surplus.number == first.number + 1 and surplus.state == TrialState.FAIL
    assert surplus.user_attrs[UNCOUNTED] == "surplus"
    assert [t.number for t in counted(study)] == [first.number]


def test_a_study_refuses_another_command_line(tmp_path: Path) -> None:
    new_study(tmp_path, command="train", fixed=["model=test_resnet"])
    new_study(tmp_path, command="train", fixed=["model=test_resnet"])  # continues
    with pytest.raises(KtaError, match="was started with fixed \\['model=test_resnet'\\]"):
        new_study(tmp_path, command="train", fixed=["model=resnet18"])


def test_storages_that_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(KtaError, match="cannot be opened"):
        open_storage(str(tmp_path / "file" / "study.journal"), tmp_path)  # under a file
    with pytest.raises(KtaError, match="sweep.storage=nosuch://x cannot be opened"):
        open_storage("nosuch://x", tmp_path)
    assert open_storage(f"sqlite:///{tmp_path / 'study.db'}", tmp_path) is not None
