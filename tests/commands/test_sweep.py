"""`kta sweep` end to end on test_resnet at 16 px: a pruned trial, two workers on one journal
file, best.yaml composing the best trial's config again, mistakes as one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from kta_cli.cli import main
from kta_cli.overrides import config_dir, rewrite_group_choices
from tests.settings import TINY

# 5 images a class in batches of 10 at a constant rate: 5 updates an epoch, enough for lr=0.5 to
# blow the validation loss up after epoch 1 while 1e-7 and 1e-8 leave the model where it began.
FAST = [
    *TINY,
    "data.train_per_class=5",
    "data.batch_size=10",
    "sched=constant",
    "trainer.threads=1",
]
BAD_LR_SPACE = "params:\n  optim.lr: [0.5, 1.0e-7, 1.0e-8]\nmetric: val_loss\ndirection: minimize\n"


def sweep_in(folder: Path, *args: str) -> int:
    previous = Path.cwd()
    os.chdir(folder)
    try:
        main(["sweep", *args])
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        os.chdir(previous)
    return 0


@pytest.fixture(scope="module")
def pruned_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three grid trials of 2 epochs; the median pruner (1 start-up trial) judges from epoch 1.
    Grid order with sweep.seed=0: 1e-8, 1e-7, then 0.5, whose val_loss is far above the median."""
    folder = tmp_path_factory.mktemp("sweep")
    (folder / "space.yaml").write_text(BAD_LR_SPACE)
    args = [
        "train",
        "sweep=space.yaml",
        "sweep.sampler=grid",
        "sweep.pruner_startup=1",
        "sweep.dir=out",
        *FAST,
        "trainer.epochs=2",
    ]
    assert sweep_in(folder, *args) == 0
    assert sweep_in(folder, *args) == 0  # the same command again: the study is complete
    return folder / "out"


def test_the_pruner_stops_the_bad_trial_after_one_epoch(pruned_sweep: Path) -> None:
    rows = list(csv_rows(pruned_sweep / "trials.csv"))
    assert len(rows) == 3  # the second command ran no trial again
    # 1e-7 and 1e-8 end epoch 1 with the same val_loss to a few ulps: trial 1 may go either way
    assert rows[0]["state"] == "complete" and rows[2]["state"] == "pruned", rows
    assert float(rows[2]["optim.lr"]) == 0.5
    pruned = json.loads((pruned_sweep / "train" / "trial_0002" / "metrics.json").read_text())
    assert pruned["status"] == "pruned" and pruned["epochs_run"] == 1
    done = json.loads((pruned_sweep / "train" / "trial_0000" / "metrics.json").read_text())
    assert done["status"] == "complete" and done["epochs_run"] == 2
    for name in ("trials.md", "history.png", "parallel.png", "sweep.html", "importances.yaml"):
        assert (pruned_sweep / name).stat().st_size > 0, name
    assert list((pruned_sweep / "tensorboard").rglob("events.out.tfevents*"))


def csv_rows(path: Path):
    import csv

    with path.open() as handle:
        yield from csv.DictReader(handle)


def test_best_yaml_composes_the_best_trials_config(pruned_sweep: Path) -> None:
    best = yaml.safe_load((pruned_sweep / "best.yaml").read_text())
    assert best["run"].startswith("kta train ") and best["trial"] in (0, 1)
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        again = compose("train", overrides=rewrite_group_choices("train", best["overrides"]))
    run_dir = pruned_sweep / "train" / f"trial_{best['trial']:04d}"
    assert Path(best["run_dir"]) == Path("out") / run_dir.relative_to(pruned_sweep)
    trial_config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert OmegaConf.to_container(again) == OmegaConf.to_container(trial_config)
    assert again.optim.lr == best["params"]["optim.lr"]


def test_two_workers_on_one_journal_run_the_asked_trials_once(tmp_path: Path) -> None:
    args = [
        "sweep",
        "train",
        "sweep.sampler=random",
        "sweep.pruner=none",
        "sweep.trials=3",
        "sweep.dir=shared",
        *FAST,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "kta_cli", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        assert worker.wait(timeout=240) == 0, worker.stderr.read()
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "shared" / "study.journal"))
    )
    study = optuna.load_study(study_name="train-lr", storage=storage)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 3
    assert len({t.user_attrs["run_dir"] for t in complete}) == 3
    assert len({t.params["optim.lr"] for t in complete}) == 3  # seeded per trial, not per worker
    assert len(list((tmp_path / "shared" / "train").glob("trial_*"))) == 3


@pytest.mark.parametrize(
    ("space", "args", "expected"),
    [
        ("params:\n  optim.lrr: {type: float, low: 0.1, high: 1}\n", [], "did you mean 'optim.lr'"),
        ("params:\n  optim.lr: {type: float, low: 0.1, high: 0.01}\n", [], "inverted range"),
        ("params:\n  optim.lr: {type: float, low: 0.1, high: 0.1}\n", [], "empty range"),
        ("params:\n  optim.lr: {type: flaot, low: 0.1, high: 1}\n", [], "did you mean 'float'"),
        ("params:\n  strategy: [full, frezee]\n", [], "did you mean 'freeze'"),
        (
            "params:\n  optim.lr: [0.1]\n",
            ["sweep.storage=sqlite:////no/such/dir/x.db"],
            "sweep.storage=sqlite:////no/such/dir/x.db cannot be opened",
        ),
        ("params:\n  optim.lr: [0.1]\n", ["sweep.storage=."], "cannot be opened"),
    ],
)
def test_bad_input_is_one_line(kta, tmp_path: Path, space: str, args: list[str], expected: str):
    (tmp_path / "space.yaml").write_text(space)
    result = kta("sweep", "train", "sweep=space.yaml", *args, *FAST)
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.err


def test_unknown_command_space_and_keys_are_one_line(kta) -> None:
    assert "did you mean 'train'" in kta("sweep", "trian").err
    assert "did you mean 'optim.lr'" in kta("sweep", "train", "optim.lrr=0.1").err
    assert "did you mean 'sweep.trials'" in kta("sweep", "train", "sweep.trails=3").err
    result = kta("sweep", "train", "sweep=lrr")
    assert result.code == 2 and "did you mean 'lr'" in result.err


def test_a_metric_the_command_does_not_write_stops_after_the_first_trial(kta) -> None:
    result = kta("sweep", "train", "sweep.metric=val_accc", "sweep.trials=3", *FAST)
    assert result.code == 2 and "did you mean 'val_acc'" in result.err.strip().splitlines()[-1]
    assert len(list(Path("outputs/sweep/train-lr/train").glob("trial_*"))) == 1
