"""Experience replay's memory: reservoir sampling (Vitter's algorithm R) or a class-balanced
store, both seeded, so the same seed keeps the same examples.

Avalanche's buffers need its whole data-set machinery; on kta's in-memory tensors a buffer is
a few index operations, written here.
"""

from __future__ import annotations

import torch

from kta_cli.errors import KtaError

POLICIES = ("reservoir", "class_balanced")


class ReplayBuffer:
    """At most `size` (image, label) pairs from the tasks learned so far."""

    def __init__(self, size: int, policy: str = "reservoir", seed: int = 0) -> None:
        if policy not in POLICIES:
            raise KtaError(f"method.buffer must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.size, self.policy = size, policy
        self.generator = torch.Generator().manual_seed(seed)
        self.images: torch.Tensor | None = None
        self.labels = torch.zeros(0, dtype=torch.long)
        self.seen = 0  # examples offered so far (reservoir's n)

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Offer one task's training examples (in a seeded random order)."""
        order = torch.randperm(len(labels), generator=self.generator)
        images, labels = images[order], labels[order]
        if self.policy == "reservoir":
            self._reservoir(images, labels)
        else:
            self._balanced(images, labels)

    def _reservoir(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if self.images is None:
            self.images = images.new_zeros((0, *images.shape[1:]))
        free = max(0, self.size - len(self))
        self.images = torch.cat([self.images, images[:free]])
        self.labels = torch.cat([self.labels, labels[:free]])
        self.seen += min(free, len(labels))
        for image, label in zip(images[free:], labels[free:], strict=True):
            self.seen += 1
            # keep the n-th example with probability size / n, in a uniformly chosen slot
            slot = int(torch.randint(self.seen, (1,), generator=self.generator))
            if slot < self.size:
                self.images[slot], self.labels[slot] = image, label

    def _balanced(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """An equal share per class seen so far (the first classes get the remainder)."""
        pool_images = images if self.images is None else torch.cat([self.images, images])
        pool_labels = torch.cat([self.labels, labels])
        classes = pool_labels.unique(sorted=True)
        share, extra = divmod(self.size, len(classes))
        kept = []
        for rank, cls in enumerate(classes):
            members = (pool_labels == cls).nonzero().flatten()  # the buffer's own come first
            kept.append(members[: share + (1 if rank < extra else 0)])
        index = torch.cat(kept)
        self.images, self.labels = pool_images[index], pool_labels[index]

    def sample(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` examples drawn with replacement (an empty pair before the first task)."""
        if self.images is None or len(self) == 0:
            raise KtaError("the replay buffer is empty")
        index = torch.randint(len(self), (count,), generator=generator)
        return self.images[index], self.labels[index]


class ReplayLoader:
    """Each batch of the current task's loader with as many buffer examples appended; the
    draw is seeded by (seed, epoch, batch), so resuming a step replays the same examples."""

    def __init__(self, loader, buffer: ReplayBuffer, seed: int) -> None:  # noqa: ANN001
        self.loader, self.buffer, self.seed = loader, buffer, seed
        self.dataset, self.epoch, self.start_batch = loader.dataset, 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch
        self.loader.set_epoch(epoch, start_batch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):  # noqa: ANN204
        for batch, (images, labels) in enumerate(self.loader, start=self.start_batch):
            if len(self.buffer) == 0:
                yield images, labels
                continue
            generator = torch.Generator().manual_seed(
                self.seed * 1_000_003 + self.epoch * 997 + batch
            )
            old_images, old_labels = self.buffer.sample(len(labels), generator)
            yield torch.cat([images, old_images]), torch.cat([labels, old_labels])
        self.start_batch = 0
