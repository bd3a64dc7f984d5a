"""Continual methods as tasks of the one engine (engine/tasks.py): forward(batch) -> {loss, ...}.

naive and joint train plain cross-entropy (they differ in the data: the current task, or every
task seen so far); replay differs in the data too (buffer.py's ReplayLoader); EWC adds its
penalty (losses/continual.py) and LwF its distillation term (losses/distillation.py).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kta_cli.losses.continual import ewc_penalty
from kta_cli.losses.distillation import soft_target_loss

METHODS = ("naive", "joint", "replay", "ewc", "lwf")


class ContinualTask(nn.Module):
    """Cross-entropy over one head for every class. `eval_classes` (task-incremental scoring)
    masks the logits to the task's classes when the task is in eval mode."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.eval_classes: list[int] | None = None

    def masked(self, logits: torch.Tensor) -> torch.Tensor:
        if self.training or self.eval_classes is None:
            return logits
        mask = torch.full_like(logits, float("-inf"))
        mask[:, self.eval_classes] = 0.0
        return logits + mask

    def extra_loss(self, images: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
        images, labels = batch
        logits = self.masked(self.model(images))
        ce = F.cross_entropy(logits, labels)
        extras = self.extra_loss(images, logits) if self.training else {}
        loss = ce + sum(extras.values()) if extras else ce
        correct = (logits.argmax(dim=1) == labels).float().mean()
        return {
            "loss": loss,
            "ce": ce.detach(),
            **{k: v.detach() for k, v in extras.items()},
            "acc": correct.detach(),
            "logits": logits.detach(),
        }

    def after_task(
        self,
        train: Iterable[tuple[torch.Tensor, torch.Tensor]],
        classes: list[int],
        device: torch.device,
    ) -> None:
        """What a method keeps from a learned task before the next one (nothing here)."""


class EWCTask(ContinualTask):
    """Elastic weight consolidation: lambda / 2 * sum_k F_k (theta_k - theta*_k)^2, one anchor
    and diagonal Fisher per earlier task (Kirkpatrick et al. 2017, separate penalties)."""

    def __init__(self, model: nn.Module, ewc_lambda: float, fisher_batches: int | None) -> None:
        super().__init__(model)
        self.ewc_lambda, self.fisher_batches = ewc_lambda, fisher_batches
        self.memories: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []

    def extra_loss(self, images: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.memories:
            return {}
        current = dict(self.model.named_parameters())
        penalty = sum(ewc_penalty(current, anchors, fisher) for anchors, fisher in self.memories)
        return {"ewc": 0.5 * self.ewc_lambda * penalty}

    def after_task(self, train, classes, device) -> None:  # noqa: ANN001
        fisher = diagonal_fisher(self.model, train, device, self.fisher_batches)
        anchors = {n: p.detach().clone() for n, p in self.model.named_parameters() if n in fisher}
        self.memories.append((anchors, fisher))


def diagonal_fisher(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    max_batches: int | None = None,
) -> dict[str, torch.Tensor]:
    """Empirical diagonal Fisher: squared gradients of the log-likelihood of the true labels,
    averaged over mini-batches (as Avalanche's EWC computes it), in eval mode."""
    was_training = model.training
    model.eval()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    for images, labels in batches:
        if max_batches is not None and count >= max_batches:
            break
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(images.to(device)), labels.to(device)).backward()
        for name, param in params.items():
            if param.grad is not None:
                fisher[name] += param.grad.detach().pow(2)
        count += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {n: f / max(count, 1) for n, f in fisher.items()}


class LwFTask(ContinualTask):
    """Learning without Forgetting: alpha * T^2 KL between the previous model's and this model's
    softened outputs on the new images, over the classes learned before (Li and Hoiem 2016)."""

    def __init__(self, model: nn.Module, alpha: float, temperature: float) -> None:
        super().__init__(model)
        self.alpha, self.temperature = alpha, temperature
        self.teacher: nn.Module | None = None
        self.old_classes: list[int] = []

    def extra_loss(self, images: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.teacher is None or not self.old_classes:
            return {}
        with torch.no_grad():
            teacher_logits = self.teacher(images)[:, self.old_classes]
        kd = soft_target_loss(logits[:, self.old_classes], teacher_logits, self.temperature)
        return {"lwf": self.alpha * kd}

    def train(self, mode: bool = True) -> LwFTask:
        super().train(mode)
        if self.teacher is not None:  # the loop's task.train() must not move its BatchNorm
            self.teacher.eval()
        return self

    def after_task(self, train, classes, device) -> None:  # noqa: ANN001
        teacher = copy.deepcopy(self.model).eval()
        for param in teacher.parameters():
            param.requires_grad_(False)
        self.teacher = teacher  # a frozen child: last.ckpt does not carry it (engine/loop.py)
        self.old_classes = sorted(set(self.old_classes) | set(classes))


def build_method(name: str, model: nn.Module, options: dict[str, Any]) -> ContinualTask:
    if name == "ewc":
        return EWCTask(model, options["lambda"], options.get("fisher_batches"))
    if name == "lwf":
        return LwFTask(model, options["alpha"], options["temperature"])
    return ContinualTask(model)
