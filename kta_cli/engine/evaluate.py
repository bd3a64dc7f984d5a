"""Scoring a classifier over a loader: predictions, confusion matrix, and the data it reads."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig

from kta_cli.engine.loop import to_device
from kta_cli.errors import KtaError
from kta_cli.schema.store import section


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    loader: Any,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, classes) and true classes over a loader, on the CPU, in the loader's order."""
    model.eval()
    logits, targets = [], []
    for batch in loader:
        images, labels = to_device(batch, device, channels_last=False)
        logits.append(model(images).float().cpu())
        targets.append(labels.cpu())
    if not logits:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(logits), torch.cat(targets)


def predict(
    model: torch.nn.Module,
    loader: Any,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Predicted classes, true classes and mean cross-entropy over a loader."""
    logits, true = predict_logits(model, loader, device)
    if len(true) == 0:
        return true, true, 0.0
    loss = torch.nn.functional.cross_entropy(logits, true).item()
    return logits.argmax(dim=1), true, loss


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


def scored_data(cfg: DictConfig, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """checkpoint_data with the command's `data=` section when the user named one."""
    return checkpoint_data(
        checkpoint, section(cfg, "data") if cfg.get("data") is not None else None
    )


def cue_conflict_scores(
    predicted: torch.Tensor, shape_labels: torch.Tensor, texture_labels: torch.Tensor
) -> dict[str, float | int | None]:
    """Shape bias on cue-conflict images (Geirhos et al. 2019).

    Only images whose texture class differs from their shape class count. A prediction is a
    shape decision (it names the shape), a texture decision (it names the texture) or neither;
    shape bias = shape decisions / (shape + texture decisions), leaving out the neither ones.
    Shape and texture accuracy are those decisions' shares of all conflict images.
    """
    conflict = (texture_labels >= 0) & (texture_labels != shape_labels)
    predicted = predicted[conflict]
    shape = int((predicted == shape_labels[conflict]).sum())
    texture = int((predicted == texture_labels[conflict]).sum())
    images = int(conflict.sum())
    return {
        "cue_conflict_images": images,
        "shape_decisions": shape,
        "texture_decisions": texture,
        "shape_bias": shape / (shape + texture) if shape + texture else None,
        "shape_acc": shape / images if images else None,
        "texture_acc": texture / images if images else None,
    }
