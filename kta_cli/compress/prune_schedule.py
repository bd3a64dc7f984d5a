"""The iterative loop (prune a step, fine-tune, check the loss) and per-layer sensitivity.

Both take the pruning and evaluation as callables, so structured and unstructured share them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from kta_cli.errors import KtaError, did_you_mean

SCHEDULES = ("linear", "cubic")


def schedule_ratios(ratio: float, steps: int, kind: str = "linear") -> list[float]:
    """Target ratio after each step, starting with 0: linear, or cubic (AGP).

    Cubic is Zhu & Gupta's gradual schedule r_i = r * (1 - (1 - i/n)^3): big steps while the
    network is redundant, small ones near the end.
    """
    if kind not in SCHEDULES:
        raise KtaError(did_you_mean(kind, SCHEDULES, what="prune.schedule"))
    if kind == "cubic":
        return [ratio * (1 - (1 - i / steps) ** 3) for i in range(steps + 1)]
    return [ratio * i / steps for i in range(steps + 1)]


@dataclass
class StepRecord:
    """What one step did: the asked ratio, what it reached, and the model's quality."""

    step: int
    target: float
    sparsity: float
    pruned: dict[str, float]  # loss and acc right after pruning
    tuned: dict[str, float]  # loss and acc after fine-tuning
    meets: bool
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class IterativeResult:
    model: nn.Module  # the most pruned model that met max_allowed_loss (or the input)
    best_step: int  # 0: no step met it
    records: list[StepRecord]
    stopped_early: bool


def iterative_prune(
    model: nn.Module,
    *,
    targets: list[float],
    prune_step: Callable[[int], dict[str, Any]],
    fine_tune: Callable[[int], bool],
    evaluate: Callable[[], dict[str, float]],
    snapshot: Callable[[], nn.Module],
    max_allowed_loss: float | None = None,
) -> IterativeResult:
    """while loss < max_allowed_loss: prune a step, fine-tune, measure; keep the last good model.

    prune_step(i) prunes `model` in place to targets[i] and returns {"sparsity": ..., ...};
    fine_tune(i) returns False when it did not train (then the model is not measured again);
    snapshot() copies the model as it should be saved (masks folded in).
    """
    best, best_step, records = snapshot(), 0, []
    for i in range(1, len(targets)):
        extra = prune_step(i)
        pruned = evaluate()
        tuned = evaluate() if fine_tune(i) else dict(pruned)
        meets = max_allowed_loss is None or tuned["loss"] <= max_allowed_loss
        records.append(
            StepRecord(i, targets[i], extra.pop("sparsity"), pruned, tuned, meets, extra)
        )
        if not meets:
            return IterativeResult(best, best_step, records, stopped_early=True)
        best, best_step = snapshot(), i
    return IterativeResult(best, best_step, records, stopped_early=False)


def sensitivity(
    model: nn.Module,
    layer_names: list[str],
    ratios: list[float],
    *,
    prune_one: Callable[[nn.Module, str, float], Any],
    evaluate: Callable[[nn.Module], dict[str, float]],
) -> dict[str, dict[float, float]]:
    """Accuracy with each layer alone pruned by each ratio (no fine-tuning), on copies."""
    table: dict[str, dict[float, float]] = {}
    for name in layer_names:
        table[name] = {}
        for ratio in ratios:
            trial = copy.deepcopy(model)
            prune_one(trial, name, ratio)
            table[name][ratio] = evaluate(trial)["acc"]
    return table
