"""Replay memory: never above its size, the same examples from the same seed."""

import torch

from kta_cli.continual.buffer import ReplayBuffer, ReplayLoader
from kta_cli.data.loaders import InMemoryLoader


def tasks():
    """Three tasks of two classes, 50 examples each; an image's value is its index."""
    out = []
    for t in range(3):
        index = torch.arange(50 * t, 50 * (t + 1)).float()
        out.append(
            (index.view(-1, 1, 1, 1).expand(-1, 3, 2, 2).clone(), 2 * t + torch.arange(50) % 2)
        )
    return out


def filled(policy: str, seed: int, size: int = 20) -> ReplayBuffer:
    buffer = ReplayBuffer(size, policy, seed=seed)
    for images, labels in tasks():
        buffer.add(images, labels)
        assert len(buffer) <= size and buffer.images.shape[0] == len(buffer.labels)
    return buffer


def test_reservoir_stays_within_its_size_and_is_reproducible_from_the_seed():
    first, again, other = filled("reservoir", 0), filled("reservoir", 0), filled("reservoir", 1)
    assert len(first) == 20 and first.seen == 150
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.images, other.images)
    # every example kept is one that was offered, with its own label
    values = first.images[:, 0, 0, 0].long()
    assert torch.equal(first.labels, 2 * (values // 50) + values % 2)


def test_class_balanced_keeps_an_equal_share_of_every_class_seen():
    buffer = filled("class_balanced", 0, size=18)  # six classes: three each
    assert torch.bincount(buffer.labels).tolist() == [3] * 6
    assert torch.equal(buffer.images, filled("class_balanced", 0, size=18).images)


def test_replay_batches_append_as_many_buffer_examples_and_repeat_per_epoch():
    buffer = filled("reservoir", 0)
    images, labels = tasks()[0]
    current = InMemoryLoader(images, labels, batch_size=8, shuffle=True, seed=3)
    loader = ReplayLoader(current, buffer, seed=3)
    loader.set_epoch(1)
    first = list(loader)
    loader.set_epoch(1)
    again = list(loader)
    assert len(first) == len(current) and first[0][0].shape[0] == 16
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
