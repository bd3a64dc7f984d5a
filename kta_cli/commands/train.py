"""`kta train`: build data, model and strategy from the config, run the loop, report."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from kta_cli.data.datasets import DataBundle, DataSpec, build_data, spec_from_dict
from kta_cli.engine.checkpoint import (
    RunCheckpoints,
    git_commit,
    load_checkpoint,
    resolve_checkpoint,
)
from kta_cli.engine.loop import Interrupted, LoopSettings, Trainer, evaluate
from kta_cli.engine.optim import build_optimizer, build_scheduler
from kta_cli.engine.runtime import Runtime, barrier, start_runtime, stop_runtime
from kta_cli.engine.state import seed_everything
from kta_cli.engine.tasks import ClassificationTask
from kta_cli.errors import KtaError
from kta_cli.loading import build_model
from kta_cli.report.reporter import TensorBoard, TrainingReporter, console, print_table
from kta_cli.report.run_folder import config_as_dict, current_run_dir, mark_latest, write_metrics
from kta_cli.strategies.base import trainable_reporter
from kta_cli.strategies.features import HeadOnly, cached_feature_data

log = logging.getLogger(__name__)


def resume_path(spec: str | None) -> Path | None:
    """trainer.resume: a last.ckpt, a run folder, or `auto` (the latest train run's last.ckpt)."""
    if not spec:
        return None
    folder = Path("outputs/train/latest") if spec == "auto" else Path(spec)
    if folder.is_dir():
        if not (folder / "last.ckpt").is_file():
            raise KtaError(f"nothing to resume: no last.ckpt in {folder}")
        return folder / "last.ckpt"
    return resolve_checkpoint(folder)


def loop_settings(cfg: DictConfig, runtime: Runtime) -> LoopSettings:
    trainer = cfg.trainer
    if trainer.precision == "fp16" and runtime.device.type != "cuda":
        raise KtaError("trainer.precision=fp16 needs a CUDA device; use bf16 on CPU")
    return LoopSettings(
        epochs=trainer.epochs,
        device=str(runtime.device),
        precision=trainer.precision,
        grad_clip=trainer.grad_clip,
        channels_last=trainer.channels_last,
        max_steps=trainer.max_steps,
        monitor=trainer.early_stopping.monitor,
        monitor_mode=trainer.early_stopping.mode,
        patience=trainer.early_stopping.patience,
        min_delta=trainer.early_stopping.min_delta,
    )


def build_schedule(cfg: DictConfig, optimizer: torch.optim.Optimizer, updates: int) -> Any:
    options = OmegaConf.to_container(cfg.sched, resolve=True)
    name = options.pop("name")
    if "milestones" in options:
        options["milestones"] = list(options["milestones"])
    if name == "plateau":
        options["plateau_mode"] = cfg.trainer.early_stopping.mode
    return build_scheduler(
        optimizer, name=name, epochs=cfg.trainer.epochs, updates_per_epoch=updates, **options
    )


def strategy_name() -> str:
    try:
        return HydraConfig.get().runtime.choices.get("strategy") or "custom"
    except ValueError:
        return "custom"


def build_task_data(cfg: DictConfig, spec: DataSpec, runtime: Runtime) -> DataBundle:
    """The data set's loaders; with task=multitask, one label per task."""
    if cfg.get("task", {}).get("name", "classify") == "multitask":
        from kta_cli.data.multitask import build_multitask_data

        tasks = cfg.task.tasks
        return build_multitask_data(
            spec,
            list(tasks) if tasks else None,
            rank=runtime.rank,
            world_size=runtime.world_size,
        )
    return build_data(spec, rank=runtime.rank, world_size=runtime.world_size)


def build_task(cfg: DictConfig, model: torch.nn.Module, data: DataBundle) -> torch.nn.Module:
    if cfg.get("task", {}).get("name", "classify") == "multitask":
        from kta_cli.engine.multitask import MultiTaskTask

        weights = cfg.task.weights
        return MultiTaskTask(
            model,
            [(name, len(names)) for name, names in data.tasks],
            weighting=cfg.task.weighting,
            weights=OmegaConf.to_container(weights) if weights else None,
        )
    return ClassificationTask(model, cfg.loss.label_smoothing)


def run(cfg: DictConfig) -> dict[str, Any]:
    return run_in_runtime(cfg, "train", train)


def run_in_runtime(
    cfg: DictConfig, command: str, body: Callable[[DictConfig, Runtime], dict[str, Any]]
) -> dict[str, Any]:
    """Run a training command inside its runtime (process group under torchrun); Ctrl-C ends
    it with the resume hint and exit code 130."""
    runtime = start_runtime(cfg.trainer.device, cfg.trainer.threads)
    try:
        return body(cfg, runtime)
    except Interrupted:
        console.print(
            "[yellow]interrupted[/yellow]: last.ckpt saved; continue with "
            f"kta {command} trainer.resume=auto (or the run folder)"
        )
        sys.exit(130)
    finally:
        stop_runtime(runtime)


def shared_run_dir(runtime: Runtime) -> Path:
    """Rank 0's run folder, known to every rank (the others only read from it)."""
    folder = [str(current_run_dir())]
    if runtime.distributed:
        torch.distributed.broadcast_object_list(folder, src=0)
    return Path(folder[0])


def train(cfg: DictConfig, runtime: Runtime) -> dict[str, Any]:
    run_dir = shared_run_dir(runtime)
    seed_everything(cfg.seed + runtime.rank)
    data = build_task_data(
        cfg, spec_from_dict(OmegaConf.to_container(cfg.data, resolve=True)), runtime
    )
    resume_from = resume_path(cfg.trainer.resume)
    model = build_model(
        cfg.model.name,
        num_classes=len(data.class_names),
        img_size=data.spec.img_size,
        pretrained=cfg.model.pretrained,
        checkpoint=None if resume_from else cfg.model.checkpoint,
        drop_rate=cfg.model.drop_rate,
        init=cfg.model.init,
    )
    plan = instantiate(cfg.strategy)(model)
    plan.check_trainable(strategy_name())
    tensorboard = TensorBoard(run_dir if cfg.logger.tensorboard and runtime.is_main else None)
    if tensorboard.writer is not None:
        with torch.random.fork_rng():  # a preview must not move the training's random streams
            tensorboard.images("train/images", next(iter(data.train))[0])
    resumed = load_checkpoint(resume_from) if resume_from else None
    if resumed is not None:
        model.load_state_dict(resumed["model"])
    model.to(runtime.device)
    if cfg.trainer.channels_last:
        model.to(memory_format=torch.channels_last)
    task = build_task(cfg, model, data)
    if plan.cache_features:
        data = cached_feature_data(model, data, runtime.device)
        task.model = HeadOnly(model)
    optimizer = build_run_optimizer(cfg, plan.param_groups, task)
    start_lrs = [group["lr"] for group in optimizer.param_groups]  # before any warmup
    scheduler = build_schedule(cfg, optimizer, len(data.train))
    if cfg.trainer.compile:
        task.model = torch.compile(task.model)

    metadata = {
        "model_args": {
            "name": cfg.model.name,
            "num_classes": len(data.class_names),
            "img_size": data.spec.img_size,
            **({"head": plan.head} if plan.head else {}),
        },
        "data": data.spec.describe(),
        "class_names": data.class_names,
        "config": config_as_dict(cfg),
        "parent": str(resume_from or cfg.model.checkpoint or "") or None,
        "git_commit": git_commit(),
        "command": "train",
    }
    settings = loop_settings(cfg, runtime)
    save = RunCheckpoints(
        run_dir, model, metadata, monitor=settings.monitor, enabled=runtime.is_main
    )
    reporter = TrainingReporter(
        tensorboard,
        enabled=runtime.is_main,
        progress=cfg.trainer.progress,
        log_every=cfg.trainer.log_every,
    )
    trainer = Trainer(
        task,
        optimizer,
        scheduler,
        settings=settings,
        save=save,
        reporter=reporter,
        epoch_hooks=[*plan.epoch_hooks, trainable_reporter(model, tensorboard)],
        distributed=runtime.distributed,
    )
    if resumed is not None:
        restore_training(trainer, resumed, resume_from)
    if runtime.is_main:
        log_run_start(run_dir, cfg.model.name, model, optimizer, start_lrs)

    started = time.perf_counter()
    trainer.fit(data.train, data.val)
    barrier(runtime)
    metrics = final_metrics(trainer, data, run_dir, model, runtime, time.perf_counter() - started)
    metrics.update(  # lr_group<i> is TensorBoard's lr/group<i>
        {
            f"lr_group{i}_{group.get('name', '')}": start_lrs[i]
            for i, group in enumerate(optimizer.param_groups)
        }
    )
    if runtime.is_main:
        finish_run(
            run_dir,
            "train",
            metrics,
            tensorboard,
            hparams_of(cfg),
            f"kta train: {cfg.model.name} on {data.spec.name}",
        )
    return metrics


def build_run_optimizer(
    cfg: DictConfig, groups: list[dict[str, Any]], task: torch.nn.Module
) -> torch.optim.Optimizer:
    """The strategy's parameter groups, plus a task's own learned weights (multi-task losses)."""
    groups = list(groups)
    loss_params = getattr(task, "loss_parameters", list)()
    if loss_params:
        groups.append({"params": loss_params, "name": "loss_weights", "weight_decay": 0.0})
    return build_optimizer(
        groups,
        name=cfg.optim.name,
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        momentum=cfg.optim.get("momentum", 0.9),
    )


def restore_training(trainer: Trainer, resumed: dict[str, Any], path: Path) -> None:
    if "train_state" not in resumed:
        raise KtaError(f"{path} has no training state to resume (use last.ckpt)")
    trainer.load_train_state(resumed["train_state"])
    log.info("resuming %s at epoch %d, step %d", path, trainer.state.epoch, trainer.state.step)


def log_run_start(
    run_dir: Path,
    name: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    start_lrs: list[float],
) -> None:
    log.info("run folder: %s", run_dir)
    log.info("model %s: %d parameters, %d trainable", name, count(model), count(model, True))
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


def finish_run(
    run_dir: Path,
    command: str,
    metrics: dict[str, Any],
    tensorboard: TensorBoard,
    hparams: dict[str, Any],
    title: str,
) -> None:
    """metrics.json, TensorBoard hparams, the `latest` pointers and the summary table."""
    write_metrics(run_dir, metrics)
    tensorboard.hparams(
        hparams, {f"hparam/{k}": v for k, v in metrics.items() if isinstance(v, float)}
    )
    tensorboard.close()
    mark_latest(run_dir, command)
    print_table(title, metrics)
    console.print(f"run folder: {run_dir}")


def final_metrics(
    trainer: Trainer,
    data: DataBundle,
    run_dir: Path,
    model: torch.nn.Module,
    runtime: Runtime,
    seconds: float,
) -> dict[str, Any]:
    """Last and best validation figures, and the test split scored with the best weights."""
    state = trainer.state
    history = state.history
    metrics: dict[str, Any] = {
        "epochs_run": state.epoch,
        "steps": state.step,
        "stopped_early": state.stopped_early,
        "best_epoch": state.best_epoch,
        f"best_{trainer.settings.monitor}": state.best_value,
    }
    if history:
        last = history[-1]
        metrics.update(  # with per-task figures (train_acc_<task>, ...) of multi-task runs
            {k: v for k, v in last.items() if k.startswith(("train_loss", "train_acc", "val_"))}
        )
        metrics["images_per_sec"] = sum(h["images_per_sec"] for h in history) / len(history)
    best_path = run_dir / "best.ckpt"
    if best_path.is_file() and trainer.settings.max_steps is None:
        model.load_state_dict(load_checkpoint(best_path)["model"])
    if trainer.settings.max_steps is None or state.epoch >= trainer.settings.epochs:
        test = evaluate(
            trainer.task,
            data.test,
            device=trainer.device,
            channels_last=trainer.settings.channels_last,
        )
        metrics.update({f"test_{k}": v for k, v in test.items()})
    metrics["train_seconds"] = seconds
    metrics["parameters"] = count(model)
    metrics["trainable_parameters"] = count(model, trainable=True)
    return metrics


def count(model: torch.nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def training_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The hparams every training command shares (data, optimizer, schedule, budget)."""
    return {
        "data": cfg.data.name,
        "optim": cfg.optim.name,
        "lr": cfg.optim.lr,
        "sched": cfg.sched.name,
        "epochs": cfg.trainer.epochs,
        "batch_size": cfg.data.batch_size,
    }


def hparams_of(cfg: DictConfig) -> dict[str, Any]:
    return {
        "model": cfg.model.name,
        **training_hparams(cfg),
        "label_smoothing": cfg.loss.label_smoothing,
    }
