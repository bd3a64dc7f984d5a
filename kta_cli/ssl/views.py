"""SimCLR's two augmented views of a batch (Chen et al. 2020, appendix A), on batched tensors.

Random resized crop, horizontal flip, colour jitter (p=0.8), greyscale (p=0.2) and Gaussian
blur (p=0.5), each with its own random parameters per image, in a few batched tensor operations.
Hand-written because torchvision.transforms.v2 draws one set of parameters per call: per-image
parameters would mean a Python loop over images, which is what makes in-memory sets fast to
lose. The colour formulas are torchvision's (its _blend; greyscale and HSV from v2.functional).
Parameters come from `generator`, or torch's global CPU generator, which the loop saves after
every step: a resumed run draws the very same views.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF
from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv


@dataclass
class ViewSettings:
    """SimCLR's augmentation; the defaults are the paper's ImageNet recipe (colour strength 1)."""

    crop_scale: tuple[float, float] = (0.08, 1.0)  # area of the crop, as a fraction
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    jitter: float = 1.0  # strength s: brightness, contrast, saturation 0.8 s; hue 0.2 s
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)


def uniform(
    n: int, low: float, high: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def crop_flip_theta(
    n: int, settings: ViewSettings, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(n, 2, 3) affine matrices for F.affine_grid: a random crop, resized, maybe flipped.

    torchvision's RandomResizedCrop retries a crop that does not fit; here its width and height
    are clipped to the image instead, which keeps one draw per image (and the batch fixed-size).
    """
    area = uniform(n, *settings.crop_scale, generator)
    log_ratio = uniform(n, *(math.log(r) for r in settings.crop_ratio), generator)
    width = torch.sqrt(area * log_ratio.exp()).clamp(max=1.0)  # fractions of the image side
    height = torch.sqrt(area / log_ratio.exp()).clamp(max=1.0)
    centre_x = width / 2 + (1 - width) * torch.rand(n, generator=generator)
    centre_y = height / 2 + (1 - height) * torch.rand(n, generator=generator)
    flip = torch.rand(n, generator=generator) < settings.hflip
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.where(flip, -width, width)
    theta[:, 0, 2] = 2 * centre_x - 1  # grid coordinates run from -1 to 1
    theta[:, 1, 1] = height
    theta[:, 1, 2] = 2 * centre_y - 1
    return theta


def per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.device, like.dtype).view(-1, 1, 1, 1)


def colour_jitter(
    images: torch.Tensor, settings: ViewSettings, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Brightness, contrast, saturation, hue (in that fixed order) on images in [0, 1]; an image
    left alone (probability 1 - jitter_p) gets the identity factors."""
    n, s = len(images), settings.jitter
    apply = torch.rand(n, generator=generator) < settings.jitter_p

    def factor(low: float, high: float, identity: float) -> torch.Tensor:
        return per_image(torch.where(apply, uniform(n, low, high, generator), identity), images)

    brightness = factor(max(0.0, 1 - 0.8 * s), 1 + 0.8 * s, 1.0)
    contrast = factor(max(0.0, 1 - 0.8 * s), 1 + 0.8 * s, 1.0)
    saturation = factor(max(0.0, 1 - 0.8 * s), 1 + 0.8 * s, 1.0)
    hue = factor(-0.2 * s, 0.2 * s, 0.0)
    images = (images * brightness).clamp(0, 1)
    mean = TF.rgb_to_grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    images = (contrast * images + (1 - contrast) * mean).clamp(0, 1)
    grey = TF.rgb_to_grayscale(images)
    images = (saturation * images + (1 - saturation) * grey).clamp(0, 1)
    if s > 0:
        hsv = _rgb_to_hsv(images)
        hsv = torch.cat([(hsv[:, :1] + hue) % 1.0, hsv[:, 1:]], dim=1)
        images = _hsv_to_rgb(hsv)
    return images


def gaussian_blur(
    images: torch.Tensor, settings: ViewSettings, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A separable Gaussian blur, kernel 10% of the image side (odd, at least 3), with its own
    sigma per image; an image not blurred gets a one-tap kernel."""
    n, channels, height, width = images.shape
    size = max(3, int(0.1 * min(height, width)) // 2 * 2 + 1)
    sigma = uniform(n, *settings.blur_sigma, generator)
    blurred = torch.rand(n, generator=generator) < settings.blur_p
    offsets = torch.arange(size, dtype=torch.float32) - size // 2
    kernel = torch.exp(-(offsets**2) / (2 * sigma[:, None] ** 2))
    identity = (offsets == 0).float().expand(n, -1)
    kernel = torch.where(blurred[:, None], kernel / kernel.sum(1, keepdim=True), identity)
    kernel = kernel.to(images.device, images.dtype).repeat_interleave(channels, dim=0)
    pad = size // 2
    flat = images.reshape(1, n * channels, height, width)
    flat = F.conv2d(
        F.pad(flat, (0, 0, pad, pad), mode="reflect"), kernel[:, None, :, None], groups=n * channels
    )
    flat = F.conv2d(
        F.pad(flat, (pad, pad, 0, 0), mode="reflect"), kernel[:, None, None, :], groups=n * channels
    )
    return flat.reshape(n, channels, height, width)


def augment(
    images: torch.Tensor, settings: ViewSettings, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One random view of each image in a (B, 3, H, W) batch in [0, 1]; the result is in [0, 1]."""
    theta = crop_flip_theta(len(images), settings, generator).to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    views = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    views = colour_jitter(views.clamp(0, 1), settings, generator)
    grey = torch.rand(len(images), generator=generator) < settings.grayscale_p
    views = torch.where(per_image(grey, views).bool(), TF.rgb_to_grayscale(views, 3), views)
    return gaussian_blur(views, settings, generator).clamp(0, 1)


def two_views(
    images: torch.Tensor,
    settings: ViewSettings,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two views of a batch of model inputs (normalised with mean/std), normalised alike."""
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    raw = (images * std_t + mean_t).clamp(0, 1)  # the colour operations work in [0, 1]
    return tuple(  # type: ignore[return-value]
        (augment(raw, settings, generator) - mean_t) / std_t for _ in range(2)
    )
