"""Helpers for strategy tests: a tiny timm model, tiny data, a short real training loop (the
transfer source checkpoint, source_ckpt, is a session fixture in tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import timm
import torch

from kta_cli.data.loaders import InMemoryLoader
from kta_cli.engine.loop import LoopSettings, Trainer
from kta_cli.engine.optim import build_optimizer, build_scheduler
from kta_cli.engine.tasks import ClassificationTask
from kta_cli.report.reporter import TensorBoard, TrainingReporter
from kta_cli.strategies.base import StrategyPlan


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
