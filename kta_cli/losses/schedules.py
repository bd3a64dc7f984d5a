"""Schedules for a loss hyper-parameter (temperature, alpha) over the steps of a run.

timm's schedulers drive an optimizer's learning rate, not a free-standing number, so this small
value schedule is written here: constant, linear, cosine or step from `start` to `end`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from kta_cli.errors import KtaError, did_you_mean

SCHEDULE_KINDS = ("constant", "linear", "cosine", "step")


@dataclass(frozen=True)
class ValueSchedule:
    """A value that moves from `start` (first step) to `end` (last step).

    step: after passing i of n milestones (fractions of training in (0, 1)) the value is
    start + (end - start) * i / n.
    """

    start: float
    end: float | None = None
    kind: str = "constant"
    milestones: Sequence[float] = field(default_factory=lambda: (0.5,))

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise KtaError(did_you_mean(self.kind, SCHEDULE_KINDS, what="schedule"))
        if self.kind != "constant" and self.end is None:
            raise KtaError(f"a {self.kind} schedule needs an end value (it starts at {self.start})")
        if self.kind == "step" and (
            not self.milestones or not all(0 < m < 1 for m in self.milestones)
        ):
            raise KtaError(
                f"step schedule milestones must be fractions of training in (0, 1), "
                f"got {list(self.milestones)}"
            )

    def at(self, step: int, total_steps: int) -> float:
        """The value at optimizer step `step` (0-based) of `total_steps`."""
        if self.kind == "constant" or self.end is None:
            return float(self.start)
        progress = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
        span = self.end - self.start
        if self.kind == "linear":
            return self.start + span * progress
        if self.kind == "cosine":
            return self.end - span * (1 + math.cos(math.pi * progress)) / 2
        passed = sum(progress >= m for m in self.milestones)
        return self.start + span * passed / len(self.milestones)

    def values(self) -> tuple[float, float]:
        """Every value this schedule can take lies between these two."""
        return (self.start, self.start if self.end is None else self.end)
