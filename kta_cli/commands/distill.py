"""`kta distill teacher=... student=...`: train a student on a frozen teacher's outputs.

The training machinery is kta train's (loop settings, schedules, final metrics, the Trainer); what
differs is the task (kta_cli/engine/distill_task.py). Builders for the teacher, the transfer set
and the teacher cache live in kta_cli/commands/distill_setup.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from kta_cli.commands.distill_setup import (
    baseline_metrics,
    bias_adjusted,
    class_accuracy,
    data_values_for,
    distillation_task,
    load_teacher,
    prepare_cache,
    teacher_source,
    without_class,
)
from kta_cli.commands.train import (
    build_schedule,
    count,
    final_metrics,
    loop_settings,
    resume_path,
    run_in_runtime,
    shared_run_dir,
    training_hparams,
)
from kta_cli.data.datasets import DataBundle, build_data, spec_from_dict
from kta_cli.engine.checkpoint import RunCheckpoints, git_commit, load_checkpoint, save_checkpoint
from kta_cli.engine.distill_task import DistillationTask
from kta_cli.engine.loop import Trainer, evaluate
from kta_cli.engine.optim import build_optimizer
from kta_cli.engine.runtime import Runtime, barrier
from kta_cli.engine.state import seed_everything
from kta_cli.engine.tasks import ClassificationTask
from kta_cli.errors import KtaError
from kta_cli.loading import build_model
from kta_cli.report.reporter import TensorBoard, TrainingReporter, console, print_table
from kta_cli.report.run_folder import config_as_dict, mark_latest, write_metrics

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    return run_in_runtime(cfg, "distill", distill)


def build_student(cfg: DictConfig, num_classes: int, img_size: int) -> torch.nn.Module:
    return build_model(
        cfg.student.name,
        num_classes=num_classes,
        img_size=img_size,
        pretrained=cfg.student.pretrained,
        checkpoint=cfg.student.checkpoint,
        drop_rate=cfg.student.drop_rate,
        init=cfg.student.init,
    )


def trainable_optimizer(cfg: DictConfig, module: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in module.parameters() if p.requires_grad]
    return build_optimizer(
        [{"params": params, "name": "all"}],
        name=cfg.optim.name,
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        momentum=cfg.optim.get("momentum", 0.9),
    )


@dataclass
class Parts:
    """What a distillation run is built from (the cfg read once, in build_parts)."""

    data: DataBundle
    data_values: dict[str, Any]
    teacher: torch.nn.Module
    teacher_arch: str
    teacher_path: Path
    student: torch.nn.Module
    task: DistillationTask
    train_loader: Any  # the transfer set
    fit_loader: Any  # the same, with example ids when the teacher cache is used
    cache_note: str
    cache_seconds: float


def build_parts(cfg: DictConfig, runtime: Runtime) -> Parts:
    teacher_path, teacher_name = teacher_source(cfg.teacher.name, cfg.teacher.checkpoint)
    teacher_checkpoint = load_checkpoint(teacher_path) if teacher_name is None else None
    data_values = data_values_for(cfg, teacher_checkpoint)
    data = build_data(spec_from_dict(data_values), rank=runtime.rank, world_size=runtime.world_size)
    img_size, num_classes = data.spec.img_size, len(data.class_names)
    teacher, teacher_arch = load_teacher(
        teacher_path, teacher_name, teacher_checkpoint, num_classes=num_classes, img_size=img_size
    )
    train_loader = without_class(data.train, cfg.distill.omit_class, num_classes)
    seed_everything(cfg.seed + runtime.rank)
    student = build_student(cfg, num_classes, img_size)
    task = distillation_task(cfg.distill, student, teacher, train_loader, cfg.trainer.epochs)
    task.to(runtime.device)
    started = time.perf_counter()
    fit_loader, cache_note = prepare_cache(
        cfg.distill, task, train_loader, data_values, teacher_path, runtime.device
    )
    return Parts(
        data,
        data_values,
        teacher,
        teacher_arch,
        teacher_path,
        student,
        task,
        train_loader,
        fit_loader,
        cache_note,
        time.perf_counter() - started,
    )


def student_payload(cfg: DictConfig, parts: Parts) -> dict[str, Any]:
    """A student checkpoint besides weights and metrics: a normal kta checkpoint."""
    data = parts.data
    config = config_as_dict(cfg)
    config["data"] = parts.data_values  # the resolved preprocessing, so eval rebuilds the same
    config["teacher"] = {"name": parts.teacher_arch, "checkpoint": str(parts.teacher_path)}
    return {
        "model_args": {
            "name": cfg.student.name,
            "num_classes": len(data.class_names),
            "img_size": data.spec.img_size,
        },
        "data": data.spec.describe(),
        "class_names": data.class_names,
        "config": config,
        "parent": str(parts.teacher_path),
        "git_commit": git_commit(),
        "command": "distill",
    }


def make_trainer(
    cfg: DictConfig, runtime: Runtime, parts: Parts, run_dir: Path, payload: dict[str, Any]
) -> tuple[Trainer, TensorBoard]:
    """kta train's Trainer around the distillation task; best/last.ckpt hold the student."""
    optimizer = trainable_optimizer(cfg, parts.task)  # the student and the hint adapters

    save = RunCheckpoints(  # the student; last.ckpt also the hint adapters, for resume
        run_dir,
        parts.student,
        payload,
        monitor=cfg.trainer.early_stopping.monitor,
        enabled=runtime.is_main,
        resume_extras=lambda: {"adapters": parts.task.adapters.state_dict()},
    )
    tensorboard = TensorBoard(run_dir if cfg.logger.tensorboard and runtime.is_main else None)
    trainer = Trainer(
        parts.task,
        optimizer,
        build_schedule(cfg, optimizer, len(parts.train_loader)),
        settings=loop_settings(cfg, runtime),
        save=save,
        reporter=TrainingReporter(
            tensorboard,
            enabled=runtime.is_main,
            progress=cfg.trainer.progress,
            log_every=cfg.trainer.log_every,
        ),
        epoch_hooks=[parts.task.sync_step],
        distributed=runtime.distributed,
    )
    return trainer, tensorboard


def resume(trainer: Trainer, parts: Parts, path: Path) -> None:
    resumed = load_checkpoint(path)
    if "train_state" not in resumed or resumed.get("command") != "distill":
        raise KtaError(f"{path} is not a distill last.ckpt; nothing to resume")
    parts.student.load_state_dict(resumed["model"])
    parts.task.adapters.load_state_dict(resumed.get("adapters", {}))
    trainer.load_train_state(resumed["train_state"])


def distill(cfg: DictConfig, runtime: Runtime) -> dict[str, Any]:
    run_dir = shared_run_dir(runtime)
    spec = cfg.trainer.resume
    resume_from = resume_path("outputs/distill/latest" if spec == "auto" else spec)
    parts = build_parts(cfg, runtime)
    payload = student_payload(cfg, parts)
    trainer, tensorboard = make_trainer(cfg, runtime, parts, run_dir, payload)
    if resume_from is not None:
        resume(trainer, parts, resume_from)
    if runtime.is_main:
        log.info("run folder: %s", run_dir)
        log.info(
            "teacher %s (%s): %d parameters",
            parts.teacher_arch,
            parts.teacher_path,
            count(parts.teacher),
        )
        log.info("student %s: %d parameters", cfg.student.name, count(parts.student))
        log.info("teacher outputs: %s", parts.cache_note)
    started = time.perf_counter()
    trainer.fit(parts.fit_loader, parts.data.val)
    barrier(runtime)
    metrics = final_metrics(
        trainer, parts.data, run_dir, parts.student, runtime, time.perf_counter() - started
    )
    metrics.update(teacher_cache=parts.cache_note, teacher_cache_seconds=parts.cache_seconds)
    metrics.update(report_against_teacher(cfg, parts, runtime, run_dir, metrics, payload))
    if runtime.is_main:
        write_metrics(
            run_dir,
            {**metrics, "teacher": str(parts.teacher_path), "parent": str(parts.teacher_path)},
        )
        tensorboard.hparams(
            hparams_of_distill(cfg, parts.teacher_arch),
            {f"hparam/{k}": v for k, v in metrics.items() if isinstance(v, float)},
        )
        tensorboard.close()
        mark_latest(run_dir, "distill")
        print_table(
            f"kta distill: {parts.teacher_arch} -> {cfg.student.name} on {parts.data.spec.name}",
            {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))},
        )
        console.print(f"run folder: {run_dir}")
    return metrics


def report_against_teacher(
    cfg: DictConfig,
    parts: Parts,
    runtime: Runtime,
    run_dir: Path,
    metrics: dict[str, Any],
    base_payload: dict[str, Any],
) -> dict[str, Any]:
    """Teacher accuracy, the no-teacher baseline and gap closure, the omitted class's accuracy."""
    device, data, teacher, student = runtime.device, parts.data, parts.teacher, parts.student
    train_loader = parts.train_loader
    report: dict[str, Any] = {
        "teacher_test_acc": evaluate(ClassificationTask(teacher), data.test, device=device)["acc"],
        "student_parameters": count(student),
        "teacher_parameters": count(teacher),
    }
    baseline = None
    if cfg.distill.baseline:
        seed_everything(cfg.seed + runtime.rank)  # the same initial student as the distilled one
        baseline = build_student(cfg, len(data.class_names), data.spec.img_size).to(device)
        optimizer = trainable_optimizer(cfg, baseline)

        def save_best(model: torch.nn.Module, path: Path) -> None:
            if runtime.is_main:  # a plain student checkpoint: no teacher, same config otherwise
                save_checkpoint(
                    path,
                    {
                        **base_payload,
                        "model": model.state_dict(),
                        "parent": None,
                        "command": "distill-baseline",
                    },
                )

        board = run_dir / "baseline" if cfg.logger.tensorboard and runtime.is_main else None
        report.update(
            baseline_metrics(
                baseline,
                optimizer=optimizer,
                scheduler=build_schedule(cfg, optimizer, len(train_loader)),
                settings=loop_settings(cfg, runtime),
                data=data,
                train_loader=train_loader,
                save_best=save_best,
                checkpoint=run_dir / "baseline.ckpt",
                tensorboard=board,
                student_acc=metrics.get("test_acc"),
                teacher_acc=report["teacher_test_acc"],
            )
        )
    omitted = cfg.distill.omit_class
    if omitted is not None:
        report["omitted_class"] = data.class_names[omitted]
        report.update(bias_adjusted(student, data.val, data.test, omitted, device))
        for prefix, model in (("", student), ("teacher_", teacher), ("scratch_", baseline)):
            if model is not None:
                report[f"{prefix}omitted_class_test_acc"] = class_accuracy(
                    model, data.test, omitted, device
                )
    return report


def hparams_of_distill(cfg: DictConfig, teacher_arch: str) -> dict[str, Any]:
    options = cfg.distill
    return {
        "teacher": teacher_arch,
        "student": cfg.student.name,
        **training_hparams(cfg),
        "temperature": options.temperature,
        "temperature_schedule": options.temperature_schedule,
        "alpha": options.alpha,
        "alpha_schedule": options.alpha_schedule,
        "kd_weight": options.kd_weight,
        "mse_weight": options.mse_weight,
        "hints": len(options.hints),
    }
