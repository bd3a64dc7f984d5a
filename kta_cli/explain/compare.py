"""How far distillation, pruning or quantization moved the explanations: the same images, the
same target classes, the heatmaps of two models side by side."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


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
