"""Data sets held as tensors: prepared once (resize + normalise), batches sliced from memory."""

from __future__ import annotations

from typing import Any

import torch

from kta_cli.data.loaders import InMemoryLoader
from kta_cli.data.spec import DataBundle, DataSpec
from kta_cli.data.splits import cap_per_class, relabelling, select_classes, stratified_split
from kta_cli.data.transforms import build_augment, preprocess


def in_memory_bundle(
    spec: DataSpec,
    images: torch.Tensor,
    labels: torch.Tensor,
    names: list[str],
    rank: int,
    world_size: int,
    eval_images: torch.Tensor | None = None,
    textures: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> DataBundle:
    """Split, resize and normalise tensors in [0, 1] once, then slice batches from them.

    `textures`: (training, evaluation) texture classes per image (shapes), kept per split."""
    all_classes = len(names)
    keep, labels, names = select_classes(labels, spec.classes, names)
    images = images[keep]
    eval_images = images if eval_images is None else eval_images[keep]
    train_idx, val_idx, test_idx = stratified_split(
        labels, val_fraction=spec.val_fraction, test_fraction=spec.test_fraction, seed=spec.seed
    )
    train_idx = cap_per_class(train_idx, labels, spec.train_per_class, spec.seed)
    augment = build_augment(spec.augment, spec.img_size)

    def loader(source: torch.Tensor, index: torch.Tensor, train: bool) -> InMemoryLoader:
        prepared = preprocess(source[index], img_size=spec.img_size, mean=spec.mean, std=spec.std)
        return in_memory_loader(spec, prepared, labels[index], train, augment, rank, world_size)

    texture_labels = {}
    if textures is not None:
        mapping = relabelling(spec.classes or list(range(all_classes)), all_classes)
        train_textures, eval_textures = (relabel(t[keep], mapping) for t in textures)
        texture_labels = {
            "train": train_textures[train_idx],
            "val": eval_textures[val_idx],
            "test": eval_textures[test_idx],
        }
    return DataBundle(
        loader(images, train_idx, True),
        loader(eval_images, val_idx, False),
        loader(eval_images, test_idx, False),
        names,
        spec,
        texture_labels,
    )


def relabel(classes: torch.Tensor, mapping: torch.Tensor) -> torch.Tensor:
    """Class numbers through data.classes' relabelling; -1 (no class) stays -1."""
    return torch.where(classes >= 0, mapping[classes.clamp(min=0)], classes)


def in_memory_loader(
    spec: DataSpec,
    images: torch.Tensor,
    labels: torch.Tensor,
    train: bool,
    augment: Any,
    rank: int,
    world_size: int,
) -> InMemoryLoader:
    """A loader over prepared tensors: shuffled and augmented for training, in order otherwise."""
    return InMemoryLoader(
        images.contiguous(),
        labels,
        batch_size=spec.batch_size if train else spec.eval_batch_size,
        shuffle=train,
        seed=spec.seed,
        transform=augment if train else None,
        rank=rank,
        world_size=world_size,
        pad=train,  # scores summed over ranks count each test image once
    )


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """scikit-learn's bundled 8x8 digits (1797 images) as (N, 3, 8, 8) in [0, 1]."""
    from sklearn.datasets import load_digits  # only when digits are asked for (slow import)

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    return images.expand(-1, 3, -1, -1), torch.tensor(digits.target), [str(i) for i in range(10)]
