"""The strategies every run has: `full` (fine-tune everything) and `scratch` (re-initialise).

A strategy is a function `(model, **options) -> StrategyPlan`, named by `_target_` in
configs/strategy/<name>.yaml and called by the train command with the built model, after its
weights are loaded. Options every strategy takes: `lr` (the optimizer's, by interpolation),
`head` (keep | linear | mlp: a fresh head), `head_hidden`, `head_lr_mult`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from kta_cli.errors import KtaError
from kta_cli.models.factory import init_weights
from kta_cli.models.heads import attach_head
from kta_cli.strategies.structure import count_parameters, head_parameters

log = logging.getLogger(__name__)
RANDOM_BODY = (
    "random initialisation, nothing transferred; use model.checkpoint=... or model.pretrained=true"
)


@dataclass
class StrategyPlan:
    """What the optimizer gets, and hooks the loop runs before each epoch.

    param_groups carry a `name` and an absolute `lr`; `head` holds the build arguments of a new
    head (kept in the checkpoint); `cache_features` asks the train command to extract the frozen
    body's features once and train the head on them.
    """

    param_groups: list[dict[str, Any]]
    epoch_hooks: list[Callable[[int, Any], None]] = field(default_factory=list)
    uses_given_weights: bool = True
    head: dict[str, Any] | None = None
    cache_features: bool = False
    freezes_body: bool = False  # freezes or probes the body for some epochs: its weights matter

    def body_note(self, *, body_loaded: bool) -> str | None:
        """What the run transfers, when it is nothing: frozen random features are a fair
        baseline, but a user who asked for transfer must be told that is what they got."""
        if self.freezes_body and not body_loaded:
            return RANDOM_BODY
        return None

    def check_trainable(self, strategy: str) -> None:
        if not any(p.requires_grad for group in self.param_groups for p in group["params"]):
            raise KtaError(
                f"strategy {strategy} leaves nothing trainable; keep the head trainable "
                "(strategy.head_lr_mult > 0) or freeze fewer layers"
            )


def check_rate(name: str, value: float) -> None:
    if not value >= 0:
        raise KtaError(f"strategy.{name} must be >= 0 (0 freezes that part), got {value}")


def new_head(model: nn.Module, head: str, head_hidden: int) -> dict[str, Any] | None:
    built = attach_head(model, head, head_hidden)
    if built is not None:
        log.info("strategy: new %s head", head)
    return built


def split_head(
    model: nn.Module, lr: float, head_lr_mult: float
) -> tuple[list[nn.Parameter], dict[str, Any]]:
    """(body parameters, the head's param group); head_lr_mult=0 freezes the head."""
    check_rate("head_lr_mult", head_lr_mult)
    head = head_parameters(model)
    ids = {id(p) for _, p in head}
    body = [p for p in model.parameters() if id(p) not in ids]
    if head_lr_mult == 0:
        for _, param in head:
            param.requires_grad_(False)
    group = {"params": [p for _, p in head], "name": "head", "lr": lr * head_lr_mult}
    return body, group


def full(
    model: nn.Module,
    lr: float = 0.05,
    head: str = "keep",
    head_hidden: int = 256,
    head_lr_mult: float = 1.0,
) -> StrategyPlan:
    """Every parameter trains at the optimizer's learning rate (the head at lr * head_lr_mult)."""
    built = new_head(model, head, head_hidden)
    body, head_group = split_head(model, lr, head_lr_mult)
    groups = [{"params": body, "name": "body", "lr": lr}, head_group]
    return StrategyPlan([g for g in groups if g["params"]], head=built)


def scratch(
    model: nn.Module,
    init: str = "kaiming",
    lr: float = 0.05,
    head: str = "keep",
    head_hidden: int = 256,
    head_lr_mult: float = 1.0,
) -> StrategyPlan:
    """Forget any given weights: re-initialise with `init`, then train everything."""
    init_weights(model, init)
    plan = full(model, lr=lr, head=head, head_hidden=head_hidden, head_lr_mult=head_lr_mult)
    plan.uses_given_weights = False
    return plan


def trainable_reporter(model: nn.Module, tensorboard: Any) -> Callable[[int, Any], None]:
    """An epoch hook (run after the strategy's): the trainable count, in the log when it changes
    and in TensorBoard every epoch."""
    seen: list[int] = []

    def hook(epoch: int, trainer: Any) -> None:
        trainable = count_parameters(model, trainable=True)
        if seen and seen[-1] != trainable:
            log.info("epoch %d: %d trainable parameters", epoch + 1, trainable)
        seen.append(trainable)
        tensorboard.scalars({"epoch/trainable_parameters": trainable}, epoch)

    return hook
