"""The kNN monitor of self-supervised training (Wu et al. 2018, as solo-learn and lightly run it).

Each evaluation pass takes the pooled features of the training split with the weights of that
moment (the feature bank), then classifies every validation image by a vote of its k most
cosine-similar bank images, each weighted exp(similarity / T). No labels reach the training;
they only score the features.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from kta_cli.data.loaders import InMemoryLoader
from kta_cli.models.features import pre_logits


def knn_predict(
    features: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    *,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.07,
) -> torch.Tensor:
    """Class predictions for (B, D) L2-normalised features against an (N, D) normalised bank."""
    similarity = features @ bank.T
    top, index = similarity.topk(min(k, len(bank)), dim=1)
    votes = torch.zeros(len(features), num_classes, device=features.device, dtype=top.dtype)
    votes.scatter_add_(1, bank_labels[index], (top / temperature).exp())
    return votes.argmax(dim=1)


def unaugmented(loader: Any, batch_size: int) -> Any:
    """The training split in order, without augmentation, for the bank (in-memory sets; other
    loaders are read as they are, augmentation included)."""
    if not isinstance(loader, InMemoryLoader):
        return loader
    return InMemoryLoader(
        loader.images,
        loader.labels,
        batch_size=batch_size,
        shuffle=False,
        rank=loader.rank,
        world_size=loader.world_size,
    )


@torch.no_grad()
def feature_bank(model: nn.Module, loader: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised pooled features, labels) of every image in `loader`, in eval mode; under
    torchrun, gathered from every process. The global random streams are left as they were,
    so the bank never changes what training draws next."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    device = next(model.parameters()).device
    features, labels = [], []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        loader.set_epoch(0, 0)
        for images, targets in loader:
            features.append(F.normalize(pre_logits(model, images.to(device)).float(), dim=1))
            labels.append(targets.to(device))
    for module, mode in modes.items():
        module.training = mode
    bank, bank_labels = torch.cat(features), torch.cat(labels)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        bank, bank_labels = (gather(t) for t in (bank, bank_labels))
    return bank, bank_labels


def gather(tensor: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


class KnnEvalLoader:
    """An evaluation loader (val or test) whose batches also carry the feature bank:
    (images, labels, bank, bank_labels). The bank is rebuilt at the start of every pass, so it
    always has the weights being scored (each epoch's, then the best ones for the test split)."""

    def __init__(self, loader: Any, bank_loader: Any, task: nn.Module) -> None:
        self.loader, self.bank_loader, self.task = loader, bank_loader, task
        self.dataset = loader.dataset

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.loader.set_epoch(epoch, start_batch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        bank, bank_labels = feature_bank(self.task.model, self.bank_loader)
        for images, labels in self.loader:
            yield images, labels, bank, bank_labels
