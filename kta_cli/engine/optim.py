"""Optimizers and learning-rate schedules: timm's factories, plus one-cycle and constant.

Every schedule answers the same two calls the loop makes: `step_update(num_updates)` after each
optimizer step and `step(epoch, metric)` after each epoch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from kta_cli.errors import KtaError, did_you_mean

TIMM_SCHEDULES = ("cosine", "step", "multistep", "plateau", "poly", "tanh")
SCHEDULES = (*TIMM_SCHEDULES, "onecycle", "constant")


def build_optimizer(
    params: torch.nn.Module | Iterable[Any],
    *,
    name: str,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """timm.optim.create_optimizer_v2: `name` is sgd, momentum, adamw, adam, lamb, ..."""
    from timm.optim import create_optimizer_v2, list_optimizers

    if name not in list_optimizers():
        raise KtaError(did_you_mean(name, list_optimizers(), what="optimizer"))
    return create_optimizer_v2(
        params, opt=name, lr=lr, weight_decay=weight_decay, momentum=momentum, **kwargs
    )


class OneCycle:
    """torch's OneCycleLR with the loop's interface (it steps per update, not per epoch)."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_fraction: float
    ) -> None:
        max_lr = [group["lr"] for group in optimizer.param_groups]
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=max_lr,
            total_steps=max(total_steps, 2),
            pct_start=min(max(warmup_fraction, 0.01), 0.99),
        )

    def step_update(self, num_updates: int, metric: float | None = None) -> None:
        if self.schedule.last_epoch + 1 < self.schedule.total_steps:
            self.schedule.step()

    def step(self, epoch: int, metric: float | None = None) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return self.schedule.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.schedule.load_state_dict(state)


class Constant:
    """A fixed learning rate; nothing to do."""

    def step_update(self, num_updates: int, metric: float | None = None) -> None:
        pass

    def step(self, epoch: int, metric: float | None = None) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    name: str,
    epochs: int,
    updates_per_epoch: int,
    warmup_epochs: float = 0.0,
    warmup_lr: float = 1e-5,
    min_lr: float = 0.0,
    decay_epochs: float = 30,
    decay_rate: float = 0.1,
    milestones: list[int] | None = None,
    patience_epochs: int = 5,
    plateau_mode: str = "max",
) -> Any:
    """A schedule with linear warmup, stepped per update so warmup is smooth."""
    if name not in SCHEDULES:
        raise KtaError(did_you_mean(name, SCHEDULES, what="schedule"))
    if name == "constant":
        return Constant()
    if name == "onecycle":
        return OneCycle(
            optimizer,
            total_steps=epochs * updates_per_epoch,
            warmup_fraction=warmup_epochs / max(epochs, 1),
        )
    from timm.scheduler import create_scheduler_v2

    # Warmup as a prefix: the peak lr is reached when warmup ends and the decay then spans the
    # remaining epochs (timm's default overlaps them, so the ramp never reaches optim.lr).
    warmup = min(int(warmup_epochs), max(epochs - 1, 0))
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=name,
        num_epochs=epochs - warmup,
        decay_epochs=decay_epochs,
        decay_milestones=list(milestones or [max(epochs // 2, 1)]),
        decay_rate=decay_rate,
        min_lr=min_lr,
        warmup_lr=warmup_lr,
        warmup_epochs=warmup,
        warmup_prefix=True,
        patience_epochs=patience_epochs,
        plateau_mode=plateau_mode,
        step_on_epochs=name == "plateau",
        updates_per_epoch=updates_per_epoch,
    )
    return scheduler
