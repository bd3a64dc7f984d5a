"""Short supervised fine-tuning for commands that train as a step of their own (prune, QAT, ...).

The run builder of `kta train`, without a run folder: no checkpoints, progress optional.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kta_cli.engine.loop import LoopSettings, LoopState
from kta_cli.engine.run import TrainingRun
from kta_cli.engine.runtime import Runtime
from kta_cli.engine.settings import OptimizerSettings, RunSettings, ScheduleSettings
from kta_cli.engine.tasks import ClassificationTask


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
    settings = RunSettings(
        loop=LoopSettings(epochs=epochs, device=device),
        optimizer=OptimizerSettings(name=optimizer, lr=lr, weight_decay=weight_decay),
        schedule=ScheduleSettings(name=schedule, min_lr=lr * 0.01),
        progress=progress,
        report=progress,
        tensorboard=False,
    )
    run = TrainingRun(
        command="fine-tune", run_dir=None, runtime=Runtime(torch.device(device)), settings=settings
    )
    params = [p for p in task.parameters() if p.requires_grad]
    run.fit(
        task, model=model, param_groups=[{"params": params}], train=train_loader, val=val_loader
    )
    assert run.trainer is not None
    return run.trainer.state
