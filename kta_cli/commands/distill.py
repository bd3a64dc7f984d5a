"""`kta distill teacher=... student=...`: train a student on a frozen teacher's outputs.

The run builder of kta train (kta_cli/engine/run.py); what differs is the task
(kta_cli/engine/distill_task.py). Teacher, transfer set, cache and baseline: kta_cli/distill/.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from kta_cli.data.datasets import build_data, spec_from_dict
from kta_cli.data.spec import DataSpec
from kta_cli.distill.report import against_teacher, train_baseline
from kta_cli.distill.setup import (
    DistillOptions,
    distillation_task,
    load_teacher,
    prepare_cache,
    teacher_source,
    transfer_data,
    value_schedule,
    without_class,
)
from kta_cli.engine.checkpoint import load_checkpoint
from kta_cli.engine.run import (
    TrainingRun,
    checkpoint_metadata,
    count,
    load_resumable,
    resume_path,
)
from kta_cli.engine.runtime import Runtime, run_in_runtime, shared_run_dir
from kta_cli.engine.settings import RunSettings
from kta_cli.engine.state import seed_everything
from kta_cli.loading import build_model
from kta_cli.report.run_folder import config_as_dict
from kta_cli.schema.store import section

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    data_choice = data_chosen_by_user()  # read here: worker processes have no HydraConfig
    return run_in_runtime(
        "distill",
        device=cfg.trainer.device,
        threads=cfg.trainer.threads,
        body=lambda runtime: distill(cfg, runtime, data_choice),
    )


def data_chosen_by_user() -> tuple[bool, set[str]]:
    """(was data=<name> given, on the command line or by an experiment; the data.* keys given).

    Without data=, the transfer set is the teacher's own (kta_cli/distill/setup.py)."""
    hydra = HydraConfig.get()
    keys = [item.lstrip("+~").split("=")[0] for item in hydra.overrides.task]
    chosen = "data" in keys or hydra.runtime.choices.get("data") != "digits"
    given = {key.split(".")[1] for key in keys if key.startswith("data.")}
    return chosen, given


def options_from(cfg: DictConfig) -> DistillOptions:
    d = cfg.distill
    schedules = {
        name: value_schedule(
            name,
            start=d[name],
            end=d[f"{name}_end"],
            kind=d[f"{name}_schedule"],
            milestones=list(d[f"{name}_milestones"]),
        )
        for name in ("temperature", "alpha")
    }
    return DistillOptions(
        **schedules,
        kd_weight=float(d.kd_weight),
        mse_weight=float(d.mse_weight),
        hint_weight=float(d.hint_weight),
        hints=[(str(h.student), str(h.teacher)) for h in d.hints],
        cache=d.cache,
        cache_dir=d.cache_dir,
        omit_class=d.omit_class,
        baseline=bool(d.baseline),
    )


def build_student(cfg: DictConfig, num_classes: int, img_size: int) -> torch.nn.Module:
    s = cfg.student
    return build_model(
        s.name, num_classes=num_classes, img_size=img_size, pretrained=s.pretrained,
        checkpoint=s.checkpoint, drop_rate=s.drop_rate, init=s.init,
    )  # fmt: skip


def distill(
    cfg: DictConfig, runtime: Runtime, data_choice: tuple[bool, set[str]] = (True, set())
) -> dict[str, Any]:
    options = options_from(cfg)
    settings = RunSettings.from_sections(
        section(cfg, "trainer"), section(cfg, "optim"), section(cfg, "sched"),
        device=runtime.device, tensorboard=bool(cfg.logger.tensorboard),
    )  # fmt: skip
    run_dir = shared_run_dir(runtime)
    resume_from = resume_path(cfg.trainer.resume, "distill")
    teacher_path, teacher_name = teacher_source(cfg.teacher.name, cfg.teacher.checkpoint)
    teacher_checkpoint = load_checkpoint(teacher_path) if teacher_name is None else None
    data_values = transfer_data(
        section(cfg, "data"), teacher_checkpoint, data_chosen=data_choice[0], given=data_choice[1]
    )
    data = build_data(spec_from_dict(data_values), rank=runtime.rank, world_size=runtime.world_size)
    img_size, num_classes = data.spec.img_size, len(data.class_names)
    teacher, teacher_arch = load_teacher(
        teacher_path, teacher_name, teacher_checkpoint, num_classes=num_classes, img_size=img_size
    )
    train_loader = without_class(data.train, options.omit_class, num_classes)
    seed_everything(cfg.seed + runtime.rank)
    student = build_student(cfg, num_classes, img_size)
    task = distillation_task(options, student, teacher, train_loader, cfg.trainer.epochs)
    task.to(runtime.device)
    started = time.perf_counter()
    fit_loader, cache_note = prepare_cache(
        options, task, train_loader, data_values, teacher_path, runtime.device
    )
    cache_seconds = time.perf_counter() - started
    config = config_as_dict(cfg)
    config["data"] = data_values  # the resolved preprocessing, so eval rebuilds the same
    config["teacher"] = {"name": teacher_arch, "checkpoint": str(teacher_path)}
    metadata = checkpoint_metadata(
        command="distill",
        model_args={"name": cfg.student.name, "num_classes": num_classes, "img_size": img_size},
        data=data.spec.describe(), class_names=data.class_names, config=config,
        parent=teacher_path,
    )  # fmt: skip
    resumed = load_resumable(resume_from, "distill") if resume_from else None
    if resumed is not None:
        student.load_state_dict(resumed["model"])
        task.adapters.load_state_dict(resumed.get("adapters", {}))
    if runtime.is_main:
        log.info("teacher %s (%s): %d parameters", teacher_arch, teacher_path, count(teacher))
        log.info("student %s: %d parameters", cfg.student.name, count(student))
        log.info("teacher outputs: %s", cache_note)
    training = TrainingRun(command="distill", run_dir=run_dir, runtime=runtime, settings=settings)
    metrics = training.fit(
        task, model=student,  # the student and the hint adapters train
        param_groups=[{"params": [p for p in task.parameters() if p.requires_grad], "name": "all"}],
        train=fit_loader, val=data.val, test=data.test, metadata=metadata, resumed=resumed,
        resume_extras=lambda: {"adapters": task.adapters.state_dict()},  # last.ckpt, for resume
        epoch_hooks=[task.sync_step],
    )  # fmt: skip
    metrics.update(teacher_cache=cache_note, teacher_cache_seconds=cache_seconds)

    def baseline(teacher_acc: float) -> tuple[dict[str, Any], torch.nn.Module]:
        return train_baseline(
            lambda: build_student(cfg, num_classes, img_size), seed=cfg.seed + runtime.rank,
            runtime=runtime, settings=settings, run_dir=run_dir, data=data,
            train_loader=train_loader, metadata=metadata, student_acc=metrics.get("test_acc"),
            teacher_acc=teacher_acc,
        )  # fmt: skip

    metrics.update(
        against_teacher(
            student,
            teacher,
            data,
            runtime=runtime,
            omitted=options.omit_class,
            baseline=baseline if options.baseline else None,
        )  # fmt: skip
    )
    training.finish(
        metrics,
        hparams=hparams_of(cfg, teacher_arch, data.spec),
        title=f"kta distill: {teacher_arch} -> {cfg.student.name} on {data.spec.name}",
        written={**metrics, "teacher": str(teacher_path), "parent": str(teacher_path)},
    )
    return metrics


def hparams_of(cfg: DictConfig, teacher_arch: str, spec: DataSpec) -> dict[str, Any]:
    d = cfg.distill
    return {
        "teacher": teacher_arch, "student": cfg.student.name, "data": spec.name,
        "optim": cfg.optim.name, "lr": cfg.optim.lr, "sched": cfg.sched.name,
        "epochs": cfg.trainer.epochs, "batch_size": spec.batch_size,
        "temperature": d.temperature, "temperature_schedule": d.temperature_schedule,
        "alpha": d.alpha, "alpha_schedule": d.alpha_schedule, "kd_weight": d.kd_weight,
        "mse_weight": d.mse_weight, "hints": len(d.hints),
    }  # fmt: skip
