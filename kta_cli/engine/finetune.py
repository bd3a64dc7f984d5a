"""Short supervised fine-tuning for commands that train as a step of their own (prune, QAT, ...).

The same Trainer as `kta train`; no checkpoints of its own, progress optional.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kta_cli.engine.loop import LoopSettings, LoopState, Trainer
from kta_cli.engine.optim import build_optimizer, build_scheduler
from kta_cli.engine.tasks import ClassificationTask
from kta_cli.report.reporter import TensorBoard, TrainingReporter


def fine_tune(
    model: nn.Module,
    train_loader: Any,
    val_loader: Any,
    *,
    epochs: int,
    lr: float,
    optimizer: str = "sgd",
    weight_decay: float = 0.0,
    schedule: str = "cosine",
    device: str = "cpu",
    progress: bool = False,
    label_smoothing: float = 0.0,
    task: nn.Module | None = None,
) -> LoopState:
    """Train `model` (or `task`) for `epochs`; returns the loop state with its history."""
    task = task if task is not None else ClassificationTask(model, label_smoothing)
    params = [p for p in task.parameters() if p.requires_grad]
    opt = build_optimizer(params, name=optimizer, lr=lr, weight_decay=weight_decay)
    sched = build_scheduler(
        opt, name=schedule, epochs=epochs, updates_per_epoch=len(train_loader), min_lr=lr * 0.01
    )
    reporter = TrainingReporter(TensorBoard(None), enabled=progress, progress=progress)
    trainer = Trainer(
        task,
        opt,
        sched,
        settings=LoopSettings(epochs=epochs, device=device),
        save=lambda kind, state: None,
        reporter=reporter,
    )
    task.to(torch.device(device))
    return trainer.fit(train_loader, val_loader)
