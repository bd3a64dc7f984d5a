"""One target domain: score the source model, adapt a copy on unlabelled target images, score it.

Labels are read only to score; adaptation sees images alone.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from kta_cli.adaptation.data import check_style, scored_target, unlabelled_target
from kta_cli.adaptation.tta import adabn, tent
from kta_cli.data.datasets import DataSpec
from kta_cli.data.loaders import InMemoryLoader
from kta_cli.engine.evaluate import predict
from kta_cli.errors import KtaError


@dataclass
class AdaptSettings:
    method: str = "adabn"
    split: str = "train"  # unlabelled images: held-out target draws, or the scored test split
    epochs: int = 1
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    batch_size: int = 128
    seed: int = 0


@dataclass
class TargetResult:
    target: str
    images: int
    source_acc: float
    adapted_acc: float
    online_acc: float | None  # tent: predictions made while adapting, on the scored images
    model: nn.Module

    def metrics(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values.pop("model")
        values["gain"] = self.adapted_acc - self.source_acc
        return values


def pass_epoch(seed: int, index: int) -> int:
    """The loader epoch of the index-th pass: a new seeded order each pass."""
    return seed * 1000 + index


def image_batches(loader: Any, seed: int) -> Any:
    """A fresh pass over the loader's images (labels dropped) on each call."""
    passes = [0]

    def batches():
        loader.set_epoch(pass_epoch(seed, passes[0]), 0)
        passes[0] += 1
        for images, _ in loader:
            yield images

    return batches


def accuracy(model: nn.Module, loader: Any, device: torch.device) -> tuple[float, int]:
    predicted, true, _ = predict(model, loader, device)
    return (predicted == true).float().mean().item(), len(true)


def test_stream(loader: Any, settings: AdaptSettings) -> InMemoryLoader:
    """adapt.split=test: the scored images themselves, shuffled (TENT's online setting)."""
    if not isinstance(loader, InMemoryLoader):
        raise KtaError("adapt.split=test needs an in-memory data set (digits, shapes)")
    return InMemoryLoader(
        loader.images, loader.labels, batch_size=settings.batch_size, shuffle=True,
        seed=settings.seed,
    )  # fmt: skip


def adapt_target(
    model: nn.Module,
    spec: DataSpec,
    style: str | None,
    settings: AdaptSettings,
    device: torch.device,
) -> TargetResult:
    """`model` (left unchanged) scored on the target test split, adapted, scored again."""
    if style is not None:
        check_style(style, "adapt.targets")
    spec = dataclasses.replace(spec, batch_size=settings.batch_size)
    scored = scored_target(spec, style)
    source_acc, images = accuracy(model, scored.test, device)
    if settings.split == "test":
        unlabelled = test_stream(scored.test, settings)
    else:
        unlabelled = unlabelled_target(spec, style, augment=False)
    adapted = copy.deepcopy(model)
    batches = image_batches(unlabelled, settings.seed)
    online_acc = None
    if settings.method == "adabn":
        adabn(adapted, batches, device)
    else:
        adapted, online = tent(
            adapted,
            batches,
            device,
            epochs=settings.epochs,
            lr=settings.lr,
            optimizer=settings.optimizer,
            momentum=settings.momentum,
        )
        if settings.split == "test":
            unlabelled.set_epoch(pass_epoch(settings.seed, 0), 0)  # the first pass
            labels = torch.cat([labels for _, labels in unlabelled])
            online_acc = (torch.cat(online) == labels).float().mean().item()
    return TargetResult(
        target=style or spec.name,
        images=images,
        source_acc=source_acc,
        adapted_acc=accuracy(adapted, scored.test, device)[0],
        online_acc=online_acc,
        model=adapted.cpu(),
    )
