"""The run builder: a tiny run through TrainingRun leaves a complete run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from kta_cli import __version__
from kta_cli.data.loaders import InMemoryLoader
from kta_cli.engine.checkpoint import load_checkpoint
from kta_cli.engine.loop import LoopSettings
from kta_cli.engine.run import TrainingRun, checkpoint_metadata, load_resumable
from kta_cli.engine.runtime import Runtime
from kta_cli.engine.settings import OptimizerSettings, RunSettings, ScheduleSettings
from kta_cli.engine.tasks import ClassificationTask
from kta_cli.errors import KtaError
from kta_cli.report.run_folder import latest_run


def loader(n: int, shuffle: bool) -> InMemoryLoader:
    # Two separable classes: the sign of the first feature.
    generator = torch.Generator().manual_seed(n)
    images = torch.randn(n, 4, generator=generator)
    labels = (images[:, 0] > 0).long()
    return InMemoryLoader(images, labels, batch_size=8, shuffle=shuffle)


def tiny_run(run_dir: Path, epochs: int = 2) -> tuple[dict, nn.Module]:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    settings = RunSettings(
        loop=LoopSettings(epochs=epochs, device="cpu"),
        optimizer=OptimizerSettings(name="sgd", lr=0.1),
        schedule=ScheduleSettings(name="constant"),
        progress=False,
        tensorboard=False,
    )
    run = TrainingRun(
        command="train", run_dir=run_dir, runtime=Runtime(torch.device("cpu")), settings=settings
    )
    metadata = checkpoint_metadata(
        command="train",
        model_args={"name": "linear", "num_classes": 2},
        data={"name": "toy"},
        class_names=["neg", "pos"],
        config={"seed": 0},
        parent="outputs/train/earlier/best.ckpt",
    )
    metrics = run.fit(
        ClassificationTask(model),
        model=model,
        param_groups=[{"params": list(model.parameters()), "name": "all"}],
        train=loader(32, shuffle=True),
        val=loader(16, shuffle=False),
        test=loader(16, shuffle=False),
        metadata=metadata,
    )
    run.finish(metrics, hparams={"lr": 0.1}, title="test run")
    return metrics, model


def test_tiny_run_writes_metrics_and_checkpoints_with_provenance(tmp_path: Path) -> None:
    run_dir = tmp_path / "outputs" / "train" / "run1"
    run_dir.mkdir(parents=True)
    metrics, model = tiny_run(run_dir)

    written = json.loads((run_dir / "metrics.json").read_text())
    assert written["epochs_run"] == 2 and written["steps"] == 8  # 32 images / 8 per batch x 2
    assert written["lr_group0_all"] == pytest.approx(0.1)
    assert written["parameters"] == 10 and written["trainable_parameters"] == 10
    assert "best_val_acc" in written

    best, last = load_checkpoint(run_dir / "best.ckpt"), load_checkpoint(run_dir / "last.ckpt")
    for checkpoint in (best, last):
        assert checkpoint["parent"] == "outputs/train/earlier/best.ckpt"
        assert checkpoint["command"] == "train"
        assert checkpoint["kta_version"] == __version__
        assert "git_commit" in checkpoint
        assert checkpoint["config"] == {"seed": 0}
        assert checkpoint["class_names"] == ["neg", "pos"]
    assert "train_state" in last and "train_state" not in best
    assert last["train_state"]["loop"]["step"] == 8
    # the test split was scored with the best weights, which the model now holds
    assert torch.equal(model.weight.detach(), best["model"]["weight"])
    test = loader(16, shuffle=False)  # the same seeded test split, scored here by hand
    with torch.no_grad():
        by_hand = (model(test.images).argmax(1) == test.labels).float().mean().item()
    assert written["test_acc"] == pytest.approx(by_hand)
    assert latest_run(tmp_path / "outputs" / "train" / "latest") == run_dir.resolve()
    assert load_resumable(run_dir / "last.ckpt", "train")["train_state"]["loop"]["epoch"] == 2


def test_a_best_checkpoint_is_not_resumable(tmp_path: Path) -> None:
    run_dir = tmp_path / "outputs" / "train" / "run1"
    run_dir.mkdir(parents=True)
    tiny_run(run_dir, epochs=1)
    with pytest.raises(KtaError, match="no training state"):
        load_resumable(run_dir / "best.ckpt")
    with pytest.raises(KtaError, match="not a distill last.ckpt"):
        load_resumable(run_dir / "last.ckpt", "distill")
