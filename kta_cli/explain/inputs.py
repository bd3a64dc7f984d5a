"""The images to explain: files or a folder read with PIL, or samples drawn from a data set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from kta_cli.data.loaders import collect
from kta_cli.data.transforms import build_image_transform
from kta_cli.errors import KtaError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}


@dataclass
class Batch:
    images: torch.Tensor  # (N, 3, H, W), normalised as the model was trained
    labels: torch.Tensor  # (N,) true class, -1 where unknown
    names: list[str]  # file stems, or <split>_<index> for data-set samples


def image_files(path: str | Path) -> list[Path]:
    """One image file, or every image file in a folder (recursively, sorted)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise KtaError(f"image path not found: {path}")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise KtaError(
            f"no image files in folder {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files


def read_images(
    path: str | Path,
    *,
    img_size: int,
    mean: list[float],
    std: list[float],
    class_names: list[str],
    limit: int | None = None,
) -> Batch:
    """Read, resize and normalise images the way the checkpoint's data were.

    A file inside a folder named after a class (data/cat/1.png) has that class as its true label.
    """
    transform = build_image_transform(None, img_size=img_size, mean=mean, std=std)
    files = image_files(path)[:limit]
    images, labels = [], []
    for file in files:
        try:
            with Image.open(file) as image:
                images.append(transform(image.convert("RGB")))
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise KtaError(f"unreadable image file {file} ({type(error).__name__})") from error
        parent = file.parent.name
        labels.append(class_names.index(parent) if parent in class_names else -1)
    names = unique_names([f.stem for f in files])
    return Batch(torch.stack(images), torch.tensor(labels, dtype=torch.long), names)


def unique_names(stems: list[str]) -> list[str]:
    """File stems made unique (a/1.png and b/1.png become 1 and 1_2)."""
    seen: dict[str, int] = {}
    out = []
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return out


def sample_batch(loader: Any, n: int, split: str) -> Batch:
    images, labels = collect(loader, n)
    return Batch(images, labels.long(), [f"{split}_{i:04d}" for i in range(len(labels))])
