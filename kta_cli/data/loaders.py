"""Loaders with a seeded, resumable data order: (seed, epoch) fixes the order, a start batch skips.

In-memory sets (digits, shapes) are sliced straight from tensors, so they never pay per-sample PIL
or collate costs. Folder and torchvision sets go through a DataLoader with the same ordering.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from kta_cli.errors import KtaError

Batch = tuple[torch.Tensor, torch.Tensor]


def epoch_order(
    n: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool,
    rank: int = 0,
    world_size: int = 1,
    pad: bool = True,
) -> torch.Tensor:
    """The sample indices this rank visits in this epoch. Training shards are padded (with the
    first images again) so every rank takes as many steps; evaluation shards (`pad=False`) are
    not, so a score summed over ranks counts each image once."""
    if shuffle:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    if world_size > 1:
        if pads(n, world_size, pad):
            total = math.ceil(n / world_size) * world_size
            order = torch.cat([order, order[: total - n]])
        order = order[rank::world_size]
    return order


def pads(n: int, world_size: int, pad: bool) -> bool:
    """Unpadded shards need at least one image on every rank (each rank sends its sums)."""
    return pad or n < world_size


def shard_size(n: int, rank: int, world_size: int, pad: bool) -> int:
    if world_size == 1:
        return n
    if pads(n, world_size, pad):
        return math.ceil(n / world_size)
    return len(range(rank, n, world_size))


class InMemoryLoader:
    """Batches of (images, labels) cut from tensors; `transform` augments each image."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.seed, self.drop_last = (
            batch_size,
            shuffle,
            seed,
            drop_last,
        )
        self.transform, self.rank, self.world_size = transform, rank, world_size
        self.pad = pad
        self.epoch, self.start_batch = 0, 0
        self.dataset = self  # so len(loader.dataset) works as for a DataLoader

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        per_rank = shard_size(len(self.labels), self.rank, self.world_size, self.pad)
        batches = per_rank / self.batch_size
        return math.floor(batches) if self.drop_last else math.ceil(batches)

    def batch_indices(self) -> Iterator[torch.Tensor]:
        """The sample indices of each batch this rank visits this epoch, from start_batch on."""
        order = epoch_order(
            len(self.labels),
            seed=self.seed,
            epoch=self.epoch,
            shuffle=self.shuffle,
            rank=self.rank,
            world_size=self.world_size,
            pad=self.pad,
        )
        for batch in range(self.start_batch, len(self)):
            yield order[batch * self.batch_size : (batch + 1) * self.batch_size]
        self.start_batch = 0

    def __iter__(self) -> Iterator[Batch]:
        for index in self.batch_indices():
            images = self.images[index]
            if self.transform is not None:
                images = torch.stack([self.transform(image) for image in images])
            yield images, self.labels[index]


class EpochSampler(Sampler[int]):
    """The DataLoader twin of InMemoryLoader's ordering, resumable at a batch."""

    def __init__(
        self,
        n: int,
        *,
        seed: int,
        shuffle: bool,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ) -> None:
        self.n, self.seed, self.shuffle, self.batch_size = n, seed, shuffle, batch_size
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.epoch, self.start_batch = 0, 0

    def __iter__(self) -> Iterator[int]:
        order = epoch_order(
            self.n,
            seed=self.seed,
            epoch=self.epoch,
            shuffle=self.shuffle,
            rank=self.rank,
            world_size=self.world_size,
            pad=self.pad,
        )
        start, self.start_batch = self.start_batch * self.batch_size, 0
        return iter(order[start:].tolist())

    def __len__(self) -> int:
        per_rank = shard_size(self.n, self.rank, self.world_size, self.pad)
        return max(0, per_rank - self.start_batch * self.batch_size)


class SamplerLoader:
    """A DataLoader whose order follows EpochSampler; same interface as InMemoryLoader."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ) -> None:
        self.dataset = dataset
        self.sampler = EpochSampler(
            len(dataset),
            seed=seed,
            shuffle=shuffle,
            batch_size=batch_size,
            rank=rank,
            world_size=world_size,
            pad=pad,
        )
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            drop_last=drop_last,
            num_workers=num_workers,
            persistent_workers=False,
            pin_memory=False,
        )
        self.batch_size, self.drop_last = batch_size, drop_last
        self._full_len = len(self.loader)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.sampler.epoch, self.sampler.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return self._full_len

    def __iter__(self) -> Iterator[Batch]:
        yield from self.loader


def collect(loader: Any, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All (or the first `limit`) images and labels of a loader, in its order."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(0, 0)
    images, labels, total = [], [], 0
    for batch_images, batch_labels in loader:
        images.append(batch_images)
        labels.append(batch_labels)
        total += len(batch_labels)
        if limit is not None and total >= limit:
            break
    if not images:
        raise KtaError("the chosen data split is empty")
    return torch.cat(images)[:limit], torch.cat(labels)[:limit]
