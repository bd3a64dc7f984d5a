"""Stratified, seeded splits, class subsets and per-class caps, checked by counting."""

from __future__ import annotations

import pytest
import torch

from kta_cli.data.splits import cap_per_class, relabelling, select_classes, stratified_split
from kta_cli.errors import KtaError

# 20 of class 0, 10 of class 1, 30 of class 2, interleaved
LABELS = torch.tensor([0, 0, 1, 2, 2, 2] * 10)


def test_stratified_split_keeps_each_class_share_and_covers_every_example_once() -> None:
    train, val, test = stratified_split(LABELS, val_fraction=0.1, test_fraction=0.2, seed=0)
    counts = [torch.bincount(LABELS[part], minlength=3).tolist() for part in (train, val, test)]
    assert counts == [[14, 7, 21], [2, 1, 3], [4, 2, 6]]  # round(n*0.2), round(n*0.1), the rest
    everything = torch.cat([train, val, test]).sort().values
    assert torch.equal(everything, torch.arange(len(LABELS)))
    assert all(torch.equal(part, part.sort().values) for part in (train, val, test))


def test_stratified_split_is_seeded() -> None:
    a = stratified_split(LABELS, val_fraction=0.1, test_fraction=0.2, seed=0)
    b = stratified_split(LABELS, val_fraction=0.1, test_fraction=0.2, seed=0)
    c = stratified_split(LABELS, val_fraction=0.1, test_fraction=0.2, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[2], c[2])


def test_select_classes_relabels_in_the_order_given() -> None:
    labels = torch.tensor([0, 1, 2, 3, 2, 1])
    keep, relabelled, names = select_classes(labels, [2, 1], ["a", "b", "c", "d"])
    assert keep.tolist() == [1, 2, 4, 5]
    assert relabelled.tolist() == [1, 0, 0, 1] and names == ["c", "b"]
    assert relabelling([2, 1], 4).tolist() == [-1, 1, 0, -1]
    every, same, all_names = select_classes(labels, None, ["a", "b", "c", "d"])
    assert torch.equal(every, torch.arange(6)) and same is labels and len(all_names) == 4


@pytest.mark.parametrize("classes", [[0, 4], [1, 1], [-1]])
def test_select_classes_refuses_unknown_or_repeated_classes(classes) -> None:
    with pytest.raises(KtaError, match=r"must be distinct class indices in \[0, 3\]"):
        select_classes(torch.tensor([0, 1]), classes, ["a", "b", "c", "d"])


def test_cap_per_class_keeps_at_most_cap_of_each_seeded() -> None:
    index = torch.arange(len(LABELS))
    kept = cap_per_class(index, LABELS, 12, seed=0)
    assert torch.bincount(LABELS[kept]).tolist() == [12, 10, 12]  # class 1 has only 10
    assert torch.equal(kept, cap_per_class(index, LABELS, 12, seed=0))
    assert not torch.equal(kept, cap_per_class(index, LABELS, 12, seed=1))
    assert cap_per_class(index, LABELS, None, seed=0) is index
