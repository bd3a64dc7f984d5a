"""`discriminative`: layer-wise learning-rate decay (ULMFiT, BEiT) over timm's block structure."""

from __future__ import annotations

import logging

from torch import nn

from kta_cli.errors import KtaError
from kta_cli.strategies.base import StrategyPlan, new_head, split_head
from kta_cli.strategies.structure import body_layers

log = logging.getLogger(__name__)


def check_decay(layer_decay: float) -> None:
    if not 0 < layer_decay <= 1:
        raise KtaError(
            f"strategy.layer_decay must be in (0, 1] (1 = one rate for all layers), "
            f"got {layer_decay}"
        )


def decayed_groups(layers: list, lr: float, layer_decay: float) -> list[dict[str, object]]:
    """One group per layer: the last body layer at lr * decay, each earlier one decay times less
    (the head, at the top, keeps lr); the same layers timm's layer_decay uses."""
    depth = len(layers)
    return [
        {
            "params": [p for _, p in layer.params],
            "name": layer.name,
            "lr": lr * layer_decay ** (depth - i),
        }
        for i, layer in enumerate(layers)
    ]


def discriminative(
    model: nn.Module,
    lr: float = 0.05,
    layer_decay: float = 0.7,
    head: str = "linear",
    head_hidden: int = 256,
    head_lr_mult: float = 1.0,
) -> StrategyPlan:
    """Every layer trains, the early ones slower: lr * layer_decay ** (layers above it)."""
    check_decay(layer_decay)
    built = new_head(model, head, head_hidden)
    _, head_group = split_head(model, lr, head_lr_mult)
    groups = decayed_groups(body_layers(model, coarse=False), lr, layer_decay)
    log.info(
        "strategy discriminative: %d layer groups, lr %.3g (first) to %.3g (last)",
        len(groups),
        groups[0]["lr"] if groups else lr,
        groups[-1]["lr"] if groups else lr,
    )
    return StrategyPlan([*groups, head_group], head=built)
