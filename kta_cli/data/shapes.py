"""Procedural shapes: the class is the shape; the style (colours, texture, clutter, noise) varies.

Every image is drawn from a seeded generator, so a (seed, style, count, size) tuple always gives the
same images. Training on one style and testing on another is a controlled domain shift.

Shape against texture (Geirhos et al. 2019): `class_texture` fills each shape with the texture of
its own class (stripes for circles, checks for squares, ...), so both cues predict the label;
`cue_conflict` fills the shape of class A with the texture of a class B != A, and records B, so a
model's decision shows which cue it learned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kta_cli.data.spec import SHAPE_STYLES

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
STYLES = SHAPE_STYLES
# class c's own texture under class_texture (the texture's identity is its pattern, not its colour)
CLASS_TEXTURES = (
    "horizontal stripes",
    "vertical stripes",
    "diagonal stripes",
    "checks",
    "dots",
    "rings",
)


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


def _class_texture(texture_labels: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Texture number texture_labels[i] of CLASS_TEXTURES for each image (N, H, W), in [0.3, 1].

    Four periods across the image at any size, with a random phase, so the pattern (not its
    position) identifies the class.
    """
    n = len(texture_labels)
    coords = torch.arange(size, dtype=torch.float32) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    shift = torch.rand(n, 2, 1, 1, generator=g)  # phase, in periods
    x, y = 4 * xx + shift[:, 0], 4 * yy + shift[:, 1]  # (N, H, W), in periods
    wave_x, wave_y = torch.sin(2 * math.pi * x), torch.sin(2 * math.pi * y)
    rings = torch.sqrt((xx - 0.5) ** 2 + (yy - 0.5) ** 2) * 6 + shift[:, 0]
    patterns = torch.stack(
        [
            wave_y,  # horizontal stripes
            wave_x,  # vertical stripes
            torch.sin(2 * math.pi * (x + y) / math.sqrt(2)),  # diagonal stripes
            torch.sign(wave_x * wave_y),  # checks
            torch.where((torch.cos(2 * math.pi * x) * torch.cos(2 * math.pi * y)) > 0.5, 1.0, -1.0),
            torch.sin(2 * math.pi * rings),  # rings
        ]
    )  # (T, N, H, W) in [-1, 1]
    return 0.65 + 0.35 * patterns[texture_labels, torch.arange(n)]


def _other_class(labels: torch.Tensor, pool: list[int], g: torch.Generator) -> torch.Tensor:
    """For each label, a class drawn uniformly from `pool` without the label itself."""
    pool_tensor = torch.tensor(pool)
    # a label's position in the pool (0 for labels outside it: data.classes drops those images)
    position = (labels[:, None] == pool_tensor[None]).long().argmax(dim=1)
    offset = torch.randint(1, len(pool), (len(labels),), generator=g)
    return pool_tensor[(position + offset) % len(pool)]


def _texture_labels(
    shape_labels: torch.Tensor,
    styles: set[str],
    g: torch.Generator,
    own_share: float,
    pool: list[int],
) -> torch.Tensor:
    """Which class's texture fills each shape; -1 where no class texture is drawn."""
    if "cue_conflict" in styles:
        return _other_class(shape_labels, pool, g)
    if "class_texture" not in styles:
        return torch.full_like(shape_labels, -1)
    swapped = torch.rand(len(shape_labels), generator=g) >= own_share
    return torch.where(swapped, _other_class(shape_labels, pool, g), shape_labels)


@dataclass
class ShapeSet:
    images: torch.Tensor  # (N, 3, size, size) in [0, 1]
    shape_labels: torch.Tensor  # the class
    color_labels: torch.Tensor
    texture_labels: torch.Tensor  # the class whose texture fills the shape; -1: none


def draw_shapes(
    count: int,
    *,
    size: int = 32,
    style: str = "flat",
    seed: int = 0,
    num_classes: int = len(SHAPES),
    own_texture_share: float = 1.0,
    texture_classes: list[int] | None = None,
) -> ShapeSet:
    """`count` shapes in `style` (one of STYLES or several joined with '+', e.g. 'texture+noise').

    class_texture: a share `own_texture_share` of the shapes carry their own class's texture, the
    rest another class's. cue_conflict: every shape carries another class's texture. Those other
    classes are drawn from `texture_classes` (all classes by default; data.classes narrows it).
    """
    styles = set(style.split("+"))
    g = torch.Generator().manual_seed(seed)
    shape_labels = torch.arange(count) % num_classes
    shape_labels = shape_labels[torch.randperm(count, generator=g)]
    color_labels = torch.randint(len(COLORS), (count,), generator=g)
    masks = _shape_masks(shape_labels, size, g)[:, None]  # (N, 1, H, W)
    # drawn after the masks: the same seed places the same shapes in every style
    pool = texture_classes or list(range(num_classes))
    texture_labels = _texture_labels(shape_labels, styles, g, own_texture_share, pool)

    palette = _PALETTE.flip(1) if "colorshift" in styles else _PALETTE  # RGB -> BGR hues
    foreground = palette[color_labels][:, :, None, None].expand(count, 3, size, size)
    if (texture_labels >= 0).any():
        foreground = foreground * _class_texture(texture_labels.clamp(min=0), size, g)[:, None]
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
    return ShapeSet(images.clamp(0, 1), shape_labels, color_labels, texture_labels)


def generate_shapes(
    count: int,
    *,
    size: int = 32,
    style: str = "flat",
    seed: int = 0,
    num_classes: int = len(SHAPES),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`count` images (N, 3, size, size) in [0, 1], shape labels and colour labels."""
    drawn = draw_shapes(count, size=size, style=style, seed=seed, num_classes=num_classes)
    return drawn.images, drawn.shape_labels, drawn.color_labels
