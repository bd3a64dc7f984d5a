"""Strategies that change over the run: `gradual_unfreeze`; `lp_ft` (linear probe, then fine-tune).

The optimizer is built once, so every parameter is in a group from the start; a frozen one has
requires_grad False (no gradient, so no update and no weight decay) until a hook flips it. Hooks
set the state for their epoch from scratch, so a resumed run lands in the same phase.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from kta_cli.errors import KtaError
from kta_cli.models.heads import classifier_path
from kta_cli.strategies.base import StrategyPlan, new_head, split_head
from kta_cli.strategies.discriminative import check_decay, decayed_groups
from kta_cli.strategies.structure import body_layers, frozen_norms_to_eval, set_trainable

log = logging.getLogger(__name__)


def set_lr_scale(group: dict[str, Any], factor: float) -> None:
    """Scale a group's rate to factor x its planned rate, whatever the schedule: timm's schedules
    honour `lr_scale`; kta's one-cycle and constant ones read the group's own values."""
    ratio = factor / group.get("lr_scale", 1.0)
    group["lr_scale"] = factor
    for key in ("lr", "max_lr", "min_lr", "initial_lr"):
        if key in group:
            group[key] *= ratio


def tensorboard_of(trainer: Any) -> Any:
    return getattr(getattr(trainer, "reporter", None), "tb", None)


def gradual_unfreeze(
    model: nn.Module,
    lr: float = 0.05,
    every: int = 1,
    layer_decay: float = 1.0,
    head: str = "linear",
    head_hidden: int = 256,
    head_lr_mult: float = 1.0,
) -> StrategyPlan:
    """Start with the head alone; every `every` epochs one more stage unfreezes, top first."""
    if every < 1:
        raise KtaError(f"strategy.every must be >= 1 (epochs per unfrozen stage), got {every}")
    check_decay(layer_decay)
    built = new_head(model, head, head_hidden)
    _, head_group = split_head(model, lr, head_lr_mult)
    layers = body_layers(model, coarse=True)
    groups = (
        decayed_groups(layers, lr, layer_decay)
        if layer_decay < 1
        else [
            {"params": [p for _, p in layer.params], "name": layer.name, "lr": lr}
            for layer in layers
        ]
    )
    for layer in layers:
        set_trainable(layer.params, False)

    def unfreeze(epoch: int, trainer: Any) -> None:
        open_count = min(epoch // every, len(layers))
        for i, layer in enumerate(layers):
            set_trainable(layer.params, i >= len(layers) - open_count)
        frozen_norms_to_eval(model)
        if epoch % every == 0 and 0 < epoch // every <= len(layers):
            log.info("epoch %d: unfroze %s", epoch + 1, layers[len(layers) - open_count].name)
        board = tensorboard_of(trainer)
        if board is not None:
            board.scalars({"epoch/unfrozen_stages": open_count}, epoch)

    return StrategyPlan([*groups, head_group], [unfreeze], head=built, freezes_body=True)


def lp_ft(
    model: nn.Module,
    lr: float = 0.05,
    probe_epochs: int = 1,
    ft_lr_mult: float = 0.1,
    head: str = "linear",
    head_hidden: int = 256,
    head_lr_mult: float = 1.0,
) -> StrategyPlan:
    """Linear probe for `probe_epochs` (body frozen, in eval mode), then everything trains at
    ft_lr_mult x the rate (Kumar et al. 2022: the trained head keeps features from distorting)."""
    if probe_epochs < 0 or not 0 < ft_lr_mult <= 1:
        raise KtaError(
            f"lp_ft needs strategy.probe_epochs >= 0 and strategy.ft_lr_mult in (0, 1], "
            f"got {probe_epochs} and {ft_lr_mult}"
        )
    built = new_head(model, head, head_hidden)
    body, head_group = split_head(model, lr, head_lr_mult)
    body_group = {"params": body, "name": "body", "lr": lr * ft_lr_mult}
    head_path = classifier_path(model)

    def phase(epoch: int, trainer: Any) -> None:
        epochs = trainer.settings.epochs
        if probe_epochs >= epochs:
            raise KtaError(
                f"strategy.probe_epochs={probe_epochs} leaves no fine-tuning epoch "
                f"(trainer.epochs={epochs}); use fewer probe epochs or strategy=linear_probe"
            )
        probing = epoch < probe_epochs
        for param in body:
            param.requires_grad_(not probing)
        head_index = next(
            i for i, g in enumerate(trainer.optimizer.param_groups) if g.get("name") == "head"
        )
        set_lr_scale(trainer.optimizer.param_groups[head_index], 1.0 if probing else ft_lr_mult)
        if probing:
            model.eval()
            model.get_submodule(head_path).train()
        elif epoch == probe_epochs:
            log.info("epoch %d: lp_ft starts full fine-tuning at %g x lr", epoch + 1, ft_lr_mult)
        board = tensorboard_of(trainer)
        if board is not None:
            board.scalars({"epoch/lp_ft_phase": 0 if probing else 1}, epoch)

    for param in body:
        param.requires_grad_(probe_epochs == 0)
    return StrategyPlan(
        [body_group, head_group], [phase], head=built, freezes_body=probe_epochs > 0
    )
