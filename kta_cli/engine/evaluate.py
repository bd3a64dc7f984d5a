"""Scoring a classifier over a loader: predictions, confusion matrix, and the data it reads."""

from __future__ import annotations

from typing import Any

import torch

from kta_cli.engine.loop import to_device
from kta_cli.errors import KtaError


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    loader: Any,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Predicted classes, true classes and mean cross-entropy over a loader."""
    model.eval()
    predictions, targets, loss_sum = [], [], 0.0
    for batch in loader:
        images, labels = to_device(batch, device, channels_last=False)
        logits = model(images)
        loss_sum += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        predictions.append(logits.argmax(dim=1).cpu())
        targets.append(labels.cpu())
    predicted, true = torch.cat(predictions), torch.cat(targets)
    return predicted, true, loss_sum / max(len(true), 1)


def confusion_matrix(predicted: torch.Tensor, true: torch.Tensor, n: int) -> torch.Tensor:
    return torch.bincount(true * n + predicted, minlength=n * n).reshape(n, n)


def checkpoint_data(checkpoint: dict[str, Any], data: dict[str, Any] | None) -> dict[str, Any]:
    """The data a checkpoint is scored on: `data` (a data section) with the model's own input
    size and normalisation, else the data set the checkpoint records."""
    if data is not None:
        recorded = checkpoint["data"]
        return {
            **data,
            "img_size": recorded["img_size"],  # the model's input size
            "mean": recorded["mean"],
            "std": recorded["std"],
        }
    saved = checkpoint.get("config", {}).get("data")
    if not saved:
        raise KtaError("the checkpoint does not record its data set; pass data=<option>")
    return saved
