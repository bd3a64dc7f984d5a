"""Seeded, resumable data order: (seed, epoch) fixes the order, a start batch skips exactly."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from kta_cli.data.loaders import InMemoryLoader, SamplerLoader, epoch_order


def data(n: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    # image i is filled with i, so a batch tells which samples it holds
    return torch.arange(n).float().view(n, 1, 1, 1).expand(n, 1, 2, 2).clone(), torch.arange(n)


def labels_of(loader) -> list[list[int]]:
    return [labels.tolist() for _, labels in loader]


def test_order_depends_on_seed_and_epoch_only() -> None:
    first = epoch_order(10, seed=3, epoch=1, shuffle=True)
    assert torch.equal(first, epoch_order(10, seed=3, epoch=1, shuffle=True))
    assert not torch.equal(first, epoch_order(10, seed=3, epoch=2, shuffle=True))
    assert not torch.equal(first, epoch_order(10, seed=4, epoch=1, shuffle=True))
    assert sorted(first.tolist()) == list(range(10))
    assert epoch_order(4, seed=3, epoch=1, shuffle=False).tolist() == [0, 1, 2, 3]


def test_ranks_split_an_epoch_padded_to_equal_shares() -> None:
    # 5 samples on 2 ranks: 6 slots, the first sample of the order visited twice
    order = epoch_order(5, seed=0, epoch=0, shuffle=False)
    ranks = [epoch_order(5, seed=0, epoch=0, shuffle=False, rank=r, world_size=2) for r in (0, 1)]
    assert ranks[0].tolist() == [0, 2, 4] and ranks[1].tolist() == [1, 3, 0]
    assert order.tolist() == [0, 1, 2, 3, 4]


def test_evaluation_shards_count_each_image_once_across_ranks() -> None:
    # 10 test images on 4 ranks: 3 + 3 + 2 + 2, no image twice (padded, rank 2 and 3 would each
    # score image 0 or 1 again and a summed accuracy would count 12 images)
    images, labels = data()
    shards = [
        InMemoryLoader(images, labels, batch_size=2, shuffle=False, rank=r, world_size=4, pad=False)
        for r in range(4)
    ]
    seen = [sum(labels_of(shard), []) for shard in shards]
    assert [len(s) for s in seen] == [3, 3, 2, 2] == [sum(map(len, labels_of(s))) for s in shards]
    assert [len(shard) for shard in shards] == [2, 2, 1, 1]
    assert sorted(sum(seen, [])) == list(range(10))
    # the DataLoader twin shards the same way
    twins = [
        SamplerLoader(TensorDataset(images, labels), batch_size=2, shuffle=False, rank=r,
                      world_size=4, pad=False)
        for r in range(4)
    ]  # fmt: skip
    assert [sum(labels_of(t), []) for t in twins] == seen
    # fewer images than ranks: every rank still gets one (each sends its sums)
    few = [epoch_order(3, seed=0, epoch=0, shuffle=False, rank=r, world_size=4, pad=False)
           for r in range(4)]  # fmt: skip
    assert all(len(order) == 1 for order in few)


def test_in_memory_loader_resumes_at_a_batch_with_the_same_rest_of_the_epoch() -> None:
    images, labels = data()
    loader = InMemoryLoader(images, labels, batch_size=3, shuffle=True, seed=7)
    loader.set_epoch(2)
    full = labels_of(loader)
    assert len(full) == len(loader) == 4 and [len(b) for b in full] == [3, 3, 3, 1]
    assert sorted(sum(full, [])) == list(range(10))
    loader.set_epoch(2, start_batch=2)
    assert labels_of(loader) == full[2:]  # what an interrupted run still had to see
    assert labels_of(loader) == full  # the skip applies to one pass only
    for images_, labels_ in loader:
        assert torch.equal(images_[:, 0, 0, 0].long(), labels_)  # images travel with labels


def test_drop_last_and_transform() -> None:
    images, labels = data()
    loader = InMemoryLoader(
        images, labels, batch_size=4, shuffle=False, drop_last=True, transform=lambda x: x + 100
    )
    batches = list(loader)
    assert len(loader) == len(batches) == 2
    assert batches[0][0][:, 0, 0, 0].tolist() == [100.0, 101.0, 102.0, 103.0]


def test_sampler_loader_visits_the_in_memory_order_and_resumes_alike() -> None:
    images, labels = data()
    memory = InMemoryLoader(images, labels, batch_size=3, shuffle=True, seed=5)
    folder = SamplerLoader(TensorDataset(images, labels), batch_size=3, shuffle=True, seed=5)
    for start in (0, 1):
        memory.set_epoch(1, start_batch=start)
        folder.set_epoch(1, start_batch=start)
        assert labels_of(folder) == labels_of(memory)
    assert len(folder) == 4
