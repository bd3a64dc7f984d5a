"""Deletion and insertion curves (Petsiuk et al., RISE 2018): does the heatmap find the pixels the
model actually uses?

Deletion replaces the most-attributed pixels first with a reference value; a faithful map makes
the target probability fall fast (low area under the curve). Insertion starts from the reference
and reveals the most-attributed pixels first; a faithful map makes it rise fast (high area). A
random pixel order is the baseline every method must beat.

Written by hand: captum's metrics (infidelity, sensitivity) do not include these curves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

Model = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Curves:
    deletion: torch.Tensor  # (B, steps + 1) target probability after removing a fraction
    insertion: torch.Tensor  # (B, steps + 1) target probability after revealing a fraction

    @property
    def deletion_auc(self) -> float:
        return area(self.deletion)

    @property
    def insertion_auc(self) -> float:
        return area(self.insertion)


def area(curve: torch.Tensor) -> float:
    """Mean over images of the trapezoid area under curves sampled evenly on [0, 1]."""
    return float(torch.trapezoid(curve, dx=1.0 / (curve.shape[-1] - 1), dim=-1).mean())


@torch.no_grad()
def curves(
    model: Model,
    images: torch.Tensor,
    heatmaps: torch.Tensor,
    targets: torch.Tensor,
    reference: torch.Tensor,
    *,
    steps: int = 20,
    batch_size: int = 32,
) -> Curves:
    """Deletion and insertion curves of each image, pixels ranked by `heatmaps` (B, H, W).

    `reference` (same shape as images) holds the value a removed pixel takes.
    """
    b, _, h, w = images.shape
    counts = torch.linspace(0, h * w, steps + 1).round().long()
    rank = torch.empty(b, h * w, dtype=torch.long)
    rank.scatter_(
        1,
        heatmaps.reshape(b, -1).argsort(dim=1, descending=True),
        torch.arange(h * w).expand(b, -1).contiguous(),
    )
    per_call = max(1, batch_size // (2 * (steps + 1)))  # images whose curves share one forward
    deletion, insertion = [], []
    for index in torch.arange(b).split(per_call):
        # masks[i, k, p] = 1: pixel p is among the first counts[k] pixels of image i's order
        masks = (rank[index, None, :] < counts[None, :, None]).reshape(-1, steps + 1, 1, h, w)
        image, base = images[index, None], reference[index, None]
        removed = torch.where(masks, base, image)  # deletion: the top pixels become reference
        revealed = torch.where(masks, image, base)  # insertion: only the top pixels are shown
        mixed = torch.cat([removed, revealed]).flatten(0, 1)
        probs = model(mixed).softmax(dim=1).reshape(2, len(index), steps + 1, -1)
        chosen = targets[index][None, :, None, None].expand(2, -1, steps + 1, 1)
        scores = probs.gather(3, chosen)[..., 0]
        deletion.append(scores[0])
        insertion.append(scores[1])
    return Curves(deletion=torch.cat(deletion), insertion=torch.cat(insertion))


def random_curves(
    model: Model,
    images: torch.Tensor,
    targets: torch.Tensor,
    reference: torch.Tensor,
    *,
    steps: int = 20,
    batch_size: int = 32,
    repeats: int = 3,
    seed: int = 0,
) -> Curves:
    """The same curves for random pixel orders, averaged over `repeats` orders."""
    generator = torch.Generator().manual_seed(seed)
    runs = [
        curves(
            model,
            images,
            torch.rand(images.shape[0], *images.shape[-2:], generator=generator),
            targets,
            reference,
            steps=steps,
            batch_size=batch_size,
        )
        for _ in range(repeats)
    ]
    return Curves(
        deletion=torch.stack([r.deletion for r in runs]).mean(0),
        insertion=torch.stack([r.insertion for r in runs]).mean(0),
    )


def score_row(method: Curves, random: Curves) -> dict[str, float | bool]:
    """One table row: both areas, the random baseline, and whether the method beats it.

    The combined score insertion - deletion must exceed random's; otherwise the map says no more
    about the model than noise does.
    """
    margin = (method.insertion_auc - method.deletion_auc) - (
        random.insertion_auc - random.deletion_auc
    )
    return {
        "deletion_auc": method.deletion_auc,
        "insertion_auc": method.insertion_auc,
        "random_deletion_auc": random.deletion_auc,
        "random_insertion_auc": random.insertion_auc,
        "margin_over_random": margin,
        "better_than_random": margin > 0,
    }


def evaluate_methods(
    model: Model,
    images: torch.Tensor,
    targets: torch.Tensor,
    heatmaps: dict[str, torch.Tensor],
    reference: torch.Tensor,
    *,
    steps: int = 20,
    batch_size: int = 32,
    repeats: int = 3,
    seed: int = 0,
) -> tuple[dict[str, dict[str, float | bool]], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Table rows per method, and deletion / insertion curves per method plus `random`."""
    options = {"steps": steps, "batch_size": batch_size}
    random = random_curves(model, images, targets, reference, repeats=repeats, seed=seed, **options)
    rows, deletion, insertion = {}, {}, {}
    for method, heat in heatmaps.items():
        method_curves = curves(model, images, heat, targets, reference, **options)
        rows[method] = score_row(method_curves, random)
        deletion[method], insertion[method] = method_curves.deletion, method_curves.insertion
    deletion["random"], insertion["random"] = random.deletion, random.insertion
    return rows, deletion, insertion


def rich_table(rows: dict[str, dict[str, Any]]) -> Any:
    """The console table; a method no better than random is flagged in red."""
    from rich.table import Table

    table = Table(title="faithfulness (area under curve: deletion lower, insertion higher)")
    table.add_column("method", no_wrap=True)
    for column in ("del", "ins", "random del", "random ins", "beats random"):
        table.add_column(column, justify="right")
    keys = ("deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc")
    for method, row in rows.items():
        verdict = "yes" if row["better_than_random"] else "[bold red]NO[/bold red]"
        table.add_row(method, *(f"{row[k]:.3f}" for k in keys), verdict)
    return table
