"""The distillation task: a frozen teacher, a student, and every loss part as a loggable scalar.

Training batches are (images, labels) or (images, labels, example ids) when the teacher's outputs
come from a cache. Evaluation scores the student alone (plain cross-entropy and accuracy), so its
val/test figures compare directly with a `kta train` run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kta_cli.losses.distillation import (
    combined_distillation_loss,
    logit_mse_loss,
    soft_target_loss,
)
from kta_cli.losses.hints import HintAdapter, hint_loss
from kta_cli.losses.schedules import ValueSchedule
from kta_cli.models.features import FeatureCapture, resolve_layer


def hint_key(layer: str) -> str:
    """The name a teacher feature has among the teacher's outputs (and in the cache)."""
    return f"hint/{layer}"


class DistillationTask(nn.Module):
    """alpha * CE + (1 - alpha) * (kd_weight * T^2 KL + mse_weight * MSE) + hint_weight * hints.

    `hints` pairs (student layer, teacher layer); each gets a HintAdapter sized by a probe pass
    on `example_input`. The teacher stays in eval mode without gradients, whatever the loop does.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        temperature: ValueSchedule,
        alpha: ValueSchedule,
        total_steps: int,
        kd_weight: float = 1.0,
        mse_weight: float = 0.0,
        hint_weight: float = 1.0,
        hints: Sequence[tuple[str, str]] = (),
        example_input: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.model = student
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature, self.alpha, self.total_steps = temperature, alpha, total_steps
        self.kd_weight, self.mse_weight, self.hint_weight = kd_weight, mse_weight, hint_weight
        self.hints = [
            (resolve_layer(student, s, role="student"), resolve_layer(teacher, t, role="teacher"))
            for s, t in hints
        ]
        self.student_tap = FeatureCapture(student, [s for s, _ in self.hints])
        self.teacher_tap = FeatureCapture(teacher, [t for _, t in self.hints])
        self.adapters = nn.ModuleList()
        if self.hints:
            if example_input is None:
                raise ValueError("feature hints need an example input to size their adapters")
            self.adapters.extend(self._probe_adapters(example_input))
        self.step = 0
        self.cache: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def _probe_adapters(self, example_input: torch.Tensor) -> list[HintAdapter]:
        was_training = self.model.training
        self.model.eval()  # BatchNorm in train mode refuses a 1x1 map of one example
        self.model(example_input)
        student_features = self.student_tap.pop()
        teacher_features = self.teacher_outputs(example_input)
        self.model.train(was_training)
        return [
            HintAdapter(student_features[s].shape, teacher_features[hint_key(t)].shape)
            for s, t in self.hints
        ]

    def train(self, mode: bool = True) -> DistillationTask:
        super().train(mode)
        self.teacher.eval()  # the loop calls train() every epoch; the teacher never trains
        return self

    @property
    def teacher_layers(self) -> list[str]:
        return [t for _, t in self.hints]

    @torch.no_grad()
    def teacher_outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Teacher logits and hinted features for a batch: what the cache stores per example."""
        logits = self.teacher(images)
        features = self.teacher_tap.pop()
        return {"logits": logits, **{hint_key(t): features[t] for t in self.teacher_layers}}

    def use_cache(self, cache: dict[str, torch.Tensor] | None) -> None:
        """Take teacher outputs from `cache` (rows indexed by example id), not from the teacher."""
        self.cache = cache

    def sync_step(self, epoch: int, trainer: Any) -> None:
        """Epoch hook: the schedules follow the loop's step count (also after a resume)."""
        self.step = trainer.state.step

    def schedule_values(self) -> tuple[float, float]:
        """(temperature, alpha) at the current step."""
        return (
            self.temperature.at(self.step, self.total_steps),
            self.alpha.at(self.step, self.total_steps),
        )

    def forward(self, batch: Sequence[torch.Tensor]) -> dict[str, Any]:
        images, labels = batch[0], batch[1]
        logits = self.model(images)
        student_features = self.student_tap.pop()
        ce = F.cross_entropy(logits, labels)
        outputs: dict[str, Any] = {
            "acc": (logits.argmax(dim=1) == labels).float().mean().detach(),
            "logits": logits.detach(),
        }
        if not self.training:
            return {"loss": ce, **outputs}
        if self.cache is not None:
            ids = batch[2].to(self.cache["logits"].device)
            teacher = {key: values[ids] for key, values in self.cache.items()}
        else:
            teacher = self.teacher_outputs(images)
        temperature, alpha = self.schedule_values()
        parts: dict[str, torch.Tensor] = {"ce": ce}
        if self.kd_weight > 0:
            parts["kd"] = soft_target_loss(logits, teacher["logits"], temperature)
        if self.mse_weight > 0:
            parts["mse"] = logit_mse_loss(logits, teacher["logits"])
        if self.hints:
            losses = [
                hint_loss(adapter(student_features[s]), adapter.target(teacher[hint_key(t)]))
                for adapter, (s, t) in zip(self.adapters, self.hints, strict=True)
            ]
            parts["feature"] = torch.stack(losses).mean()
        loss = combined_distillation_loss(
            ce=ce,
            kd=parts.get("kd"),
            mse=parts.get("mse"),
            feature=parts.get("feature"),
            alpha=alpha,
            kd_weight=self.kd_weight,
            mse_weight=self.mse_weight,
            hint_weight=self.hint_weight,
        )
        self.step += 1
        detached = {k: v.detach() for k, v in parts.items()}
        return {"loss": loss, **detached, **outputs, "temperature": temperature, "alpha": alpha}
