"""The one preprocessing step (resize + normalise) and augmentation (torchvision.transforms.v2).

Every image a model sees goes through `preprocess`: in-memory data sets, image files, and the
images `kta explain` reads, so a checkpoint's inputs look the same wherever they come from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from kta_cli.data.spec import AugmentSpec


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    return (images - mean_t) / std_t


def resize(images: torch.Tensor, img_size: int) -> torch.Tensor:
    """Float images in [0, 1], (N, C, H, W) or (C, H, W), to img_size x img_size (antialiased)."""
    if images.shape[-2:] == (img_size, img_size):
        return images
    batch = images if images.dim() == 4 else images[None]
    out = F.interpolate(
        batch, size=(img_size, img_size), mode="bilinear", align_corners=False, antialias=True
    )
    return out if images.dim() == 4 else out[0]


def preprocess(
    images: torch.Tensor, *, img_size: int, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """Float images in [0, 1] -> the model's input: resized, then normalised."""
    return normalize(resize(images, img_size), mean, std)


def augment_options(options: AugmentSpec | dict[str, Any] | None) -> AugmentSpec:
    if isinstance(options, AugmentSpec):
        return options
    return AugmentSpec(**(options or {}))


def augment_steps(options: AugmentSpec, img_size: int) -> list[v2.Transform]:
    """The random steps named in `data.augment`, in a fixed order."""
    steps: list[v2.Transform] = []
    if options.random_resized_crop:
        steps.append(v2.RandomResizedCrop(img_size, scale=(0.6, 1.0), antialias=True))
    if options.crop_padding:
        steps.append(v2.RandomCrop(img_size, padding=int(options.crop_padding)))
    if options.hflip:
        steps.append(v2.RandomHorizontalFlip())
    return steps


def build_augment(options: AugmentSpec | dict[str, Any] | None, img_size: int) -> Callable | None:
    """Augmentation for already-normalised image tensors (in-memory sets); None when off."""
    options = augment_options(options)
    steps = augment_steps(options, img_size)
    if options.noise_std:
        # Gaussian noise injection, a regulariser: added after normalisation, no clipping.
        steps.append(v2.GaussianNoise(sigma=float(options.noise_std), clip=False))
    return v2.Compose(steps) if steps else None


def build_image_transform(
    options: AugmentSpec | dict[str, Any] | None,
    *,
    img_size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> v2.Compose:
    """PIL image -> model input through `preprocess`; with `options`, the training augmentation
    too (between the resize and the normalisation, as in-memory sets have it)."""
    to_float = [v2.ToImage(), v2.RGB(), v2.ToDtype(torch.float32, scale=True)]
    if options is None:
        return v2.Compose(
            [*to_float, v2.Lambda(partial(preprocess, img_size=img_size, mean=mean, std=std))]
        )
    options = augment_options(options)
    steps = [*to_float, v2.Lambda(partial(resize, img_size=img_size))]
    steps += augment_steps(options, img_size)
    if options.color_jitter:
        strength = float(options.color_jitter)
        steps.append(v2.ColorJitter(strength, strength, strength))
    steps.append(v2.Lambda(partial(normalize, mean=mean, std=std)))
    if options.noise_std:
        steps.append(v2.GaussianNoise(sigma=float(options.noise_std), clip=False))
    return v2.Compose(steps)
