"""What to load and how: the data schema (configs/data/*.yaml are presets of DataSpec).

No torch here: the schema is checked before any heavy import.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kta_cli.errors import KtaError, did_you_mean
from kta_cli.schema.checks import check_fields, fraction, non_negative, one_of, positive

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_SETS = ("cifar10", "cifar100", "mnist", "fashion_mnist", "svhn", "stl10")
# data=shapes styles (kta_cli/data/shapes.py draws them); class_texture and cue_conflict: shape
# against texture, each class with its own texture / each shape with another class's texture
SHAPE_STYLES = (
    "flat",
    "texture",
    "clutter",
    "noise",
    "colorshift",
    "class_texture",
    "cue_conflict",
)


@dataclass
class AugmentSpec:
    """Training-only augmentation (torchvision.transforms.v2)."""

    crop_padding: int = non_negative(0)  # random crop after zero padding by this many pixels
    hflip: bool = False
    random_resized_crop: bool = False
    color_jitter: float = non_negative(0.0)  # brightness/contrast/saturation (image files only)
    noise_std: float = non_negative(0.0)  # Gaussian noise injection after normalisation


@dataclass
class DataSpec:
    """One data set: the keys every set shares, then the few that only some read."""

    name: str = "digits"
    root: str | None = None  # folder of files (image folders, torchvision sets)
    download: bool = False  # torchvision sets: fetch once (needs internet)
    img_size: int | None = positive(32)  # null (kta distill): the teacher's input size
    batch_size: int = positive(64)
    eval_batch_size: int = positive(256)
    num_workers: int = non_negative(0)
    # image folders: decode and resize once into a tensor store kept on disk (kta_cli/data/
    # folder_cache.py). auto: when the decoded set fits cache_limit_mb, else per sample;
    # ram: always (refused in one line when it cannot); off: decode every image every epoch
    cache: str = one_of("auto", "ram", "off")
    cache_limit_mb: int = positive(4096)  # the decoded set in memory (float32), not the file
    cache_dir: str | None = None  # null: <root's parent>/.kta_cache, else ~/.cache/kta
    seed: int = 0
    classes: list[int] | None = None  # e.g. [5,6,7,8,9]: select and relabel a subset
    train_per_class: int | None = positive(None)  # cap labelled training examples per class
    val_fraction: float = fraction(0.1)
    test_fraction: float = fraction(0.2)  # sets without their own test split
    mean: list[float] | None = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] | None = field(default_factory=lambda: list(IMAGENET_STD))
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    # shapes: flat | texture | clutter | noise | colorshift | class_texture | cue_conflict, or
    # several joined with '+'
    style: str = "flat"
    test_style: str | None = None  # draw val/test in another style: a controlled domain shift
    # class_texture: the share of shapes filled with their own class's texture (the rest: another
    # class's texture, a stylised image); 1: texture predicts the class as well as shape does
    own_texture_share: float = fraction(1.0, closed=True)
    target_style: str | None = None  # task=dann: unlabelled target images in this style
    per_class: int = positive(200)
    # fake (torchvision FakeData)
    num_classes: int = positive(10)
    size: int = positive(512)

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):  # library callers pass augment={"hflip": True}
            known = [f.name for f in dataclasses.fields(AugmentSpec)]
            for key in self.augment:
                if key not in known:
                    raise KtaError(did_you_mean(key, known, what="data.augment option"))
            self.augment = AugmentSpec(**self.augment)

    def check(self) -> None:
        """Rules across fields, run by check_fields after each field's own."""
        if self.name == "imagefolder" and not self.root:
            raise KtaError("data.root must be set for data=imagefolder, e.g. data.root=<folder>")
        if self.name == "shapes":
            for key in ("style", "test_style"):
                for part in (getattr(self, key) or "flat").split("+"):
                    if part not in SHAPE_STYLES:
                        raise KtaError(did_you_mean(part, SHAPE_STYLES, what=f"data.{key}"))

    def describe(self) -> dict[str, Any]:
        """What a checkpoint keeps, so later commands preprocess images the same way."""
        return {
            "name": self.name,
            "img_size": self.img_size,
            "mean": list(self.mean or IMAGENET_MEAN),
            "std": list(self.std or IMAGENET_STD),
            "in_chans": 3,
        }


@dataclass
class DataBundle:
    train: Any
    val: Any
    test: Any
    class_names: list[str]
    spec: DataSpec
    # shapes with class textures: split -> the class whose texture fills each image (torch
    # tensors in the loader's order; -1: none), for the shape-vs-texture scores of kta eval
    texture_labels: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.class_names) < 2:  # one class: every prediction is right, nothing learns
            where = f" in {self.spec.root}" if self.spec.root else ""
            found = ", ".join(self.class_names) or "none"
            raise KtaError(
                f"data {self.spec.name}{where} has {len(self.class_names)} class ({found}); "
                "classification needs two classes or more"
            )


def spec_from_dict(values: dict[str, Any]) -> DataSpec:
    """A checked DataSpec from plain values (a config section, a checkpoint's record)."""
    known = [f.name for f in dataclasses.fields(DataSpec)]
    for key in values:
        if key not in known:
            raise KtaError(did_you_mean(f"data.{key}", [f"data.{k}" for k in known], "data key"))
    spec = DataSpec(**values)
    check_fields(spec, "data")
    return spec


def spec_as_dict(spec: DataSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)
