"""Unstructured pruning: zero the least important single weights (torch.nn.utils.prune).

Masks stay attached while fine-tuning (pruned weights cannot grow back) and are made permanent
with prune.remove before saving. Counts are integers, so the asked sparsity is reached exactly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from kta_cli.errors import KtaError

# Criteria that rank single weights; bn_scale ranks channels only.
UNSTRUCTURED_CRITERIA = ("l1", "l2", "mean_std", "taylor")


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every pruning mask into its weight (prune.remove), leaving plain parameters."""
    for module in model.modules():
        if prune.is_pruned(module) and hasattr(module, "weight_orig"):
            prune.remove(module, "weight")
    return model


def weight_scores(criterion: str, weight: torch.Tensor) -> torch.Tensor:
    """Importance of each weight; weights already zero rank lowest so pruning only grows."""
    if criterion not in UNSTRUCTURED_CRITERIA:
        raise KtaError(
            f"importance '{criterion}' ranks whole channels; unstructured pruning takes one of "
            f"{', '.join(UNSTRUCTURED_CRITERIA)}"
        )
    magnitude = weight.detach().abs()
    if criterion == "mean_std":  # |w| against its own layer: (|w| - mean) / std
        score = (magnitude - magnitude.mean()) / (magnitude.std() + 1e-12)
    elif criterion == "taylor":  # first-order loss change of removing w: |w * dL/dw|
        if weight.grad is None:
            raise KtaError("taylor importance needs gradients; none were computed")
        score = (weight.detach() * weight.grad).abs()
    else:  # l1 and l2 rank single weights alike
        score = magnitude
    return score.double().masked_fill(weight.detach() == 0, float("-inf"))


def nonnegative(scores: list[torch.Tensor]) -> list[torch.Tensor]:
    """One shift for all: torch's L1Unstructured ranks abs(score), so scores must be >= 0."""
    finite = [s[torch.isfinite(s)] for s in scores]
    low = min((float(f.min()) for f in finite if f.numel()), default=0.0)
    return [torch.where(torch.isfinite(s), s - low + 1.0, torch.zeros_like(s)) for s in scores]


def prune_unstructured(
    layers: dict[str, nn.Module],
    ratio: float,
    *,
    criterion: str = "l1",
    scope: str = "global",
    layer_ratios: dict[str, float] | None = None,
) -> None:
    """Mask round(ratio * n) weights: ranked across `layers` (global) or inside each (layer).

    Layers in `layer_ratios` get their own ratio. Any earlier masks must be made permanent
    first (make_permanent), so that the count is of all zeros, old and new.
    """
    layer_ratios = layer_ratios or {}
    for name, module in layers.items():
        if name in layer_ratios or scope == "layer":
            own = layer_ratios.get(name, ratio)
            count = round(own * module.weight.numel())
            (scores,) = nonnegative([weight_scores(criterion, module.weight)])
            prune.l1_unstructured(module, "weight", amount=count, importance_scores=scores)
    shared = {n: m for n, m in layers.items() if n not in layer_ratios}
    if scope != "global" or not shared:
        return
    params = [(m, "weight") for m in shared.values()]
    total = sum(m.weight.numel() for m in shared.values())
    ranked = nonnegative([weight_scores(criterion, m.weight) for m in shared.values()])
    scores = {(m, "weight"): s for m, s in zip(shared.values(), ranked, strict=True)}
    prune.global_unstructured(
        params,
        pruning_method=prune.L1Unstructured,
        importance_scores=scores,
        amount=round(ratio * total),
    )


def layer_sparsity(layers: dict[str, nn.Module]) -> dict[str, float]:
    """Fraction of zero weights in each layer (masks included)."""
    return {name: float((m.weight == 0).float().mean()) for name, m in layers.items()}


def overall_sparsity(layers: dict[str, nn.Module]) -> float:
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    return zeros / max(sum(m.weight.numel() for m in layers.values()), 1)
