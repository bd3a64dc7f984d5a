"""Stopping and resuming: final weights bit-identical to an uninterrupted run on CPU."""

from pathlib import Path

import pytest
import torch

from kta_cli.engine.checkpoint import load_checkpoint
from kta_cli.engine.tasks import ClassificationTask
from tests.conftest import TINY

# Dropout and noise augmentation draw random numbers every step; shuffling depends on the epoch.
RUN = [
    *TINY,
    "trainer.epochs=2",
    "model.drop_rate=0.2",
    "data.augment.noise_std=0.1",
    "data.augment.crop_padding=2",
    "sched=cosine",
]


def weights(run_dir: Path, name: str = "last.ckpt") -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / name)["model"]


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def interrupt_at(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the training step number `step` raise KeyboardInterrupt, as Ctrl-C would."""
    original = ClassificationTask.forward
    calls = {"n": 0}

    def forward(self, batch):
        if self.training:
            calls["n"] += 1
            if calls["n"] == step:
                raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(ClassificationTask, "forward", forward)


def test_ctrl_c_then_resume_matches_uninterrupted_run(kta, monkeypatch):
    uninterrupted = kta("train", *RUN)
    assert uninterrupted.code == 0, uninterrupted.err
    reference = uninterrupted.run_dir()

    with monkeypatch.context() as patch:
        interrupt_at(27, patch)  # inside the second epoch (20 steps an epoch)
        stopped = kta("train", *RUN)
    assert stopped.code == 130
    assert "resume" in stopped.out
    stopped_dir = _runs(stopped)[-1]  # an interrupted run does not move `latest`
    state = load_checkpoint(stopped_dir / "last.ckpt")["train_state"]["loop"]
    assert state["step"] == 26 and state["epoch"] == 1

    resumed = kta("train", *RUN, f"trainer.resume={stopped_dir}")
    assert resumed.code == 0, resumed.err
    assert_identical(weights(reference), weights(resumed.run_dir()))
    assert resumed.metrics()["epochs_run"] == 2
    assert load_checkpoint(resumed.run_dir() / "best.ckpt")["parent"].endswith("last.ckpt")


def test_max_steps_then_resume_auto_matches(kta):
    reference = kta("train", *RUN)
    stopped = kta("train", *RUN, "trainer.max_steps=13")
    assert stopped.code == 0
    assert load_checkpoint(stopped.run_dir() / "last.ckpt")["train_state"]["loop"]["step"] == 13
    resumed = kta("train", *RUN, "trainer.resume=auto")
    assert resumed.code == 0, resumed.err
    assert_identical(weights(_runs(reference)[0]), weights(resumed.run_dir()))


def _runs(result) -> list[Path]:
    """Run folders in the order they were made."""
    return sorted(p for p in (result.cwd / "outputs" / "train").iterdir() if p.name != "latest")


def test_nan_loss_stops_with_one_line_and_keeps_best(kta, monkeypatch):
    original = ClassificationTask.forward
    calls = {"n": 0}

    def forward(self, batch):
        out = original(self, batch)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 25:  # second epoch: best.ckpt of the first exists
                out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(ClassificationTask, "forward", forward)
    result = kta("train", *RUN)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1 and "loss became nan" in result.err
    run = _runs(result)[-1]
    best = load_checkpoint(run / "best.ckpt")
    assert best["metrics"]["best_epoch"] == 1  # epochs count from 1, as printed
    assert all(torch.isfinite(t).all() for t in best["model"].values() if t.is_floating_point())


def test_multitask_learned_weights_resume_exactly(kta):
    """The learned task weights (task.log_vars) travel in last.ckpt's train_state['task']."""
    run = [*TINY, "trainer.epochs=2", "task=multitask", "task.weighting=uncertainty"]
    reference = kta("train", *run)
    assert reference.code == 0, reference.err
    stopped = kta("train", *run, "trainer.max_steps=27")
    assert stopped.code == 0, stopped.err
    task = load_checkpoint(stopped.run_dir() / "last.ckpt")["train_state"]["task"]
    assert task["log_vars"].abs().sum() > 0  # learned, not the initial zeros
    resumed = kta("train", *run, "trainer.resume=auto")
    assert resumed.code == 0, resumed.err
    assert_identical(weights(_runs(reference)[0]), weights(resumed.run_dir()))


def test_resume_with_other_epochs_is_refused_in_one_line(kta):
    stopped = kta("train", *RUN, "trainer.max_steps=3")
    assert stopped.code == 0, stopped.err
    resumed = kta("train", *RUN, "trainer.resume=auto", "trainer.epochs=3")
    assert resumed.code == 2
    assert len(resumed.err.strip().splitlines()) == 1
    assert "trainer.epochs=3" in resumed.err and "trainer.epochs=2" in resumed.err
