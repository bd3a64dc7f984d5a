"""The run builder: every command that trains wires optimizer, schedule, checkpoints, reporter and
Trainer here, the same way, and finishes its run folder here (metrics.json, latest pointers,
TensorBoard hparams, summary table).

    run = TrainingRun(command="train", run_dir=..., runtime=..., settings=RunSettings(...))
    (RunSettings and its parts: engine/settings.py; run_in_runtime: engine/runtime.py)
    metrics = run.fit(task, model=..., param_groups=..., train=..., val=..., test=...,
                      metadata=checkpoint_metadata(...))
    run.finish(metrics, hparams=..., title=...)

Typed settings in, plain dicts out; no DictConfig below the command layer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kta_cli.engine.checkpoint import (
    RunCheckpoints,
    git_commit,
    load_checkpoint,
    resolve_checkpoint,
)
from kta_cli.engine.loop import Trainer, evaluate
from kta_cli.engine.optim import build_optimizer, build_scheduler
from kta_cli.engine.runtime import Runtime, barrier
from kta_cli.engine.settings import RunSettings
from kta_cli.engine.stopping import Interrupted
from kta_cli.errors import KtaError
from kta_cli.report.reporter import TensorBoard, TrainingReporter, console, print_table
from kta_cli.report.run_folder import mark_latest, write_metrics

log = logging.getLogger(__name__)
EpochHook = Callable[[int, Trainer], None]


def checkpoint_metadata(
    *,
    command: str,
    model_args: dict[str, Any],
    data: dict[str, Any],
    class_names: list[str],
    config: dict[str, Any],
    parent: str | Path | None,
) -> dict[str, Any]:
    """What a checkpoint says besides its weights: how to rebuild it and where it came from
    (save_checkpoint adds the format and the kta version)."""
    return {
        "model_args": model_args,
        "data": data,
        "class_names": class_names,
        "config": config,
        "parent": str(parent) if parent else None,
        "git_commit": git_commit(),
        "command": command,
    }


def resume_path(spec: str | None, command: str = "train") -> Path | None:
    """trainer.resume: a last.ckpt, a run folder, or `auto` (the command's newest last.ckpt)."""
    if not spec:
        return None
    if spec == "auto":
        return newest_last_checkpoint(Path("outputs") / command)
    folder = Path(spec)
    if folder.is_dir():
        if not (folder / "last.ckpt").is_file():
            raise KtaError(f"nothing to resume: no last.ckpt in {folder}")
        return folder / "last.ckpt"
    return resolve_checkpoint(folder)


def newest_last_checkpoint(command_dir: Path) -> Path:
    """The last.ckpt written most recently under outputs/<command>: a run stopped by a signal
    or Ctrl-C does not move the `latest` pointers (its weights are not final), yet it is the
    one to continue; sweep runs sit one folder deeper."""
    found = [
        path
        for pattern in ("*/last.ckpt", "*/*/last.ckpt")
        for path in command_dir.glob(pattern)
        if not path.is_symlink()  # the `latest` pointers' links
    ]
    if not found:
        raise KtaError(f"trainer.resume=auto, but no last.ckpt under ./{command_dir} to resume")
    return max(found, key=lambda path: path.stat().st_mtime_ns).resolve()


def load_resumable(path: Path, command: str | None = None) -> dict[str, Any]:
    """A last.ckpt with its training state (and, given `command`, written by that command)."""
    resumed = load_checkpoint(path)
    if "train_state" not in resumed:
        raise KtaError(f"{path} has no training state to resume (use last.ckpt)")
    if command is not None and resumed.get("command") != command:
        raise KtaError(f"{path} is not a {command} last.ckpt; nothing to resume")
    return resumed


def count(model: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


class TrainingRun:
    """One training run: its folder, TensorBoard writer and Trainer.

    run_dir=None trains without checkpoints or TensorBoard (a fine-tuning step of a command
    that writes its own outputs). `board_dir` puts TensorBoard events elsewhere (a baseline's).
    """

    def __init__(
        self,
        *,
        command: str,
        run_dir: Path | None,
        runtime: Runtime,
        settings: RunSettings,
        board_dir: Path | None = None,
    ) -> None:
        self.command, self.run_dir, self.runtime, self.settings = (
            command,
            run_dir,
            runtime,
            settings,
        )
        logged = run_dir is not None and settings.tensorboard and runtime.is_main
        self.tensorboard = TensorBoard((board_dir or run_dir) if logged else None)
        self.trainer: Trainer | None = None
        self.start_lrs: list[float] = []

    def build_trainer(
        self,
        task: nn.Module,
        *,
        model: nn.Module,
        param_groups: list[dict[str, Any]],
        steps_per_epoch: int,
        save: Callable[[str, dict[str, Any]], None],
        epoch_hooks: list[EpochHook] = (),  # type: ignore[assignment]
    ) -> Trainer:
        """Optimizer (the groups plus a task's own learned loss weights), schedule, Trainer."""
        settings = self.settings
        groups = list(param_groups)
        loss_params = getattr(task, "loss_parameters", list)()
        if loss_params:
            groups.append({"params": loss_params, "name": "loss_weights", "weight_decay": 0.0})
        options = settings.optimizer
        optimizer = build_optimizer(
            groups,
            name=options.name,
            lr=options.lr,
            weight_decay=options.weight_decay,
            momentum=options.momentum,
        )
        self.start_lrs = [group["lr"] for group in optimizer.param_groups]  # before any warmup
        schedule = vars(settings.schedule).copy()
        scheduler = build_scheduler(
            optimizer,
            name=schedule.pop("name"),
            epochs=settings.loop.epochs,
            updates_per_epoch=steps_per_epoch,
            **schedule,
        )
        if settings.compile:
            task.model = torch.compile(task.model)
        reporter = TrainingReporter(
            self.tensorboard,
            enabled=self.runtime.is_main and settings.report,
            progress=settings.progress,
            log_every=settings.log_every,
        )
        self.trainer = Trainer(
            task,
            optimizer,
            scheduler,
            settings=settings.loop,
            save=save,
            reporter=reporter,
            epoch_hooks=list(epoch_hooks),
            distributed=self.runtime.distributed,
        )
        return self.trainer

    def checkpoints(
        self,
        model: nn.Module,
        metadata: dict[str, Any],
        resume_extras: Callable[[], dict[str, Any]] | None = None,
    ) -> Callable[[str, dict[str, Any]], None]:
        """best.ckpt and last.ckpt in the run folder (nothing without one)."""
        if self.run_dir is None:
            return lambda kind, state: None
        return RunCheckpoints(
            self.run_dir,
            model,
            metadata,
            monitor=self.settings.loop.monitor,
            enabled=self.runtime.is_main,
            resume_extras=resume_extras,
        )

    def fit(
        self,
        task: nn.Module,
        *,
        model: nn.Module,
        param_groups: list[dict[str, Any]],
        train: Any,
        val: Any,
        test: Any = None,
        metadata: dict[str, Any] | None = None,
        save: Callable[[str, dict[str, Any]], None] | None = None,
        best_path: Path | None = None,
        resumed: dict[str, Any] | None = None,
        resume_extras: Callable[[], dict[str, Any]] | None = None,
        epoch_hooks: list[EpochHook] = (),  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Train `task` (whose weights to keep are `model`'s), then score `test` with the best
        weights. `resumed` (load_resumable) continues a run exactly; the model's own weights
        must already be loaded from it. Returns the run's metrics."""
        task.to(self.runtime.device)
        if save is None:
            save = self.checkpoints(model, metadata or {}, resume_extras)
        trainer = self.build_trainer(
            task,
            model=model,
            param_groups=param_groups,
            steps_per_epoch=len(train),
            save=save,
            epoch_hooks=epoch_hooks,
        )
        if resumed is not None:
            trainer.load_train_state(resumed["train_state"])
            log.info("resuming at epoch %d, step %d", trainer.state.epoch, trainer.state.step)
        if self.run_dir is not None and self.runtime.is_main:
            log_run_start(self.run_dir, model, trainer.optimizer, self.start_lrs)
        started = time.perf_counter()
        try:
            trainer.fit(train, val)
        except Interrupted as stop:  # the loop saved last.ckpt through `save`, if it writes one
            if self.run_dir is not None and (self.run_dir / "last.ckpt").is_file():
                stop.checkpoint = self.run_dir / "last.ckpt"
            raise
        barrier(self.runtime)
        if best_path is None and self.run_dir is not None:
            best_path = self.run_dir / "best.ckpt"
        metrics = final_metrics(trainer, test, model, best_path, time.perf_counter() - started)
        metrics.update(  # lr_group<i> is TensorBoard's lr/group<i>
            {
                f"lr_group{i}_{group.get('name', '')}": self.start_lrs[i]
                for i, group in enumerate(trainer.optimizer.param_groups)
            }
        )
        return metrics

    def finish(
        self,
        metrics: dict[str, Any],
        *,
        hparams: dict[str, Any],
        title: str,
        written: dict[str, Any] | None = None,
        notes: dict[str, str] | None = None,
    ) -> None:
        """metrics.json (`written`, default `metrics`), TensorBoard hparams, the `latest`
        pointers and the summary table; only the process that owns the run folder writes.
        `notes` (what a user must know about the result, e.g. a random frozen body) head the
        table and go into metrics.json."""
        if not self.runtime.is_main or self.run_dir is None:
            return
        metrics = {**(notes or {}), **metrics}
        written = None if written is None else {**(notes or {}), **written}
        write_metrics(self.run_dir, metrics if written is None else written)
        self.tensorboard.hparams(
            hparams, {f"hparam/{k}": v for k, v in metrics.items() if isinstance(v, float)}
        )
        self.tensorboard.close()
        mark_latest(self.run_dir, self.command)
        print_table(title, {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))})
        console.print(f"run folder: {self.run_dir}")


def log_run_start(
    run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, start_lrs: list[float]
) -> None:
    log.info("run folder: %s", run_dir)
    log.info("model: %d parameters, %d trainable", count(model), count(model, True))
    for i, group in enumerate(optimizer.param_groups):
        params = group["params"]
        log.info(
            "param group %d %s: %d parameters (%d trainable), lr %.4g",
            i,
            group.get("name", ""),
            sum(p.numel() for p in params),
            sum(p.numel() for p in params if p.requires_grad),
            start_lrs[i],
        )


def final_metrics(
    trainer: Trainer, test: Any, model: nn.Module, best_path: Path | None, seconds: float
) -> dict[str, Any]:
    """Last and best validation figures, and the test split scored with the best weights."""
    state, settings = trainer.state, trainer.settings
    metrics: dict[str, Any] = {
        "epochs_run": state.epoch,
        "steps": state.step,
        "stopped_early": state.stopped_early,
        "best_epoch": state.best_epoch,
        f"best_{settings.monitor}": state.best_value,
    }
    if state.history:
        last = state.history[-1]
        metrics.update(  # with per-task figures (train_acc_<task>, ...) of multi-task runs
            {k: v for k, v in last.items() if k.startswith(("train_loss", "train_acc", "val_"))}
        )
        metrics["images_per_sec"] = sum(h["images_per_sec"] for h in state.history) / len(
            state.history
        )
    if best_path is not None and best_path.is_file() and settings.max_steps is None:
        model.load_state_dict(load_checkpoint(best_path)["model"])
    finished = settings.max_steps is None or state.epoch >= settings.epochs
    if test is not None and finished:
        scores = evaluate(
            trainer.task, test, device=trainer.device, channels_last=settings.channels_last
        )
        metrics.update({f"test_{k}": v for k, v in scores.items()})
    metrics["train_seconds"] = seconds
    metrics["parameters"] = count(model)
    metrics["trainable_parameters"] = count(model, trainable=True)
    return metrics
