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
    deletion, insertion = [], []
    for i in range(b):  # one image at a time keeps memory at (steps + 1) images
        rank = torch.empty(h * w, dtype=torch.long)
        rank[heatmaps[i].reshape(-1).argsort(descending=True)] = torch.arange(h * w)
        # masks[k, p] = 1: pixel p is among the first counts[k] pixels in the order
        masks = (rank[None, :] < counts[:, None]).reshape(steps + 1, 1, h, w).float()
        image, base = images[i : i + 1], reference[i : i + 1]
        for start, end, out in ((image, base, deletion), (base, image, insertion)):
            mixed = start * (1 - masks) + end * masks
            probs = torch.cat([model(chunk).softmax(dim=1) for chunk in mixed.split(batch_size)])
            out.append(probs[:, int(targets[i])])
    return Curves(deletion=torch.stack(deletion), insertion=torch.stack(insertion))


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
