"""Tasks: what a training step computes. The loop logs every scalar a task's forward returns.

A task is an nn.Module whose forward(batch) returns a dict with `loss` (what is minimised), any
parts worth logging (`ce`, `kd`, ...), `acc`, and `logits` for evaluation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def classification_loss(label_smoothing: float = 0.0) -> nn.Module:
    """Cross-entropy; with smoothing > 0, timm's label-smoothing cross-entropy."""
    if label_smoothing > 0:
        from timm.loss import LabelSmoothingCrossEntropy

        return LabelSmoothingCrossEntropy(smoothing=label_smoothing)
    return nn.CrossEntropyLoss()


class ClassificationTask(nn.Module):
    """Supervised classification; evaluation always reports plain cross-entropy."""

    def __init__(self, model: nn.Module, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.train_loss = classification_loss(label_smoothing)
        self.eval_loss = nn.CrossEntropyLoss()

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
        images, labels = batch
        logits = self.model(images)
        loss = (self.train_loss if self.training else self.eval_loss)(logits, labels)
        correct = (logits.argmax(dim=1) == labels).float().mean()
        return {"loss": loss, "acc": correct.detach(), "logits": logits.detach()}
