"""Strategies that freeze part of the network: `freeze`, `linear_probe`, `partial`.

A frozen part is bit-identical after training: its parameters get no gradient and its
BatchNorm layers run in eval mode, so their running statistics never move.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from kta_cli.errors import KtaError
from kta_cli.models.heads import classifier_path
from kta_cli.strategies.base import StrategyPlan, new_head, split_head
from kta_cli.strategies.structure import (
    body_layers,
    keep_frozen_norms,
    parameters_before,
)

log = logging.getLogger(__name__)


def freeze(
    model: nn.Module,
    lr: float = 0.05,
    head: str = "linear",
    head_hidden: int = 256,
    head_lr_mult: float = 1.0,
) -> StrategyPlan:
    """The given network as a fixed feature extractor; only the (new) head trains."""
    built = new_head(model, head, head_hidden)
    body, head_group = split_head(model, lr, head_lr_mult)
    for param in body:
        param.requires_grad_(False)
    return StrategyPlan([head_group], [keep_frozen_norms(model)], head=built, freezes_body=True)


def linear_probe(
    model: nn.Module,
    lr: float = 0.05,
    head: str = "linear",
    head_lr_mult: float = 1.0,
    cache_features: bool = False,
) -> StrategyPlan:
    """A linear head on frozen features, the whole body in eval mode (no BatchNorm updates, no
    dropout); with cache_features the features are extracted once and the head trains on them."""
    if head not in ("linear", "keep"):
        raise KtaError(
            f"linear_probe trains a linear head, not strategy.head={head}; "
            "for another head on frozen features use strategy=freeze"
        )
    plan = freeze(model, lr=lr, head=head, head_lr_mult=head_lr_mult)
    head_path = classifier_path(model)

    def body_in_eval(epoch: int, trainer: Any) -> None:
        model.eval()
        model.get_submodule(head_path).train()

    plan.epoch_hooks = [body_in_eval]
    plan.cache_features = cache_features
    return plan


def partial(
    model: nn.Module,
    lr: float = 0.05,
    trainable_from: str | None = None,
    frozen_stages: int | None = None,
    head: str = "linear",
    head_hidden: int = 256,
    head_lr_mult: float = 1.0,
) -> StrategyPlan:
    """Freeze the early layers: everything before module `trainable_from`, or the first
    `frozen_stages` stages (the stem counts as the first; timm's own stage grouping)."""
    if (trainable_from is None) == (frozen_stages is None):
        raise KtaError(
            "strategy=partial needs exactly one of strategy.trainable_from=<module name> "
            "or strategy.frozen_stages=<N>"
        )
    built = new_head(model, head, head_hidden)
    if trainable_from is not None:
        frozen = parameters_before(model, trainable_from)
        what = f"everything before {trainable_from}"
    else:
        layers = body_layers(model, coarse=True)
        names = ", ".join(layer.name for layer in layers)
        if not 0 <= frozen_stages <= len(layers):
            raise KtaError(
                f"strategy.frozen_stages must be in [0, {len(layers)}], got {frozen_stages} "
                f"(stages: {names})"
            )
        frozen = [p for layer in layers[:frozen_stages] for p in layer.params]
        what = ", ".join(layer.name for layer in layers[:frozen_stages]) or "nothing"
    for _, param in frozen:
        param.requires_grad_(False)
    log.info("strategy partial: frozen %s (%d tensors)", what, len(frozen))
    body, head_group = split_head(model, lr, head_lr_mult)
    trainable_body = [p for p in body if p.requires_grad]
    groups = [{"params": trainable_body, "name": "body", "lr": lr}, head_group]
    return StrategyPlan(
        [g for g in groups if g["params"]], [keep_frozen_norms(model)], head=built,
        freezes_body=bool(frozen),
    )  # fmt: skip
