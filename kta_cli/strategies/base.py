"""The strategies every run has: `full` (fine-tune everything) and `scratch` (re-initialise).

A strategy is a function `(model, **options) -> StrategyPlan`, named by `_target_` in
configs/strategy/<name>.yaml and called by the train command with the built model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from kta_cli.errors import KtaError
from kta_cli.models.factory import init_weights


@dataclass
class StrategyPlan:
    """What the optimizer gets, and hooks the loop runs before each epoch."""

    param_groups: list[dict[str, Any]]
    epoch_hooks: list[Callable[[int, Any], None]] = field(default_factory=list)
    uses_given_weights: bool = True

    def check_trainable(self, strategy: str) -> None:
        if not any(p.requires_grad for group in self.param_groups for p in group["params"]):
            raise KtaError(f"strategy {strategy} leaves nothing trainable")


def full(model: nn.Module) -> StrategyPlan:
    """Every parameter trains at the optimizer's learning rate."""
    return StrategyPlan(
        [{"params": [p for p in model.parameters() if p.requires_grad], "name": "all"}]
    )


def scratch(model: nn.Module, init: str = "kaiming") -> StrategyPlan:
    """Forget any given weights: re-initialise with `init`, then train everything."""
    init_weights(model, init)
    plan = full(model)
    plan.uses_given_weights = False
    return plan
