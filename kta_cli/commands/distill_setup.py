"""The pieces `kta distill` builds from its config: checks, teacher, transfer set, cache, baseline.

Like commands/distill.py this reads the DictConfig; everything it calls takes typed arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from kta_cli.data.datasets import DataSpec
from kta_cli.data.loaders import InMemoryLoader
from kta_cli.engine.checkpoint import load_checkpoint, resolve_checkpoint
from kta_cli.engine.distill_task import DistillationTask
from kta_cli.engine.loop import LoopSettings, Trainer, evaluate
from kta_cli.engine.tasks import ClassificationTask
from kta_cli.engine.teacher_cache import (
    cache_key,
    load_or_compute,
    why_not_cacheable,
    with_example_ids,
)
from kta_cli.errors import KtaError
from kta_cli.loading import build_model, load_weights, model_from_checkpoint
from kta_cli.losses.schedules import ValueSchedule
from kta_cli.report.reporter import TensorBoard, TrainingReporter

log = logging.getLogger(__name__)
WEIGHT_SUFFIXES = (".ckpt", ".pt", ".pth", ".safetensors", ".bin")
DEFAULT_TEACHER = "outputs/train/latest"


def schedules(options: DictConfig) -> tuple[ValueSchedule, ValueSchedule]:
    """(temperature, alpha) schedules from distill.<name>, <name>_end, _schedule, _milestones."""
    made = []
    for name in ("temperature", "alpha"):
        try:
            made.append(
                ValueSchedule(
                    start=float(options[name]),
                    end=None if options[f"{name}_end"] is None else float(options[f"{name}_end"]),
                    kind=str(options[f"{name}_schedule"]),
                    milestones=tuple(float(m) for m in options[f"{name}_milestones"]),
                )
            )
        except KtaError as error:
            raise KtaError(f"distill.{name}_schedule: {error}") from error
    return made[0], made[1]


def looks_like_path(value: str) -> bool:
    return (
        value == "latest"
        or "/" in value
        or value.endswith(WEIGHT_SUFFIXES)
        or (Path(value).exists())
    )


def teacher_source(name: str | None, checkpoint: str | None) -> tuple[Path, str | None]:
    """(checkpoint file, timm name or None): teacher=<path> arrives as teacher.name, a path."""
    if name and looks_like_path(name):
        name, checkpoint = None, name
    if not checkpoint:
        raise KtaError(f"teacher {name} needs weights: add teacher.checkpoint=<file>")
    if checkpoint == "latest":
        checkpoint = DEFAULT_TEACHER
    if checkpoint == DEFAULT_TEACHER and not Path(checkpoint).exists():
        raise KtaError(
            f"no teacher: {DEFAULT_TEACHER} does not exist; run `kta train` first or pass "
            "teacher=<checkpoint or run folder>"
        )
    return resolve_checkpoint(checkpoint), name


def data_values_for(cfg: DictConfig, teacher: dict[str, Any] | None) -> dict[str, Any]:
    """The transfer data: data.* with img_size/mean/std left null filled from the teacher's."""
    values = OmegaConf.to_container(cfg.data, resolve=True)
    recorded = (teacher or {}).get("data", {})
    for key in ("img_size", "mean", "std"):
        if values.get(key) is None:
            values[key] = recorded.get(key, getattr(DataSpec(), key))
    trained_on = (teacher or {}).get("config", {}).get("data", {}).get("name")
    if trained_on and trained_on != values["name"]:
        log.warning("teacher was trained on %s, the transfer set is %s", trained_on, values["name"])
    return values


def load_teacher(
    path: Path,
    name: str | None,
    checkpoint: dict[str, Any] | None,
    *,
    num_classes: int,
    img_size: int,
) -> tuple[nn.Module, str]:
    """The frozen teacher and its architecture name; its class count must match the data's."""
    if checkpoint is not None:
        teacher_classes = checkpoint["model_args"]["num_classes"]
        if teacher_classes != num_classes:
            raise KtaError(
                f"the teacher {path} predicts {teacher_classes} classes, the transfer data has "
                f"{num_classes}; teacher and student must share classes (pick data= / "
                "data.classes to match the teacher)"
            )
        model, arch = model_from_checkpoint(checkpoint), checkpoint["model_args"]["name"]
    else:
        model = build_model(name, num_classes=num_classes, img_size=img_size)
        if load_weights(model, path)["replaced"]:
            raise KtaError(
                f"the teacher weights {path} have a classifier for another class count than "
                f"the transfer data's {num_classes}; teacher and student must share classes"
            )
        arch = name
    return model.eval().requires_grad_(False), arch


def without_class(loader: Any, omitted: int | None, num_classes: int) -> Any:
    """The training loader without one class (Hinton's dark-knowledge transfer set)."""
    if omitted is None:
        return loader
    if omitted >= num_classes:
        raise KtaError(
            f"distill.omit_class={omitted} is not a class index in [0, {num_classes - 1}]"
        )
    if not isinstance(loader, InMemoryLoader):
        raise KtaError("distill.omit_class works with in-memory data sets (digits, shapes, fake)")
    keep = (loader.labels != omitted).nonzero().flatten()
    return InMemoryLoader(
        loader.images[keep],
        loader.labels[keep],
        batch_size=loader.batch_size,
        shuffle=loader.shuffle,
        seed=loader.seed,
        drop_last=loader.drop_last,
        transform=loader.transform,
        rank=loader.rank,
        world_size=loader.world_size,
    )


def distillation_task(
    options: DictConfig, student: nn.Module, teacher: nn.Module, train_loader: Any, epochs: int
) -> DistillationTask:
    temperature, alpha = schedules(options)
    hints = [(str(h.student), str(h.teacher)) for h in options.hints]
    example = next(iter(train_loader))[0][:2] if hints else None
    train_loader.set_epoch(0, 0)
    return DistillationTask(
        student,
        teacher,
        temperature=temperature,
        alpha=alpha,
        total_steps=epochs * len(train_loader),
        kd_weight=float(options.kd_weight),
        mse_weight=float(options.mse_weight),
        hint_weight=float(options.hint_weight),
        hints=hints,
        example_input=example,
    )


def prepare_cache(
    options: DictConfig,
    task: DistillationTask,
    train_loader: Any,
    data_values: dict[str, Any],
    teacher_path: Path,
    device: torch.device,
) -> tuple[Any, str]:
    """(loader to train on, how teacher outputs are obtained); fills the task's cache if used."""
    reason = why_not_cacheable(train_loader, data_values.get("augment") or {})
    if options.cache is True and reason:
        raise KtaError(f"distill.cache=true but {reason}; use distill.cache=auto or false")
    if options.cache is False or reason:
        return train_loader, f"teacher runs every step ({reason or 'distill.cache=false'})"
    key = cache_key(
        teacher_path,
        {**data_values, "omit_class": options.omit_class},
        task.teacher_layers,
    )
    folder = Path(options.cache_dir) if options.cache_dir else None
    outputs, how = load_or_compute(
        task.teacher_outputs, train_loader, device=device, folder=folder, key=key
    )
    task.use_cache({k: v.to(device) for k, v in outputs.items()})
    return with_example_ids(train_loader), f"cached per example ({how})"


def baseline_metrics(
    student: nn.Module,
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    settings: LoopSettings,
    data: Any,
    train_loader: Any,
    save_best: Callable[[nn.Module, Path], None],
    checkpoint: Path,
    tensorboard: Path | None,
    student_acc: float | None,
    teacher_acc: float,
) -> dict[str, Any]:
    """Train the same student without the teacher (same budget); gap closure against it.

    gap closure = (distilled acc - scratch acc) / (teacher acc - scratch acc).
    """
    task = ClassificationTask(student)
    board = TensorBoard(tensorboard)
    trainer = Trainer(
        task,
        optimizer,
        scheduler,
        settings=settings,
        save=lambda kind, state: save_best(student, checkpoint) if kind == "best" else None,
        reporter=TrainingReporter(board, progress=False),
    )
    trainer.fit(train_loader, data.val)
    board.close()
    if checkpoint.is_file():
        student.load_state_dict(load_checkpoint(checkpoint)["model"])
    scratch = evaluate(task, data.test, device=trainer.device)["acc"]
    gap = teacher_acc - scratch
    # accuracies are float averages: a "gap" below 1e-6 is rounding, not a test example
    closure = None if student_acc is None or abs(gap) < 1e-6 else (student_acc - scratch) / gap
    return {"scratch_test_acc": scratch, "teacher_scratch_gap": gap, "gap_closure": closure}


@torch.no_grad()
def class_accuracy(model: nn.Module, loader: Any, cls: int, device: torch.device) -> float:
    """Accuracy on the test examples of one class."""
    from kta_cli.commands.eval import predict

    predicted, true, _ = predict(model, loader, device)
    mask = true == cls
    return float((predicted[mask] == cls).float().mean()) if mask.any() else float("nan")


@torch.no_grad()
def logits_and_labels(
    model: nn.Module, loader: Any, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    loader.set_epoch(0, 0)
    logits, labels = [], []
    for images, targets in loader:
        logits.append(model(images.to(device)).float().cpu())
        labels.append(targets)
    return torch.cat(logits), torch.cat(labels)


def bias_adjusted(
    model: nn.Module, val_loader: Any, test_loader: Any, cls: int, device: torch.device
) -> dict[str, float]:
    """Hinton's bias check: a class never seen as a hard target gets too low a logit.

    The smallest shift of that class's logit (0 to 10 in steps of 0.25) that maximises validation
    accuracy, and the test accuracies with it.
    """
    val_logits, val_labels = logits_and_labels(model, val_loader, device)
    shifts = [0.25 * i for i in range(41)]

    def accuracy_with(logits: torch.Tensor, labels: torch.Tensor, shift: float) -> float:
        shifted = logits.clone()
        shifted[:, cls] += shift
        return float((shifted.argmax(dim=1) == labels).float().mean())

    best = max(shifts, key=lambda shift: (accuracy_with(val_logits, val_labels, shift), -shift))
    test_logits, test_labels = logits_and_labels(model, test_loader, device)
    test_logits[:, cls] += best
    predicted = test_logits.argmax(dim=1)
    mask = test_labels == cls
    return {
        "omitted_class_bias_shift": best,
        "omitted_class_test_acc_bias_adjusted": float((predicted[mask] == cls).float().mean()),
        "test_acc_bias_adjusted": float((predicted == test_labels).float().mean()),
    }
