"""Linear probing on cached features: the frozen body runs once per image, the head many times.

timm splits every model into forward_features and forward_head, so the cached tensor is exactly
what the head sees in a full forward pass with the body in eval mode.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from kta_cli.data.loaders import InMemoryLoader
from kta_cli.errors import KtaError

log = logging.getLogger(__name__)


class HeadOnly(nn.Module):
    """The model's head applied to cached body features; shares the model's parameters."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(features)


@torch.no_grad()
def extract(model: nn.Module, loader: Any, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(features, labels) for every example of a loader, in its stored order when it has one
    (in-memory sets: no augmentation, the same batches as an uncached run); else one pass."""
    if isinstance(loader, InMemoryLoader):
        images, labels = loader.images, loader.labels
        batch = loader.batch_size
        chunks = [images[i : i + batch].to(device) for i in range(0, len(images), batch)]
        return torch.cat([model.forward_features(c) for c in chunks]), labels.to(device)
    loader.set_epoch(0, 0)
    features, labels = [], []
    for images, target in loader:
        features.append(model.forward_features(images.to(device)))
        labels.append(target.to(device))
    return torch.cat(features), torch.cat(labels)


def cached_feature_data(model: nn.Module, data: Any, device: torch.device | str) -> Any:
    """The same bundle with every split replaced by the frozen body's features."""
    if not hasattr(model, "forward_features") or not hasattr(model, "forward_head"):
        raise KtaError("strategy.cache_features needs a timm model (forward_features/forward_head)")
    device = torch.device(device)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    splits = []
    for loader in (data.train, data.val, data.test):
        features, labels = extract(model, loader, device)
        splits.append(
            InMemoryLoader(
                features,
                labels,
                batch_size=loader.batch_size,
                shuffle=loader is data.train,
                seed=data.spec.seed,
            )
        )
    for module, mode in modes.items():
        module.training = mode
    log.info("cached features: %s per image", tuple(splits[0].images.shape[1:]))
    return replace(data, train=splits[0], val=splits[1], test=splits[2])
