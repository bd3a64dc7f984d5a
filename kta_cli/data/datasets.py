"""Build train/val/test loaders for every data set kta knows, from one DataSpec.

The names library callers use live here: DataSpec, DataBundle, spec_from_dict, build_data, ...
"""

from __future__ import annotations

import torch

from kta_cli.data.folders import build_fake, build_imagefolder, build_torchvision
from kta_cli.data.memory import in_memory_bundle, in_memory_loader, load_digits_tensors
from kta_cli.data.shapes import SHAPES, ShapeSet, draw_shapes
from kta_cli.data.spec import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TORCHVISION_SETS,
    DataBundle,
    DataSpec,
    spec_as_dict,
    spec_from_dict,
)
from kta_cli.data.splits import cap_per_class, select_classes, stratified_split
from kta_cli.errors import KtaError, did_you_mean

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TORCHVISION_SETS",
    "DataBundle",
    "DataSpec",
    "build_data",
    "cap_per_class",
    "in_memory_loader",
    "load_digits_tensors",
    "select_classes",
    "spec_as_dict",
    "spec_from_dict",
    "stratified_split",
]
DATA_SETS = ("digits", "shapes", "imagefolder", "fake", *TORCHVISION_SETS)


def build_data(spec: DataSpec, *, rank: int = 0, world_size: int = 1) -> DataBundle:
    """Loaders for `spec.name`: digits, shapes, imagefolder, fake, or a torchvision set."""
    if spec.img_size is None or spec.mean is None or spec.std is None:
        raise KtaError("data.img_size, data.mean and data.std must be set to build a data set")
    if spec.name == "digits":
        images, labels, names = load_digits_tensors()
        return in_memory_bundle(spec, images, labels, names, rank, world_size)
    if spec.name == "shapes":
        train, shifted = shapes_sets(spec)
        textures = (train.texture_labels, shifted.texture_labels)
        return in_memory_bundle(
            spec,
            train.images,
            train.shape_labels,
            list(SHAPES),
            rank,
            world_size,
            shifted.images,
            textures if (torch.cat(textures) >= 0).any() else None,
        )
    if spec.name == "imagefolder":
        return build_imagefolder(spec, rank, world_size)
    if spec.name == "fake":
        return build_fake(spec, rank, world_size)
    if spec.name in TORCHVISION_SETS:
        return build_torchvision(spec, rank, world_size)
    raise KtaError(did_you_mean(spec.name, DATA_SETS, what="data set"))


def shapes_sets(spec: DataSpec) -> tuple[ShapeSet, ShapeSet]:
    """Training shapes in data.style, and val/test shapes: the same shapes in data.test_style."""
    options = {
        "size": spec.img_size,
        "seed": spec.seed,
        "own_texture_share": spec.own_texture_share,
        "texture_classes": spec.classes,
    }
    count = spec.per_class * len(SHAPES)
    train = draw_shapes(count, style=spec.style, **options)
    if not spec.test_style:
        return train, train
    return train, draw_shapes(count, style=spec.test_style, **options)
