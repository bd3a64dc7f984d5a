"""Seeded, stratified choices of examples: splits, class subsets, per-class caps."""

from __future__ import annotations

import torch

from kta_cli.errors import KtaError


def stratified_split(
    labels: torch.Tensor, *, val_fraction: float, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices of a seeded split that keeps every class's share in each part."""
    g = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[], [], []]
    for cls in labels.unique(sorted=True):
        index = (labels == cls).nonzero().flatten()
        index = index[torch.randperm(len(index), generator=g)]
        n_test = round(len(index) * test_fraction)
        n_val = round(len(index) * val_fraction)
        parts[2].append(index[:n_test])
        parts[1].append(index[n_test : n_test + n_val])
        parts[0].append(index[n_test + n_val :])
    return tuple(torch.cat(p).sort().values for p in parts)  # type: ignore[return-value]


def select_classes(
    labels: torch.Tensor, classes: list[int] | None, names: list[str]
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(kept indices, relabelled labels, their names) for `data.classes=[5,6,7]`."""
    if not classes:
        return torch.arange(len(labels)), labels, names
    unknown = [c for c in classes if not 0 <= c < len(names)]
    if unknown or len(set(classes)) != len(classes):
        raise KtaError(
            f"data.classes={classes} must be distinct class indices in [0, {len(names) - 1}]"
        )
    keep = torch.isin(labels, torch.tensor(classes)).nonzero().flatten()
    return keep, relabelling(classes, len(names))[labels[keep]], [names[c] for c in classes]


def relabelling(classes: list[int], num_classes: int) -> torch.Tensor:
    """old label -> new label (-1 for a class left out) for `data.classes`."""
    mapping = torch.full((num_classes,), -1, dtype=torch.long)
    mapping[torch.tensor(classes)] = torch.arange(len(classes))
    return mapping


def cap_per_class(
    index: torch.Tensor, labels: torch.Tensor, cap: int | None, seed: int
) -> torch.Tensor:
    """At most `cap` of each class from `index` (a seeded choice; low-data regimes)."""
    if cap is None:
        return index
    g = torch.Generator().manual_seed(seed + 7)
    kept = []
    for cls in labels[index].unique(sorted=True):
        members = index[labels[index] == cls]
        kept.append(members[torch.randperm(len(members), generator=g)[:cap]])
    return torch.cat(kept).sort().values
