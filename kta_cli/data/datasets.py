"""Build train/val/test loaders for every data set kta knows, from one typed description."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from kta_cli.data.loaders import InMemoryLoader, SamplerLoader
from kta_cli.data.transforms import build_augment, normalize
from kta_cli.errors import KtaError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_SETS = ("cifar10", "cifar100", "mnist", "fashion_mnist", "svhn", "stl10")


@dataclass
class DataSpec:
    """What to load and how; mirrors configs/data/*.yaml."""

    name: str = "digits"
    root: str | None = None
    download: bool = False
    img_size: int = 32
    batch_size: int = 64
    eval_batch_size: int = 256
    num_workers: int = 0
    seed: int = 0
    classes: list[int] | None = None  # select and relabel a subset, in this order
    train_per_class: int | None = None  # cap labelled training examples per class
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    augment: dict[str, Any] = field(default_factory=dict)
    # shapes
    style: str = "flat"
    test_style: str | None = None  # domain shift: val and test drawn in another style
    per_class: int = 200
    # fake
    num_classes: int = 10
    size: int = 512

    def describe(self) -> dict[str, Any]:
        """What a checkpoint keeps, so later commands preprocess images the same way."""
        return {
            "name": self.name,
            "img_size": self.img_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "in_chans": 3,
        }


@dataclass
class DataBundle:
    train: Any
    val: Any
    test: Any
    class_names: list[str]
    spec: DataSpec


def stratified_split(
    labels: torch.Tensor, *, val_fraction: float, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices of a seeded split that keeps every class's share in each part."""
    g = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[], [], []]
    for cls in labels.unique(sorted=True):
        index = (labels == cls).nonzero().flatten()
        index = index[torch.randperm(len(index), generator=g)]
        n_test = round(len(index) * test_fraction)
        n_val = round(len(index) * val_fraction)
        parts[2].append(index[:n_test])
        parts[1].append(index[n_test : n_test + n_val])
        parts[0].append(index[n_test + n_val :])
    return tuple(torch.cat(p).sort().values for p in parts)  # type: ignore[return-value]


def select_classes(
    labels: torch.Tensor, classes: list[int] | None, names: list[str]
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(kept indices, relabelled labels, their names) for `data.classes=[5,6,7]`."""
    if not classes:
        return torch.arange(len(labels)), labels, names
    unknown = [c for c in classes if not 0 <= c < len(names)]
    if unknown or len(set(classes)) != len(classes):
        raise KtaError(
            f"data.classes={classes} must be distinct class indices in [0, {len(names) - 1}]"
        )
    keep = torch.isin(labels, torch.tensor(classes)).nonzero().flatten()
    mapping = torch.full((len(names),), -1, dtype=torch.long)
    mapping[torch.tensor(classes)] = torch.arange(len(classes))
    return keep, mapping[labels[keep]], [names[c] for c in classes]


def cap_per_class(
    index: torch.Tensor, labels: torch.Tensor, cap: int | None, seed: int
) -> torch.Tensor:
    """At most `cap` of each class from `index` (a seeded choice; low-data regimes)."""
    if cap is None:
        return index
    g = torch.Generator().manual_seed(seed + 7)
    kept = []
    for cls in labels[index].unique(sorted=True):
        members = index[labels[index] == cls]
        kept.append(members[torch.randperm(len(members), generator=g)[:cap]])
    return torch.cat(kept).sort().values


def _in_memory(
    spec: DataSpec,
    images: torch.Tensor,
    labels: torch.Tensor,
    names: list[str],
    rank: int,
    world_size: int,
    eval_images: torch.Tensor | None = None,
) -> DataBundle:
    """Split, resize and normalise tensors in [0, 1] once, then slice batches from them."""
    keep, labels, names = select_classes(labels, spec.classes, names)
    images = images[keep]
    eval_images = images if eval_images is None else eval_images[keep]
    train_idx, val_idx, test_idx = stratified_split(
        labels, val_fraction=spec.val_fraction, test_fraction=spec.test_fraction, seed=spec.seed
    )
    train_idx = cap_per_class(train_idx, labels, spec.train_per_class, spec.seed)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != spec.img_size:
            x = F.interpolate(
                x,
                size=(spec.img_size, spec.img_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        return normalize(x, spec.mean, spec.std)

    augment = build_augment(spec.augment, spec.img_size)

    def loader(source: torch.Tensor, index: torch.Tensor, train: bool) -> InMemoryLoader:
        return in_memory_loader(
            spec, prepare(source[index]), labels[index], train, augment, rank, world_size
        )

    return DataBundle(
        loader(images, train_idx, True),
        loader(eval_images, val_idx, False),
        loader(eval_images, test_idx, False),
        names,
        spec,
    )


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
    )


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """scikit-learn's bundled 8x8 digits (1797 images) as (N, 3, 8, 8) in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    return images.expand(-1, 3, -1, -1), torch.tensor(digits.target), [str(i) for i in range(10)]


def build_data(spec: DataSpec, *, rank: int = 0, world_size: int = 1) -> DataBundle:
    """Loaders for `spec.name`: digits, shapes, imagefolder, fake, or a torchvision set."""
    if spec.name == "digits":
        images, labels, names = load_digits_tensors()
        return _in_memory(spec, images, labels, names, rank, world_size)
    if spec.name == "shapes":
        from kta_cli.data.shapes import SHAPES, generate_shapes

        count = spec.per_class * len(SHAPES)
        images, labels, _ = generate_shapes(
            count, size=spec.img_size, style=spec.style, seed=spec.seed
        )
        shifted = None
        if spec.test_style:
            shifted, _, _ = generate_shapes(
                count, size=spec.img_size, style=spec.test_style, seed=spec.seed
            )  # same shapes, other style
        return _in_memory(spec, images, labels, list(SHAPES), rank, world_size, shifted)
    from kta_cli.data.folders import build_folder_data

    return build_folder_data(spec, rank=rank, world_size=world_size)


def loaders_from(
    spec: DataSpec, datasets: tuple[Any, Any, Any], names: list[str], *, rank: int, world_size: int
) -> DataBundle:
    """Wrap three map-style datasets in seeded, resumable loaders."""
    train, val, test = (
        SamplerLoader(
            ds,
            batch_size=spec.batch_size if i == 0 else spec.eval_batch_size,
            shuffle=i == 0,
            seed=spec.seed,
            num_workers=spec.num_workers,
            rank=rank,
            world_size=world_size,
        )
        for i, ds in enumerate(datasets)
    )
    return DataBundle(train, val, test, names, spec)


def spec_from_dict(values: dict[str, Any]) -> DataSpec:
    known = set(DataSpec.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise KtaError(f"unknown data option(s) {unknown}; known: {sorted(known)}")
    return DataSpec(**values)


def spec_as_dict(spec: DataSpec) -> dict[str, Any]:
    return asdict(spec)
