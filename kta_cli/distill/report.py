"""What a distilled student is measured against: the teacher, the same student trained without
it (gap closure), and, with a class left out, Hinton's dark-knowledge checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kta_cli.engine.checkpoint import save_checkpoint
from kta_cli.engine.evaluate import predict
from kta_cli.engine.loop import evaluate
from kta_cli.engine.run import TrainingRun, count
from kta_cli.engine.runtime import Runtime
from kta_cli.engine.settings import RunSettings
from kta_cli.engine.state import seed_everything
from kta_cli.engine.tasks import ClassificationTask


def against_teacher(
    student: nn.Module,
    teacher: nn.Module,
    data: Any,
    *,
    runtime: Runtime,
    omitted: int | None,
    baseline: Callable[[float], tuple[dict[str, Any], nn.Module]] | None = None,
) -> dict[str, Any]:
    """Teacher accuracy, the no-teacher baseline (`baseline(teacher_acc)`) and its gap closure,
    the omitted class's accuracy with and without Hinton's bias shift."""
    device = runtime.device
    report: dict[str, Any] = {
        "teacher_test_acc": evaluate(ClassificationTask(teacher), data.test, device=device)["acc"],
        "student_parameters": count(student),
        "teacher_parameters": count(teacher),
    }
    scratch_model = None
    if baseline is not None:
        figures, scratch_model = baseline(report["teacher_test_acc"])
        report.update(figures)
    if omitted is not None:
        report["omitted_class"] = data.class_names[omitted]
        report.update(bias_adjusted(student, data.val, data.test, omitted, device))
        for prefix, model in (("", student), ("teacher_", teacher), ("scratch_", scratch_model)):
            if model is not None:
                report[f"{prefix}omitted_class_test_acc"] = class_accuracy(
                    model, data.test, omitted, device
                )
    return report


def train_baseline(
    make_student: Callable[[], nn.Module],
    *,
    seed: int,
    runtime: Runtime,
    settings: RunSettings,
    run_dir: Path,
    data: Any,
    train_loader: Any,
    metadata: dict[str, Any],
    student_acc: float | None,
    teacher_acc: float,
) -> tuple[dict[str, Any], nn.Module]:
    """Train the same student without the teacher (same budget, same initial weights) into
    baseline.ckpt; gap closure = (distilled acc - scratch acc) / (teacher acc - scratch acc)."""
    seed_everything(seed)  # the same initial student as the distilled one
    student = make_student().to(runtime.device)
    checkpoint = run_dir / "baseline.ckpt"

    def save_best(kind: str, train_state: dict[str, Any]) -> None:
        if kind == "best" and runtime.is_main:  # a plain student: no teacher, no parent
            payload = {**metadata, "model": student.state_dict(), "parent": None}
            save_checkpoint(checkpoint, {**payload, "command": "distill-baseline"})

    training = TrainingRun(
        command="distill-baseline",
        run_dir=run_dir,
        runtime=runtime,
        settings=dataclasses.replace(settings, progress=False),
        board_dir=run_dir / "baseline",
    )
    params = [p for p in student.parameters() if p.requires_grad]
    metrics = training.fit(
        ClassificationTask(student),
        model=student,
        param_groups=[{"params": params, "name": "all"}],
        train=train_loader,
        val=data.val,
        test=data.test,
        save=save_best,
        best_path=checkpoint,
    )
    training.tensorboard.close()
    scratch = metrics.get("test_acc")
    if scratch is None:  # stopped by trainer.max_steps: score what there is
        scratch = evaluate(ClassificationTask(student), data.test, device=runtime.device)["acc"]
    gap = teacher_acc - scratch
    # accuracies are float averages: a "gap" below 1e-6 is rounding, not a test example
    closure = None if student_acc is None or abs(gap) < 1e-6 else (student_acc - scratch) / gap
    figures = {"scratch_test_acc": scratch, "teacher_scratch_gap": gap, "gap_closure": closure}
    return figures, student


@torch.no_grad()
def class_accuracy(model: nn.Module, loader: Any, cls: int, device: torch.device) -> float:
    """Accuracy on the test examples of one class."""
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
