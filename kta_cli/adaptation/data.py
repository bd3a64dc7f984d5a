"""Source and target together: labelled source batches, each paired with a target batch.

Target images for adaptation are drawn with another seed than the source's, so the unlabelled
target set is not the source images restyled one for one (a pairing no real shift provides).
Scoring uses the shapes test split drawn in the target style (what `data.test_style` gives), so
every method is scored on the same target images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import torch

from kta_cli.data.datasets import DataBundle, DataSpec, build_data
from kta_cli.data.loaders import InMemoryLoader, epoch_order
from kta_cli.data.shapes import STYLES
from kta_cli.data.spec import AugmentSpec
from kta_cli.errors import KtaError

TARGET_SEED_OFFSET = 1  # unlabelled target draws: data.seed + 1


def check_style(style: str, key: str) -> None:
    from kta_cli.errors import did_you_mean

    for part in style.split("+"):
        if part not in STYLES:
            raise KtaError(f"{key}: " + did_you_mean(part, STYLES, what="shapes style"))


def unlabelled_target(
    spec: DataSpec, style: str | None, *, augment: bool = True, rank: int = 0, world_size: int = 1
) -> Any:
    """The training split of the target data (shapes in `style`, drawn with another seed);
    `augment=False` (test-time adaptation) drops data.augment: statistics of the images as
    they will be scored."""
    if not augment:
        spec = dataclasses.replace(spec, augment=AugmentSpec())
    if spec.name != "shapes" or style is None:
        return build_data(spec, rank=rank, world_size=world_size).train
    drawn = dataclasses.replace(
        spec,
        style=style,
        test_style=None,
        target_style=None,
        seed=spec.seed + TARGET_SEED_OFFSET,
        train_per_class=None,  # a cap on labelled examples; these are unlabelled
    )
    return build_data(drawn, rank=rank, world_size=world_size).train


def scored_target(spec: DataSpec, style: str | None) -> DataBundle:
    """Source splits with val/test drawn in the target style (the labels score, nothing else)."""
    if spec.name != "shapes" or style is None:
        return build_data(spec)
    return build_data(dataclasses.replace(spec, test_style=style, target_style=None))


class PairedLoader:
    """(source images, source labels, target images, target labels) per batch, as many batches
    as the source has. The target order is seeded by (seed, epoch) too and wraps within the
    epoch, so a resumed run sees the same pairs (set_epoch with a start batch)."""

    def __init__(self, source: InMemoryLoader, target: InMemoryLoader, *, shuffle: bool) -> None:
        self.source, self.target, self.shuffle = source, target, shuffle
        self.dataset = source.dataset
        self.epoch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.source.set_epoch(epoch, start_batch)

    def __len__(self) -> int:
        return len(self.source)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        target = self.target
        order = epoch_order(
            len(target.labels),
            seed=target.seed + 7919,  # not the source's order: the pairs are arbitrary
            epoch=self.epoch,
            shuffle=self.shuffle,
            rank=target.rank,
            world_size=target.world_size,
        )
        size = self.source.batch_size
        start = self.source.start_batch
        for batch, (images, labels) in enumerate(self.source, start=start):
            first = (batch * size) % len(order)
            index = torch.cat([order, order])[first : first + len(images)]  # wraps around once
            yield images, labels, target.images[index], target.labels[index]


def dann_data(spec: DataSpec, *, rank: int = 0, world_size: int = 1) -> DataBundle:
    """Train: flat-style labelled source paired with unlabelled target draws; val: source val
    paired with target val (model selection reads val_acc, the source's: no target labels);
    test: source test paired with the target-style test split."""
    if spec.name != "shapes" or not spec.target_style:
        raise KtaError(
            "task=dann needs data=shapes and data.target_style=<style> (the unlabelled target "
            f"domain), e.g. data.target_style=texture; got data={spec.name}, "
            f"data.target_style={spec.target_style}"
        )
    check_style(spec.target_style, "data.target_style")
    if spec.test_style:
        raise KtaError("task=dann scores its target from data.target_style; drop data.test_style")
    source = build_data(spec, rank=rank, world_size=world_size)
    target = unlabelled_target(spec, spec.target_style, rank=rank, world_size=world_size)
    scored = scored_target(spec, spec.target_style)
    return DataBundle(
        PairedLoader(source.train, target, shuffle=True),
        PairedLoader(source.val, scored.val, shuffle=False),
        PairedLoader(source.test, scored.test, shuffle=False),
        source.class_names,
        spec,
    )
