"""Seeded N-way K-shot Q-query episodes, drawn for all episodes at once as index tensors.

Every class's members sit in one padded (C, M) table; a random key per (episode, class, slot),
with the padding keyed +inf, sorted, gives each episode an independent random permutation of
each chosen class's members. The first K are the support, the next Q the queries: distinct
positions of one permutation, so no example is ever both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kta_cli.errors import KtaError


@dataclass
class Episodes:
    """Indices into the feature set: support (E, N, K), query (E, N, Q); classes (E, N) are the
    original labels behind episode labels 0..N-1."""

    support: torch.Tensor
    query: torch.Tensor
    classes: torch.Tensor

    def __len__(self) -> int:
        return len(self.classes)


def member_table(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, M) indices of each class's examples padded with -1, and each class's count."""
    counts = torch.bincount(labels)
    order = torch.argsort(labels, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(labels)) - starts[labels[order]]
    table = torch.full((len(counts), int(counts.max())), -1, dtype=torch.long)
    table[labels[order], slot] = order
    return table, counts


def check_episode_shape(
    labels: torch.Tensor, class_names: list[str], *, ways: int, shots: int, queries: int
) -> None:
    """KtaError when the data cannot supply ways classes of shots + queries examples each."""
    counts = torch.bincount(labels, minlength=len(class_names))
    present = int((counts > 0).sum())
    if ways > present:
        raise KtaError(
            f"fewshot.ways={ways} but the novel data has {present} classes; "
            f"lower fewshot.ways or pick more classes (data.classes=...)"
        )
    need = shots + queries
    short = [(class_names[c], int(n)) for c, n in enumerate(counts) if 0 < n < need]
    if short:
        name, count = min(short, key=lambda item: item[1])
        raise KtaError(
            f"class '{name}' has {count} examples but shots + queries = {shots} + {queries} "
            f"= {need}; lower fewshot.queries or fewshot.shots, or use more data "
            "(fewshot.split=all)"
        )


def sample_episodes(
    labels: torch.Tensor, *, ways: int, shots: int, queries: int, episodes: int, seed: int
) -> Episodes:
    """`episodes` seeded episodes over the classes present in `labels` (same seed: same ones)."""
    generator = torch.Generator().manual_seed(seed)
    table, counts = member_table(labels)
    present = (counts > 0).nonzero().flatten()
    class_keys = torch.rand(episodes, len(present), generator=generator)
    classes = present[class_keys.argsort(dim=1)[:, :ways]]  # (E, N)
    members = table[classes]  # (E, N, M)
    keys = torch.rand(members.shape, generator=generator).masked_fill(members < 0, float("inf"))
    picked = members.gather(2, keys.argsort(dim=2)[:, :, : shots + queries])
    return Episodes(picked[:, :, :shots], picked[:, :, shots:], classes)
