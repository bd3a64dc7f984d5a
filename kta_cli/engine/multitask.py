"""Multi-task training: one shared backbone, one head per task, a weighted sum of their losses.

The heads are the row blocks of one timm classifier (task t owns its own rows, so each block is
an independent linear head F -> C_t); the checkpoint stays a plain timm model that every kta
command can load. Weights are fixed per task, or learned with homoscedastic uncertainty
(Kendall, Gal & Cipolla 2018): loss = sum_t exp(-s_t) * L_t + s_t / 2, s_t = log sigma_t^2.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kta_cli.errors import KtaError

WEIGHTINGS = ("fixed", "uncertainty")


def task_weights(tasks: list[str], weights: dict[str, float] | None) -> list[float]:
    """Fixed loss weights, 1 for a task not named; unknown names and negatives are refused."""
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(tasks))
    if unknown:
        raise KtaError(f"task.weights names unknown task(s) {unknown}; tasks: {', '.join(tasks)}")
    values = [float(weights.get(name, 1.0)) for name in tasks]
    if any(v < 0 for v in values) or not any(v > 0 for v in values):
        raise KtaError(
            f"task.weights must be >= 0 and not all 0, got {dict(zip(tasks, values, strict=True))}"
        )
    return values


class MultiTaskTask(nn.Module):
    """A task for the loop: per-task loss_<task>, acc_<task> (weight_<task> when learned), and
    `acc`, the mean of the task accuracies, which the loop monitors."""

    def __init__(
        self,
        model: nn.Module,
        tasks: list[tuple[str, int]],
        *,
        weighting: str = "fixed",
        weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise KtaError(
                f"task.weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}"
            )
        self.model = model
        self.names = [name for name, _ in tasks]
        self.sizes = [size for _, size in tasks]
        self.weighting = weighting
        # Configuration, not state: not saved, so a resumed run takes task.weights as given.
        self.register_buffer(
            "fixed_weights", torch.tensor(task_weights(self.names, weights)), persistent=False
        )
        self.log_vars = nn.Parameter(torch.zeros(len(tasks)), requires_grad=weighting != "fixed")

    def loss_parameters(self) -> list[nn.Parameter]:
        """Parameters of the loss itself (learned weights), for the optimizer."""
        return [self.log_vars] if self.log_vars.requires_grad else []

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
        images, labels = batch
        logits = self.model(images)
        if logits.shape[1] != sum(self.sizes):
            raise KtaError(f"model gives {logits.shape[1]} outputs, tasks need {sum(self.sizes)}")
        out: dict[str, Any] = {}
        total = logits.new_zeros(())
        accuracies = []
        for t, (name, part) in enumerate(zip(self.names, logits.split(self.sizes, 1), strict=True)):
            ce = F.cross_entropy(part, labels[:, t])
            acc = (part.argmax(1) == labels[:, t]).float().mean()
            if self.weighting == "uncertainty":
                total = total + torch.exp(-self.log_vars[t]) * ce + 0.5 * self.log_vars[t]
                out[f"weight_{name}"] = torch.exp(-self.log_vars[t]).detach()
            else:
                total = total + self.fixed_weights[t] * ce
            out[f"loss_{name}"], out[f"acc_{name}"] = ce.detach(), acc
            accuracies.append(acc)
        out.update(loss=total, acc=torch.stack(accuracies).mean(), logits=logits.detach())
        return out
