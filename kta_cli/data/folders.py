"""Data sets read from disk or made per sample: image folders, torchvision sets, FakeData."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset
from torchvision import datasets as tv_datasets
from torchvision.transforms.v2.functional import to_dtype

from kta_cli.data.folder_cache import load_image, load_or_build, memory_bytes
from kta_cli.data.loaders import SamplerLoader
from kta_cli.data.memory import in_memory_loader
from kta_cli.data.spec import DataBundle, DataSpec
from kta_cli.data.splits import cap_per_class, relabelling, select_classes, stratified_split
from kta_cli.data.transforms import build_augment, build_image_transform, normalize
from kta_cli.errors import KtaError

log = logging.getLogger(__name__)


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


# (which source: 0 the base set, 1.. the fixed val/test sets; the indices taken from it)
Part = tuple[int, torch.Tensor]


def split_indices(
    spec: DataSpec,
    targets: torch.Tensor,
    names: list[str],
    fixed_targets: tuple[torch.Tensor, ...] | None = None,
) -> tuple[list[Part], list[str], torch.Tensor | None]:
    """(train, val, test parts, class names kept, relabelling or None) from the labels alone:
    split the base set (unless val/test sets are given), select classes, cap per class."""
    relabel = None
    keep = torch.arange(len(targets))
    if spec.classes:
        all_classes = len(names)
        keep, _, names = select_classes(targets, spec.classes, names)
        relabel = relabelling(spec.classes, all_classes)
    if fixed_targets is None:
        parts = stratified_split(
            targets[keep],
            val_fraction=spec.val_fraction,
            test_fraction=spec.test_fraction,
            seed=spec.seed,
        )
        sets = [(0, keep[p]) for p in parts]
    else:
        sets = [(0, keep)]
        for source, extra in enumerate(fixed_targets, start=1):
            extra_keep = (
                torch.isin(extra, torch.tensor(spec.classes)).nonzero().flatten()
                if spec.classes
                else torch.arange(len(extra))
            )
            sets.append((source, extra_keep))
    if spec.train_per_class is not None:
        source, train_idx = sets[0]
        sets[0] = (source, cap_per_class(train_idx, targets, spec.train_per_class, spec.seed))
    return sets, names, relabel


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
    sources = [base, *(fixed or ())]
    fixed_targets = tuple(_targets(extra) for extra in fixed) if fixed else None
    sets, names, relabel = split_indices(spec, _targets(base), names, fixed_targets)
    wrapped = tuple(
        TransformedSubset(sources[source], idx, train_tf if i == 0 else eval_tf, relabel)
        for i, (source, idx) in enumerate(sets)
    )
    return loaders_from(spec, wrapped, names, rank=rank, world_size=world_size)


def build_imagefolder(spec: DataSpec, rank: int, world_size: int) -> DataBundle:
    """`root/<class>/*.jpg`, or `root/train|val|test/<class>/...` when the folder is split;
    decoded once into a tensor store when data.cache allows (kta_cli/data/folder_cache.py)."""
    if not spec.root:
        raise KtaError("data=imagefolder needs data.root=<folder of class sub-folders>")
    root = Path(spec.root).expanduser()
    if not root.is_dir():
        raise KtaError(f"data folder not found: {root}")

    def folder(path: Path) -> tv_datasets.ImageFolder:
        try:
            return tv_datasets.ImageFolder(str(path), loader=load_image)
        except FileNotFoundError as error:
            raise KtaError(
                f"data folder {path} is empty or has no images in class "
                "sub-folders (expected <root>/<class>/<image>)"
            ) from error

    if (root / "train").is_dir() and (root / "val").is_dir():
        parts = {"train": folder(root / "train"), "val": folder(root / "val")}
        if (root / "test").is_dir():
            parts["test"] = folder(root / "test")
    else:
        parts = {"all": folder(root)}
    if use_cache(spec, root, parts):
        return cached_bundle(spec, root, parts, rank, world_size)
    if "all" in parts:
        base = parts["all"]
        return _split_and_wrap(spec, base, list(base.classes), rank, world_size)
    train, val = parts["train"], parts["val"]
    fixed = (val, parts.get("test", val))
    return _split_and_wrap(spec, train, list(train.classes), rank, world_size, fixed)


def use_cache(spec: DataSpec, root: Path, parts: dict[str, tv_datasets.ImageFolder]) -> bool:
    """data.cache: `auto` uses the tensor store when it can, `ram` insists (one line when it
    cannot, since a user who asked for memory would not want a slow run instead), `off` never."""
    if spec.cache == "off":
        return False
    count = sum(len(part) for part in parts.values())
    needed_mb = memory_bytes(count, spec.img_size) / 2**20
    if spec.augment.color_jitter:
        # the stored images are normalised; jitter belongs on [0, 1] pixels, per file
        reason = "data.augment.color_jitter needs the image files; use data.cache=off or drop it"
    elif needed_mb > spec.cache_limit_mb:
        reason = (
            f"{count} images at {spec.img_size}x{spec.img_size} take {needed_mb:.0f} MB in "
            f"memory, over data.cache_limit_mb={spec.cache_limit_mb}; raise it or use "
            "data.cache=off"
        )
    else:
        return True
    if spec.cache == "ram":
        raise KtaError(f"data.cache=ram cannot hold {root}: {reason}")
    log.info("image folder %s: decoding per sample (%s)", root, reason)
    return False


def cached_bundle(
    spec: DataSpec,
    root: Path,
    parts: dict[str, tv_datasets.ImageFolder],
    rank: int,
    world_size: int,
) -> DataBundle:
    """The per-sample path's splits and order, sliced from decoded tensors as digits are."""
    stores = load_or_build(
        root,
        parts,
        img_size=spec.img_size,
        num_workers=spec.num_workers,
        cache_dir=spec.cache_dir,
    )
    order = ["all"] if "all" in stores else ["train", "val", "test" if "test" in stores else "val"]
    sources = [stores[name] for name in order]
    fixed_targets = tuple(store.labels for store in sources[1:]) or None
    sets, names, relabel = split_indices(
        spec, sources[0].labels, list(sources[0].classes), fixed_targets
    )
    augment = build_augment(spec.augment, spec.img_size)
    loaders = []
    for i, (source, index) in enumerate(sets):
        store = sources[source]
        pixels = to_dtype(store.images[index], torch.float32, scale=True)  # as v2.ToDtype does
        labels = store.labels[index] if relabel is None else relabel[store.labels[index]]
        images = normalize(pixels, spec.mean, spec.std)
        loaders.append(in_memory_loader(spec, images, labels, i == 0, augment, rank, world_size))
    return DataBundle(*loaders, names, spec)


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
            pad=i == 0,  # only training shards need equal step counts
        )
        for i, ds in enumerate(datasets)
    )
    return DataBundle(train, val, test, names, spec)
