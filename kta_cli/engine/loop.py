"""The one training loop every kind of training runs (supervised, distillation, multi-task, ...).

What differs between them is the task (see tasks.py). The loop owns the order of events, mixed
precision, gradient clipping, early stopping, best/last checkpoints, exact resume, and stopping
on request: Ctrl-C, and SIGTERM / SIGUSR1 (schedulers: preemption, a coming time limit).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from kta_cli.engine.state import capture_rng, capture_torch_rng, restore_rng
from kta_cli.engine.stopping import (
    STOP_SIGNALS,
    Interrupted,
    stop_requested,
    stopping_on_signals,
)
from kta_cli.errors import KtaError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

# Called by every Trainer of this process after each epoch's validation, with that epoch's record:
# the seam for callers above the commands, which cannot reach a command's own epoch_hooks (kta
# sweep reports the validation metric to its trial). A hook may end the run after this epoch by
# setting trainer.state.stopped_early; the run then finishes as an early-stopped one.
EPOCH_END_HOOKS: list[Callable[[dict[str, float], Trainer], None]] = []


@contextlib.contextmanager
def epoch_end_hook(hook: Callable[[dict[str, float], Trainer], None]) -> Iterator[None]:
    """Every Trainer started inside this block calls `hook(record, trainer)` after each epoch."""
    EPOCH_END_HOOKS.append(hook)
    try:
        yield
    finally:
        EPOCH_END_HOOKS.remove(hook)


@dataclass
class LoopSettings:
    epochs: int = 10
    device: str = "cpu"
    precision: str = "fp32"
    grad_clip: float | None = None
    channels_last: bool = False
    max_steps: int | None = None  # stop (resumably) after this many optimizer steps
    checkpoint_every: int = 1  # epochs between last.ckpt writes; the run's end always writes it
    monitor: str = "val_acc"
    monitor_mode: str = "max"
    patience: int | None = None  # early stopping: epochs without improvement
    min_delta: float = 0.0


@dataclass
class LoopState:
    """Everything besides model, optimizer and schedule that exact resume needs."""

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    epoch_sums: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


def frozen_parts(task: nn.Module) -> list[str]:
    """Children of a task besides its model whose parameters are all frozen (a teacher): they
    are rebuilt from their own checkpoint, so last.ckpt need not carry them."""
    return [
        name
        for name, child in task.named_children()
        if name != "model"
        and any(True for _ in child.parameters())
        and not any(p.requires_grad for p in child.parameters())
    ]


def task_state(task: nn.Module) -> dict[str, torch.Tensor]:
    """What a task holds beyond its model (learned loss weights, hint adapters, ...): the model
    is saved on its own, as the checkpoint's `model`."""
    skipped = tuple(f"{name}." for name in ["model", *frozen_parts(task)])
    return {k: v for k, v in task.state_dict().items() if not k.startswith(skipped)}


def load_task_state(task: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """Restore task_state(): every key must fit, and every key task_state() has must be there."""
    if not saved:
        return  # a checkpoint from before kta saved task state, or a task with none
    missing = sorted(set(task_state(task)) - set(saved))
    unexpected = task.load_state_dict(saved, strict=False).unexpected_keys
    if missing or unexpected:
        raise KtaError(
            f"the checkpoint's task state does not fit this task (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); resume with the task settings it was trained with"
        )


def to_device(batch: Any, device: torch.device, channels_last: bool) -> Any:
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device, channels_last) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    return batch


def scalars(outputs: dict[str, Any]) -> dict[str, float]:
    """The loggable scalars of a task's output dict."""
    return {
        k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
        for k, v in outputs.items()
        if isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1)
    }


def batch_size_of(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (list, tuple)) else next(iter(batch.values()))
    return len(first)


class Trainer:
    """Runs epochs of a task; calls back to save checkpoints and report progress.

    save(kind, train_state) writes 'last' (resumable) or 'best' (weights); reporter receives
    progress; epoch_hooks(epoch, trainer) run before each epoch (unfreezing schedules, ...).
    """

    def __init__(
        self,
        task: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        *,
        settings: LoopSettings,
        save: Callable[[str, dict[str, Any]], None],
        reporter: Any,
        epoch_hooks: list[Callable[[int, Trainer], None]] | None = None,
        distributed: bool = False,
    ) -> None:
        self.task, self.optimizer, self.scheduler = task, optimizer, scheduler
        self.settings, self.save, self.reporter = settings, save, reporter
        self.epoch_hooks = list(epoch_hooks or [])
        self.device = torch.device(settings.device)
        self.state = LoopState()
        self._last_saved: int | None = None  # the step last.ckpt holds
        self.autocast_dtype = PRECISIONS[settings.precision]
        use_scaler = settings.precision == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.module: nn.Module = task
        self.distributed = distributed
        self.world_size = torch.distributed.get_world_size() if distributed else 1
        self._wrapped_trainable: tuple[bool, ...] | None = None
        self._wrap_for_trainable_set()
        self._rng_after_step = capture_rng()

    def _wrap_for_trainable_set(self) -> None:
        """Under torchrun, (re)wrap the task in DistributedDataParallel when the set of trainable
        parameters differs from the one it was wrapped with: DDP's reducer registers only the
        parameters that required grad when it was built (torch: "no parameters should be added
        nor removed later"), so a parameter unfrozen later (gradual unfreezing, lp_ft) would
        otherwise train on its own rank's gradient alone. find_unused_parameters does not help:
        it skips the same unregistered parameters. Wrapping again broadcasts rank 0's weights
        and buffers, which are equal on every rank anyway."""
        if not self.distributed:
            return
        trainable = tuple(p.requires_grad for p in self.task.parameters())
        if trainable == self._wrapped_trainable:
            return
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        self.module = DistributedDataParallel(self.task, device_ids=ids)
        self._wrapped_trainable = trainable

    # -- state -------------------------------------------------------------------------------
    def train_state(self) -> dict[str, Any]:
        return {
            "loop": vars(self.state).copy(),
            "epochs": self.settings.epochs,
            "task": task_state(self.task),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": self._rng_after_step,
        }

    def load_train_state(self, saved: dict[str, Any]) -> None:
        """Continue where `saved` stopped; the model's own weights are loaded by the caller."""
        planned = saved.get("epochs", self.settings.epochs)
        if planned != self.settings.epochs:
            raise KtaError(
                f"cannot resume with trainer.epochs={self.settings.epochs}: the run was planned "
                f"for trainer.epochs={planned} and its learning-rate schedule is fixed; resume "
                f"with trainer.epochs={planned}, or start a new run from its weights"
            )
        load_task_state(self.task, saved.get("task", {}))
        self.state = LoopState(**saved["loop"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
        restore_rng(saved["rng"])
        self._rng_after_step = saved["rng"]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # -- loop --------------------------------------------------------------------------------
    def fit(self, train_loader: Any, val_loader: Any) -> LoopState:
        self.reporter.on_fit_start(self, len(train_loader))
        try:
            with stopping_on_signals():  # the last write too: a signal then waits for it
                self._fit_epochs(train_loader, val_loader)
                if self._last_saved != self.state.step:
                    self._save_last()  # the run's end, after epochs checkpoint_every left out
        except KeyboardInterrupt:
            self._save_last()
            raise Interrupted("Ctrl-C", epoch=self.state.epoch, step=self.state.step) from None
        finally:
            self.reporter.on_fit_end(self)
        return self.state

    def _fit_epochs(self, train_loader: Any, val_loader: Any) -> None:
        while self.state.epoch < self.settings.epochs and not self.state.stopped_early:
            self._stop_if_asked()
            self.task.train()  # before the hooks, so a hook may put parts in eval mode
            for hook in self.epoch_hooks:
                hook(self.state.epoch, self)
            self._wrap_for_trainable_set()  # a hook may have (un)frozen parameters
            if self._train_epoch(train_loader):
                return  # max_steps reached; last.ckpt is resumable
            self._end_epoch(val_loader)

    def _save_last(self) -> None:
        self.save("last", self.train_state())
        self._last_saved = self.state.step

    def _stop_if_asked(self) -> None:
        """At a step boundary: after a stop signal, save a resumable last.ckpt and stop. Under
        torchrun every rank stops at the same step: the ranks agree on it (one tiny all-reduce
        a step), since a signal reaches each rank at its own moment."""
        reason = stop_requested()
        if self.distributed:
            names = [number.name for number in STOP_SIGNALS]
            asked = torch.tensor([names.index(reason) + 1 if reason else 0], device=self.device)
            torch.distributed.all_reduce(asked, op=torch.distributed.ReduceOp.MAX)
            reason = names[int(asked.item()) - 1] if int(asked.item()) else None
        if reason is None:
            return
        self._save_last()
        raise Interrupted(reason, epoch=self.state.epoch, step=self.state.step)

    def _train_epoch(self, loader: Any) -> bool:
        """One epoch from state.batch_in_epoch on; True when max_steps stopped it."""
        state = self.state
        loader.set_epoch(state.epoch, state.batch_in_epoch)
        # numpy's and Python's generators are snapshot once an epoch: kta's steps draw only from
        # torch's, whose state is taken after every step (see capture_torch_rng).
        self._rng_after_step = capture_rng()
        self.reporter.on_epoch_start(self, state.epoch, state.batch_in_epoch)
        tick = time.perf_counter()
        for batch in loader:
            batch = to_device(batch, self.device, self.settings.channels_last)
            outputs = self._step(batch)
            values = scalars(outputs)
            n = batch_size_of(batch)
            sums = state.epoch_sums
            sums["images"] = sums.get("images", 0.0) + n
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value * n
            sums["seconds"] = sums.get("seconds", 0.0) + time.perf_counter() - tick
            tick = time.perf_counter()
            state.batch_in_epoch += 1
            state.step += 1
            self._rng_after_step = {**self._rng_after_step, **capture_torch_rng()}
            self.reporter.on_step(self, values, n)
            if self.settings.max_steps is not None and state.step >= self.settings.max_steps:
                self._save_last()
                return True
            self._stop_if_asked()
        return False

    def _step(self, batch: Any) -> dict[str, Any]:
        with self.autocast():
            outputs = self.module(batch)
        loss = outputs["loss"]
        if not torch.isfinite(loss.detach()):
            raise KtaError(
                f"loss became {loss.item()} at epoch {self.state.epoch} step "
                f"{self.state.step}; the run stopped and best.ckpt is intact "
                "(lower optim.lr, set trainer.grad_clip, or use fp32)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.settings.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.task.parameters(), self.settings.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step_update(num_updates=self.state.step + 1)
        return outputs

    def _end_epoch(self, val_loader: Any) -> None:
        state = self.state
        sums = state.epoch_sums
        images = max(sums.pop("images", 0.0), 1.0)  # this process's share
        seconds = sums.pop("seconds", 0.0)
        record = {f"train_{k}": v / images for k, v in sums.items()}
        record.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
        record.update(
            epoch=state.epoch + 1,
            epoch_time=seconds,
            images_per_sec=images * self.world_size / max(seconds, 1e-9),
        )
        record.update({f"lr_group{i}": g["lr"] for i, g in enumerate(self.optimizer.param_groups)})
        state.history.append(record)
        state.epoch += 1
        state.batch_in_epoch, state.epoch_sums = 0, {}
        self.scheduler.step(state.epoch, record.get(self.settings.monitor))
        improved = self._track_best(record)
        self.reporter.on_epoch_end(self, record, improved)
        if improved:
            self.save("best", self.train_state())
        if state.epoch % self.settings.checkpoint_every == 0:
            self._save_last()
        for hook in EPOCH_END_HOOKS:
            hook(record, self)

    def _track_best(self, record: dict[str, float]) -> bool:
        state, settings = self.state, self.settings
        value = record.get(settings.monitor)
        if value is None or math.isnan(value):
            return state.best_value is None
        sign = 1.0 if settings.monitor_mode == "max" else -1.0
        improved = (
            state.best_value is None or sign * (value - state.best_value) > settings.min_delta
        )
        if improved:
            state.best_value, state.best_epoch, state.bad_epochs = value, state.epoch, 0
        else:
            state.bad_epochs += 1
            if settings.patience is not None and state.bad_epochs >= settings.patience:
                state.stopped_early = True
        return improved

    @torch.no_grad()
    def evaluate(self, loader: Any) -> dict[str, float]:
        return evaluate(
            self.task,
            loader,
            device=self.device,
            channels_last=self.settings.channels_last,
            autocast=self.autocast,
        )


@torch.no_grad()
def evaluate(
    task: nn.Module,
    loader: Any,
    *,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, float]:
    """Average every scalar the task returns over a loader, summed across processes."""
    modes = {module: module.training for module in task.modules()}
    task.eval()
    device = torch.device(device)
    loader.set_epoch(0, 0)
    totals: dict[str, float] = {}
    count = 0.0
    for batch in loader:
        batch = to_device(batch, device, channels_last)
        with autocast():
            outputs = task(batch)
        n = batch_size_of(batch)
        count += n
        for key, value in scalars(outputs).items():
            totals[key] = totals.get(key, 0.0) + value * n
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        packed = torch.tensor([count, *totals.values()], dtype=torch.float64)
        torch.distributed.all_reduce(packed)
        count, totals = packed[0].item(), dict(zip(totals, packed[1:].tolist(), strict=True))
    for module, mode in modes.items():  # exactly as before: frozen BatchNorm stays in eval
        module.training = mode
    return {k: v / max(count, 1.0) for k, v in totals.items()}
