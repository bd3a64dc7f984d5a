"""Data sets read from disk or made per sample: image folders, torchvision sets, FakeData."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Subset
from torchvision import datasets as tv_datasets

from kta_cli.data.loaders import SamplerLoader
from kta_cli.data.spec import DataBundle, DataSpec
from kta_cli.data.splits import cap_per_class, relabelling, select_classes, stratified_split
from kta_cli.data.transforms import build_image_transform
from kta_cli.errors import KtaError


def _load_image(path: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise KtaError(f"unreadable image file {path} ({type(error).__name__})") from error


class TransformedSubset(Dataset):
    """A subset of a labelled dataset with its own transform and optional relabelling."""

    def __init__(
        self, base: Any, index: torch.Tensor, transform: Any, relabel: torch.Tensor | None = None
    ) -> None:
        self.base, self.index, self.transform, self.relabel = (
            base,
            index.tolist(),
            transform,
            relabel,
        )

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, label = self.base[self.index[i]]
        if self.relabel is not None:
            label = int(self.relabel[label])
        return self.transform(image), label


def _targets(dataset: Any) -> torch.Tensor:
    for attribute in ("targets", "labels"):
        if hasattr(dataset, attribute):
            return torch.as_tensor(getattr(dataset, attribute))
    return torch.tensor([dataset[i][1] for i in range(len(dataset))])


def _split_and_wrap(
    spec: DataSpec,
    base: Any,
    names: list[str],
    rank: int,
    world_size: int,
    fixed: tuple[Any, Any] | None = None,
) -> DataBundle:
    """Split `base` (unless val/test sets are given in `fixed`), select classes, cap, wrap."""
    train_tf = build_image_transform(
        spec.augment, img_size=spec.img_size, mean=spec.mean, std=spec.std
    )
    eval_tf = build_image_transform(None, img_size=spec.img_size, mean=spec.mean, std=spec.std)
    relabel = None
    keep = torch.arange(len(base))
    if spec.classes:
        keep, _, names_kept = select_classes(_targets(base), spec.classes, names)
        relabel = relabelling(spec.classes, len(names))
        names = names_kept
    if fixed is None:
        parts = stratified_split(
            _targets(base)[keep],
            val_fraction=spec.val_fraction,
            test_fraction=spec.test_fraction,
            seed=spec.seed,
        )
        train_idx, val_idx, test_idx = (keep[p] for p in parts)
        sets = [(base, train_idx), (base, val_idx), (base, test_idx)]
    else:
        sets = [(base, keep)]
        for extra in fixed:
            extra_keep = (
                torch.isin(_targets(extra), torch.tensor(spec.classes)).nonzero().flatten()
                if spec.classes
                else torch.arange(len(extra))
            )
            sets.append((extra, extra_keep))
    if spec.train_per_class is not None:
        train_base, train_idx = sets[0]
        sets[0] = (
            train_base,
            cap_per_class(train_idx, _targets(train_base), spec.train_per_class, spec.seed),
        )
    wrapped = tuple(
        TransformedSubset(ds, idx, train_tf if i == 0 else eval_tf, relabel)
        for i, (ds, idx) in enumerate(sets)
    )
    return loaders_from(spec, wrapped, names, rank=rank, world_size=world_size)


def build_imagefolder(spec: DataSpec, rank: int, world_size: int) -> DataBundle:
    """`root/<class>/*.jpg`, or `root/train|val|test/<class>/...` when the folder is split."""
    if not spec.root:
        raise KtaError("data=imagefolder needs data.root=<folder of class sub-folders>")
    root = Path(spec.root).expanduser()
    if not root.is_dir():
        raise KtaError(f"data folder not found: {root}")

    def folder(path: Path) -> tv_datasets.ImageFolder:
        try:
            return tv_datasets.ImageFolder(str(path), loader=_load_image)
        except FileNotFoundError as error:
            raise KtaError(
                f"data folder {path} is empty or has no images in class "
                "sub-folders (expected <root>/<class>/<image>)"
            ) from error

    if (root / "train").is_dir() and (root / "val").is_dir():
        train, val = folder(root / "train"), folder(root / "val")
        test = folder(root / "test") if (root / "test").is_dir() else val
        return _split_and_wrap(spec, train, list(train.classes), rank, world_size, (val, test))
    base = folder(root)
    return _split_and_wrap(spec, base, list(base.classes), rank, world_size)


def build_torchvision(spec: DataSpec, rank: int, world_size: int) -> DataBundle:
    """cifar10/cifar100/mnist/fashion_mnist/svhn/stl10 from data.root, downloaded on request."""
    cls_name = {
        "cifar10": "CIFAR10",
        "cifar100": "CIFAR100",
        "mnist": "MNIST",
        "fashion_mnist": "FashionMNIST",
        "svhn": "SVHN",
        "stl10": "STL10",
    }[spec.name]
    root = str(Path(spec.root or "data").expanduser())
    dataset_cls = getattr(tv_datasets, cls_name)

    def make(train: bool) -> Any:
        split_kw: dict[str, Any] = (
            {"split": "train" if train else "test"}
            if spec.name in ("svhn", "stl10")
            else {"train": train}
        )
        try:
            return dataset_cls(root, download=spec.download, **split_kw)
        except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
            raise KtaError(
                f"{spec.name} not found under {root}; run once with "
                f"data.download=true (needs internet) or put the files there"
            ) from error
        except OSError as error:  # urllib's URLError is an OSError: offline
            raise KtaError(
                f"could not download {spec.name} to {root} ({error}); copy the files "
                "there from a machine with internet"
            ) from error

    train, test = make(True), make(False)
    names = list(getattr(train, "classes", [])) or [
        str(i) for i in range(int(_targets(train).max()) + 1)
    ]
    val_split = stratified_split(
        _targets(train), val_fraction=spec.val_fraction, test_fraction=0.0, seed=spec.seed
    )
    train_view = Subset(train, val_split[0].tolist())
    train_view.targets = _targets(train)[val_split[0]]  # type: ignore[attr-defined]
    val_view = Subset(train, val_split[1].tolist())
    val_view.targets = _targets(train)[val_split[1]]  # type: ignore[attr-defined]
    return _split_and_wrap(spec, train_view, names, rank, world_size, (val_view, test))


def build_fake(spec: DataSpec, rank: int, world_size: int) -> DataBundle:
    """torchvision FakeData: random images, per-sample PIL decoding, for throughput runs."""
    sizes = (spec.size, max(spec.size // 10, 1), max(spec.size // 10, 1))
    sets = [
        tv_datasets.FakeData(
            size=n,
            image_size=(3, spec.img_size, spec.img_size),
            num_classes=spec.num_classes,
            random_offset=i * 1_000_003,
        )
        for i, n in enumerate(sizes)
    ]
    names = [str(i) for i in range(spec.num_classes)]
    return _split_and_wrap(spec, sets[0], names, rank, world_size, (sets[1], sets[2]))


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
