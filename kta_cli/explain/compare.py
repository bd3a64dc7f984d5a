"""How far distillation, pruning or quantization moved the explanations: the same images, the
same target classes, the heatmaps of two models side by side."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from kta_cli.data.transforms import normalize
from kta_cli.errors import KtaError
from kta_cli.explain.inputs import Batch
from kta_cli.explain.methods import Explainer
from kta_cli.explain.overlays import make_rows, rows_figure
from kta_cli.explain.report import explain_all
from kta_cli.report.figures import save_figure
from kta_cli.report.reporter import TensorBoard, console


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks per row, ties sharing their average rank (Grad-CAM maps have many zeros)."""
    from scipy.stats import rankdata

    return torch.from_numpy(rankdata(values.numpy(), axis=1))


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    denominator = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(denominator > 0, (a * b).sum(dim=1) / denominator, torch.nan)


def top_overlap(a: torch.Tensor, b: torch.Tensor, fraction: float) -> torch.Tensor:
    """Intersection over union of the top `fraction` of pixels of each map (per image)."""
    k = max(1, round(a.shape[1] * fraction))
    top_a = torch.zeros_like(a, dtype=torch.bool).scatter_(1, a.topk(k, dim=1).indices, True)
    top_b = torch.zeros_like(b, dtype=torch.bool).scatter_(1, b.topk(k, dim=1).indices, True)
    return (top_a & top_b).sum(dim=1) / (top_a | top_b).sum(dim=1)


def heatmap_agreement(
    reference: torch.Tensor, other: torch.Tensor, *, top_fraction: float = 0.1
) -> dict[str, float]:
    """Mean Pearson and Spearman correlation and top-pixel overlap of two (N, H, W) heatmap sets.

    `other` is resized to `reference`'s size when the models read different resolutions. Images
    where either map is constant (no correlation defined) are left out of the means.
    """
    if other.shape[-2:] != reference.shape[-2:]:
        other = F.interpolate(other[:, None], size=reference.shape[-2:], mode="bilinear")[:, 0]
    a, b = reference.flatten(1).double(), other.flatten(1).double()
    pearson, spearman = _pearson(a, b), _pearson(_ranks(a), _ranks(b))

    def mean(values: torch.Tensor) -> float:
        kept = values[~values.isnan()]
        return float(kept.mean()) if len(kept) else math.nan

    return {
        "pearson": mean(pearson),
        "spearman": mean(spearman),
        f"top{round(top_fraction * 100)}_iou": mean(top_overlap(a, b, top_fraction)),
    }


def agreement_table(rows: dict[str, dict[str, Any]], other: str, same_predictions: float) -> Any:
    """One row per method: correlations and top-pixel overlap, or why it was skipped."""
    from rich.table import Table

    table = Table(title=f"heatmaps vs {other} (same predictions: {same_predictions:.0%})")
    table.add_column("method", no_wrap=True)
    for column in ("pearson", "spearman", "top-10% IoU"):
        table.add_column(column, justify="right")
    for method, row in rows.items():
        if "skipped" in row:
            table.add_row(method, "skipped", "", "")
        else:
            table.add_row(method, *(f"{row[k]:.3f}" for k in ("pearson", "spearman", "top10_iou")))
    return table


def short_path(path: str) -> str:
    """run-folder/file: enough to tell checkpoints apart in a title."""
    return "/".join(Path(path).parts[-2:])


def compare_with(
    other: Explainer,
    other_path: Path,
    methods: list[str],
    pictures: torch.Tensor,
    targets: torch.Tensor,
    heatmaps: dict[str, torch.Tensor],
    predicted: torch.Tensor,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Explain the same pictures with another checkpoint's explainer and measure how the heatmaps
    moved. Returns the summary and the other model's heatmaps (at this model's input size)."""
    size = other.img_size
    resized = (
        pictures
        if pictures.shape[-1] == size
        else F.interpolate(
            pictures, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    )
    images = normalize(resized, other.mean, other.std)
    other_predicted = other.logits(images).argmax(dim=1)
    rows: dict[str, Any] = {}
    other_heatmaps: dict[str, torch.Tensor] = {}
    for method in methods:
        try:
            other_heat = explain_all(other, [method], images, targets)[method]
            other_heatmaps[method] = F.interpolate(
                other_heat[:, None], size=pictures.shape[-2:], mode="bilinear"
            )[:, 0]
        except KtaError as error:  # e.g. gradients through a quantized program
            rows[method] = {"skipped": str(error)}
            console.print(f"[yellow]compare: {method} skipped[/yellow]: {error}")
            continue
        rows[method] = heatmap_agreement(heatmaps[method], other_heat)
    agreement = float((other_predicted == predicted).float().mean())
    console.print(agreement_table(rows, short_path(str(other_path)), agreement))
    summary = {"checkpoint": str(other_path), "prediction_agreement": agreement, "methods": rows}
    return summary, other_heatmaps


def compare_report(
    other: Explainer,
    other_path: Path,
    batch: Batch,
    pictures: torch.Tensor,
    probabilities: torch.Tensor,
    targets: torch.Tensor,
    heatmaps: dict[str, torch.Tensor],
    class_names: list[str],
    *,
    grid_rows: int,
    run_dir: Path,
    tensorboard: TensorBoard,
) -> dict[str, Any]:
    """The comparison table, and compare.png with both checkpoints' heatmaps side by side.
    `pictures` are this model's input images in [0, 1]."""
    methods, predicted = list(heatmaps), probabilities.argmax(dim=1)
    summary, other_maps = compare_with(
        other, other_path, methods, pictures, targets, heatmaps, predicted
    )
    if other_maps:  # this model's heatmap beside the other's, per method
        both = {
            f"{m}{tag}": h
            for m in other_maps
            for tag, h in (("", heatmaps[m]), (" *", other_maps[m]))
        }
        rows = make_rows(
            batch.names, batch.labels, pictures, both, probabilities, targets, class_names
        )
        title = f"plain: this checkpoint; *: {short_path(summary['checkpoint'])}"
        figure = rows_figure(rows[:grid_rows], title=title)
        tensorboard.figure("explain/compare", figure)
        save_figure(figure, run_dir / "compare.png")
    return summary
