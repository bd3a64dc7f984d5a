"""Normalisation and augmentation (torchvision.transforms.v2), for tensors and for PIL images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torchvision.transforms import v2

from kta_cli.errors import KtaError

AUGMENT_KEYS = {"hflip", "crop_padding", "random_resized_crop", "color_jitter", "noise_std"}


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    mean_t = torch.tensor(mean, dtype=images.dtype).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype).view(-1, 1, 1)
    return (images - mean_t) / std_t


def augment_steps(options: dict[str, Any], img_size: int) -> list[v2.Transform]:
    """The random steps named in `data.augment`, in a fixed order."""
    unknown = sorted(set(options) - AUGMENT_KEYS)
    if unknown:
        raise KtaError(f"unknown data.augment option(s) {unknown}; known: {sorted(AUGMENT_KEYS)}")
    steps: list[v2.Transform] = []
    if options.get("random_resized_crop"):
        steps.append(v2.RandomResizedCrop(img_size, scale=(0.6, 1.0), antialias=True))
    if options.get("crop_padding"):
        steps.append(v2.RandomCrop(img_size, padding=int(options["crop_padding"])))
    if options.get("hflip"):
        steps.append(v2.RandomHorizontalFlip())
    return steps


def build_augment(options: dict[str, Any], img_size: int) -> Callable | None:
    """Augmentation for already-normalised image tensors (in-memory sets); None when off."""
    steps = augment_steps(options, img_size)
    if options.get("noise_std"):
        # Gaussian noise injection, a regulariser: added after normalisation, no clipping.
        steps.append(v2.GaussianNoise(sigma=float(options["noise_std"]), clip=False))
    return v2.Compose(steps) if steps else None


def build_image_transform(
    options: dict[str, Any] | None, *, img_size: int, mean: Sequence[float], std: Sequence[float]
) -> v2.Compose:
    """PIL image -> normalised tensor; with `options`, the training augmentation too."""
    steps: list[v2.Transform] = [
        v2.ToImage(),
        v2.RGB(),
        v2.Resize((img_size, img_size), antialias=True),
    ]
    steps += augment_steps(options or {}, img_size)
    if options and options.get("color_jitter"):
        strength = float(options["color_jitter"])
        steps.append(v2.ColorJitter(strength, strength, strength))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    if options and options.get("noise_std"):
        steps.append(v2.GaussianNoise(sigma=float(options["noise_std"]), clip=False))
    return v2.Compose(steps)
