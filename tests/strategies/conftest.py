"""Fixtures for strategy tests: a tiny timm model, tiny data, a short real training loop, and
one source checkpoint trained once per session through the real CLI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import timm
import torch

from kta_cli.cli import main
from kta_cli.data.loaders import InMemoryLoader
from kta_cli.engine.loop import LoopSettings, Trainer
from kta_cli.engine.optim import build_optimizer, build_scheduler
from kta_cli.engine.tasks import ClassificationTask
from kta_cli.report.reporter import TensorBoard, TrainingReporter
from kta_cli.strategies.base import StrategyPlan
from tests.conftest import TINY


def tiny_model(num_classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("test_resnet", num_classes=num_classes)


def tiny_loader(n: int = 24, num_classes: int = 3) -> InMemoryLoader:
    g = torch.Generator().manual_seed(1)
    images = torch.randn(n, 3, 16, 16, generator=g)
    labels = torch.arange(n) % num_classes
    return InMemoryLoader(images, labels, batch_size=8, shuffle=True, seed=0)


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers (BatchNorm running statistics included)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def run_plan(
    model: torch.nn.Module,
    plan: StrategyPlan,
    *,
    epochs: int = 1,
    schedule: str = "constant",
    lr: float = 0.1,
    extra_hooks: list[Any] | None = None,
) -> Trainer:
    """The train command's wiring, in small: optimizer from the plan's groups, hooks, loop."""
    optimizer = build_optimizer(plan.param_groups, name="sgd", lr=lr, weight_decay=1e-4)
    loader = tiny_loader()
    scheduler = build_scheduler(optimizer, name=schedule, epochs=epochs, updates_per_epoch=3)
    trainer = Trainer(
        ClassificationTask(model),
        optimizer,
        scheduler,
        settings=LoopSettings(epochs=epochs),
        save=lambda kind, state: None,
        reporter=TrainingReporter(TensorBoard(None), enabled=False, progress=False),
        epoch_hooks=[*plan.epoch_hooks, *(extra_hooks or [])],
    )
    trainer.fit(loader, tiny_loader(9))
    return trainer


@pytest.fixture(scope="session")
def source_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test_resnet trained for one epoch on digits 0-4 (the transfer source)."""
    folder = tmp_path_factory.mktemp("source")
    here = Path.cwd()
    os.chdir(folder)
    try:
        main(["train", *TINY, "data.classes=[0,1,2,3,4]", "data.train_per_class=40"])
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    finally:
        os.chdir(here)
    return (folder / "outputs" / "train" / "latest" / "best.ckpt").resolve()
