"""Procedural shapes: the class is the shape; the style (colours, texture, clutter, noise) varies.

Every image is drawn from a seeded generator, so a (seed, style, count, size) tuple always gives the
same images. Training on one style and testing on another is a controlled domain shift.
"""

from __future__ import annotations

import math

import torch

SHAPES = ("circle", "ring", "triangle", "square", "cross", "star")
COLORS = ("red", "green", "blue", "yellow", "magenta", "cyan")
_PALETTE = torch.tensor(
    [
        [0.9, 0.15, 0.1],
        [0.1, 0.8, 0.2],
        [0.15, 0.3, 0.95],
        [0.95, 0.85, 0.1],
        [0.85, 0.2, 0.85],
        [0.1, 0.85, 0.9],
    ]
)
STYLES = ("flat", "texture", "clutter", "noise", "colorshift")


def _shape_masks(kinds: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Boolean masks (N, size, size), one random placement, scale and rotation each."""
    n = len(kinds)
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    centre = (torch.rand(n, 2, generator=g) - 0.5) * 0.6
    radius = (0.45 + 0.3 * torch.rand(n, generator=g))[:, None, None]
    theta = (torch.rand(n, generator=g) * 2 * math.pi)[:, None, None]
    dx, dy = xx - centre[:, 0, None, None], yy - centre[:, 1, None, None]
    u = dx * torch.cos(theta) + dy * torch.sin(theta)
    v = -dx * torch.sin(theta) + dy * torch.cos(theta)
    dist, angle = torch.sqrt(u**2 + v**2), torch.atan2(v, u)

    def polygon(sides: int) -> torch.Tensor:
        sector = 2 * math.pi / sides
        folded = torch.remainder(angle, sector) - sector / 2
        return dist * torch.cos(folded) < radius * math.cos(math.pi / sides)

    candidates = {
        "circle": dist < radius,
        "ring": (dist < radius) & (dist > 0.6 * radius),
        "triangle": polygon(3),
        "square": polygon(4),
        "cross": ((u.abs() < 0.3 * radius) & (v.abs() < radius))
        | ((v.abs() < 0.3 * radius) & (u.abs() < radius)),
        "star": dist < radius * (0.55 + 0.45 * torch.cos(5 * angle)),
    }
    stacked = torch.stack([candidates[name] for name in SHAPES])  # (S, N, H, W)
    return stacked[kinds, torch.arange(n)]


def _texture(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Sinusoidal stripes at a random frequency and orientation, in [0.4, 1]."""
    coords = torch.arange(size, dtype=torch.float32) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    freq = (4 + 8 * torch.rand(n, generator=g))[:, None, None]
    angle = (torch.rand(n, generator=g) * math.pi)[:, None, None]
    phase = xx * torch.cos(angle) + yy * torch.sin(angle)
    return 0.7 + 0.3 * torch.sin(2 * math.pi * freq * phase)


def _clutter(n: int, size: int, g: torch.Generator, blobs: int = 6) -> torch.Tensor:
    """A background of small random discs in random colours (N, 3, H, W)."""
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    background = torch.rand(n, 3, 1, 1, generator=g) * 0.3
    canvas = background.expand(n, 3, size, size).clone()
    for _ in range(blobs):
        centre = torch.rand(n, 2, 1, 1, generator=g)
        radius = 0.04 + 0.08 * torch.rand(n, 1, 1, generator=g)
        disc = ((xx - centre[:, 0]) ** 2 + (yy - centre[:, 1]) ** 2) < radius**2
        colour = torch.rand(n, 3, 1, 1, generator=g)
        canvas = torch.where(disc[:, None], colour, canvas)
    return canvas


def generate_shapes(
    count: int,
    *,
    size: int = 32,
    style: str = "flat",
    seed: int = 0,
    num_classes: int = len(SHAPES),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`count` images (N, 3, size, size) in [0, 1], shape labels and colour labels.

    `style` is one of STYLES or several joined with '+', e.g. 'texture+noise'.
    """
    styles = set(style.split("+"))
    g = torch.Generator().manual_seed(seed)
    shape_labels = torch.arange(count) % num_classes
    shape_labels = shape_labels[torch.randperm(count, generator=g)]
    color_labels = torch.randint(len(COLORS), (count,), generator=g)
    masks = _shape_masks(shape_labels, size, g)[:, None]  # (N, 1, H, W)

    palette = _PALETTE.flip(1) if "colorshift" in styles else _PALETTE  # RGB -> BGR hues
    foreground = palette[color_labels][:, :, None, None].expand(count, 3, size, size)
    if "texture" in styles:
        foreground = foreground * _texture(count, size, g)[:, None]
    if "clutter" in styles:
        background = _clutter(count, size, g)
    else:
        grey = 0.1 + 0.25 * torch.rand(count, 1, 1, 1, generator=g)
        background = grey.expand(count, 3, size, size)
        if "texture" in styles:
            background = background * (0.6 + 0.4 * _texture(count, size, g)[:, None])
    if "colorshift" in styles:
        background = 1.0 - background  # light backgrounds instead of dark
    images = torch.where(masks, foreground, background)
    if "noise" in styles:
        images = images + 0.15 * torch.randn(images.shape, generator=g)
    return images.clamp(0, 1), shape_labels, color_labels
