"""Typed settings of a training run: loop, optimizer, schedule, reporting (see engine/run.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from kta_cli.engine.loop import LoopSettings
from kta_cli.errors import KtaError


@dataclass
class OptimizerSettings:
    name: str = "sgd"
    lr: float = 0.01
    weight_decay: float = 0.0
    momentum: float = 0.9


@dataclass
class ScheduleSettings:
    """build_scheduler's options (configs/sched/*.yaml)."""

    name: str = "cosine"
    warmup_epochs: float = 0.0
    warmup_lr: float = 1e-5
    min_lr: float = 0.0
    decay_epochs: float = 30
    decay_rate: float = 0.1
    milestones: list[int] | None = None
    patience_epochs: int = 5
    plateau_mode: str = "max"


@dataclass
class RunSettings:
    loop: LoopSettings = field(default_factory=LoopSettings)
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    progress: bool = True
    log_every: int = 10
    tensorboard: bool = True
    compile: bool = False
    report: bool = True  # epoch lines on the console (off for silent fine-tuning steps)

    @classmethod
    def from_sections(
        cls,
        trainer: Mapping[str, Any],
        optim: Mapping[str, Any],
        sched: Mapping[str, Any],
        *,
        device: torch.device,
        tensorboard: bool = True,
    ) -> RunSettings:
        """From the plain trainer/optim/sched sections a command read out of its config."""
        if trainer["precision"] == "fp16" and device.type != "cuda":
            raise KtaError("trainer.precision=fp16 needs a CUDA device; use bf16 on CPU")
        stopping = trainer["early_stopping"]
        loop = LoopSettings(
            epochs=trainer["epochs"],
            device=str(device),
            precision=trainer["precision"],
            grad_clip=trainer["grad_clip"],
            channels_last=trainer["channels_last"],
            max_steps=trainer["max_steps"],
            checkpoint_every=trainer["checkpoint_every"],
            monitor=stopping["monitor"],
            monitor_mode=stopping["mode"],
            patience=stopping["patience"],
            min_delta=stopping["min_delta"],
        )
        schedule = {**sched}
        if schedule.get("milestones") is not None:
            schedule["milestones"] = list(schedule["milestones"])
        schedule["plateau_mode"] = stopping["mode"]
        return cls(
            loop=loop,
            optimizer=OptimizerSettings(
                name=optim["name"],
                lr=optim["lr"],
                weight_decay=optim["weight_decay"],
                momentum=optim.get("momentum", 0.9),
            ),
            schedule=ScheduleSettings(**schedule),
            progress=trainer["progress"],
            log_every=trainer["log_every"],
            tensorboard=tensorboard,
            compile=trainer.get("compile", False),
        )
