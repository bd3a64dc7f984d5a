"""Pictures a person can read: image, heatmap overlays with the prediction, curves, patches."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from kta_cli.report.figures import plt  # matplotlib with the Agg backend already chosen


def denormalize(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """Normalised (N, 3, H, W) back to displayable [0, 1] pixels."""
    mean_t = torch.tensor(mean).view(1, -1, 1, 1)
    std_t = torch.tensor(std).view(1, -1, 1, 1)
    return (images * std_t + mean_t).clamp(0, 1)


def scale(heatmap: torch.Tensor) -> torch.Tensor:
    """A heatmap stretched to [0, 1] (robust to one hot pixel: the 99th percentile is the top)."""
    top = torch.quantile(heatmap.flatten().float(), 0.99)
    if top <= 0:
        top = heatmap.max()
    return (heatmap / top).clamp(0, 1) if top > 0 else torch.zeros_like(heatmap)


@dataclass
class Row:
    """One image with its heatmaps (method -> (H, W)) and what the model said about it."""

    name: str
    image: torch.Tensor  # (3, H, W) in [0, 1]
    heatmaps: dict[str, torch.Tensor]
    predicted: str
    probability: float
    true: str | None = None
    target: str | None = None  # the class explained, when it is not the prediction


def make_rows(
    names: list[str],
    labels: torch.Tensor,
    pictures: torch.Tensor,
    heatmaps: dict[str, torch.Tensor],
    probabilities: torch.Tensor,
    targets: torch.Tensor,
    class_names: list[str],
) -> list[Row]:
    """One Row per image; labels < 0 mean the true class is unknown."""
    confidence, predicted = probabilities.max(dim=1)
    return [
        Row(
            name=names[i],
            image=pictures[i],
            heatmaps={m: h[i] for m, h in heatmaps.items()},
            predicted=class_names[int(predicted[i])],
            probability=float(confidence[i]),
            true=class_names[int(labels[i])] if labels[i] >= 0 else None,
            target=class_names[int(targets[i])],
        )
        for i in range(len(pictures))
    ]


def caption(row: Row) -> str:
    text = f"pred {row.predicted} ({row.probability:.0%})"
    if row.true is not None:
        mark = "" if row.true == row.predicted else " ✗"
        text += f"\ntrue {row.true}{mark}"
    if row.target is not None and row.target != row.predicted:
        text += f"\nexplaining {row.target}"
    return text


CELL_INCHES = (2.1, 2.3)  # one picture with room for its caption (width, height)
SCREEN_ASPECT = 16 / 9


def images_per_line(images: int, pictures_per_image: int) -> int:
    """How many images sit side by side so the figure's width : height is closest to a screen's
    (16 images, one method: 4 lines of 4; with three methods: 6 lines of 3)."""

    def distance(per_line: int) -> float:
        lines = math.ceil(images / per_line)
        aspect = per_line * pictures_per_image * CELL_INCHES[0] / (lines * CELL_INCHES[1])
        return abs(math.log(aspect / SCREEN_ASPECT))

    return min(range(1, max(images, 1) + 1), key=distance)


def draw_image(axes: list[Any], row: Row, methods: list[str], method_titles: bool) -> None:
    """[original | overlay per method] for one image, on len(methods) + 1 axes."""
    picture = row.image.permute(1, 2, 0).numpy()
    axes[0].imshow(picture, interpolation="nearest")
    axes[0].set_title(caption(row), fontsize=8)
    axes[0].set_ylabel(row.name, fontsize=7)
    for axis, method in zip(axes[1:], methods, strict=True):
        axis.imshow(picture.mean(axis=2), cmap="gray", interpolation="nearest")
        axis.imshow(
            scale(row.heatmaps[method]).numpy(),
            cmap="jet",
            alpha=0.5,
            vmin=0,
            vmax=1,
            interpolation="bilinear",
        )
        if method_titles:
            axis.set_title(method, fontsize=8)
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])


def rows_figure(rows: list[Row], *, title: str | None = None) -> Any:
    """Each image as [original | overlay per method]; several images go side by side, in as
    many lines as make the figure about a screen's shape. One image is the per-image PNG."""
    methods = list(rows[0].heatmaps)
    per_image = 1 + len(methods)
    per_line = images_per_line(len(rows), per_image)
    lines = math.ceil(len(rows) / per_line)
    figure, axes = plt.subplots(
        lines,
        per_line * per_image,
        figsize=(
            CELL_INCHES[0] * per_line * per_image,
            CELL_INCHES[1] * lines + 0.5 + (0.4 if title else 0),
        ),
        squeeze=False,
    )
    for index, row in enumerate(rows):
        line, first = divmod(index, per_line)
        tile = list(axes[line, first * per_image : (first + 1) * per_image])
        draw_image(tile, row, methods, method_titles=line == 0)
    for index in range(len(rows), lines * per_line):  # the last line's empty places
        line, first = divmod(index, per_line)
        for axis in axes[line, first * per_image : (first + 1) * per_image]:
            axis.axis("off")
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def curves_figure(deletion: dict[str, torch.Tensor], insertion: dict[str, torch.Tensor]) -> Any:
    """Mean deletion and insertion curves per method (and `random`) over the images."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, curves, label in (
        (axes[0], deletion, "deletion (lower is better)"),
        (axes[1], insertion, "insertion (higher is better)"),
    ):
        for method, curve in curves.items():
            mean = curve.mean(dim=0)
            fraction = torch.linspace(0, 1, len(mean))
            style = {"color": "black", "linestyle": "--"} if method == "random" else {}
            axis.plot(fraction.numpy(), mean.numpy(), label=method, **style)
        axis.set_xlabel("fraction of pixels, most attributed first")
        axis.set_ylabel("target probability")
        axis.set_title(label)
        axis.set_ylim(0, 1)
    axes[1].legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return figure


def patches_figure(patches: dict[int, list[torch.Tensor]], layer: str) -> Any:
    """One row per channel: the image patches that activate it most, strongest first."""
    channels = list(patches)
    columns = max(len(p) for p in patches.values())
    figure, axes = plt.subplots(
        len(channels), columns, figsize=(1.3 * columns, 1.4 * len(channels)), squeeze=False
    )
    for r, channel in enumerate(channels):
        for c in range(columns):
            axis = axes[r, c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c < len(patches[channel]):
                axis.imshow(patches[channel][c].permute(1, 2, 0).numpy(), interpolation="nearest")
        axes[r, 0].set_ylabel(f"ch {channel}", fontsize=8)
    figure.suptitle(f"patches that activate {layer} most", fontsize=10)
    figure.tight_layout()
    return figure
