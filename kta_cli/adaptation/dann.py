"""Domain-adversarial training (Ganin et al. 2016, "Domain-Adversarial Training of Neural
Networks"): a domain classifier on the pooled features, behind a gradient-reversal layer, so the
feature extractor learns features the classifier cannot tell apart across domains.

The gradient-reversal layer is written here (a four-line autograd Function): no installed
library ships one that works on any timm backbone.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kta_cli.models.features import pre_logits


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times -scale backward."""

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return inputs.view_as(inputs)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad_output, None


def reverse_gradient(inputs: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    return GradientReversal.apply(inputs, scale)


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """The paper's schedule: 2 / (1 + exp(-gamma p)) - 1, from 0 at p=0 towards 1 at p=1; it
    keeps the noisy early domain signal from swamping the classifier."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


class DomainClassifier(nn.Module):
    """The paper's domain head: two hidden ReLU layers (with dropout), one logit: target?"""

    def __init__(self, features: int, hidden: int = 256) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(hidden, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).squeeze(1)


def feature_width(model: nn.Module, img_size: int) -> int:
    """The width of the pooled features before the head (one dry forward pass)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        width = pre_logits(model, torch.zeros(1, 3, img_size, img_size)).shape[1]
    model.train(was_training)
    return width


class DannTask(nn.Module):
    """A task for the loop. A batch is (source images, source labels, target images, target
    labels); target labels are only scored (`target_acc`), never in the loss.

    loss = CE(source) + weight * BCE(domain), the domain logits taken behind the reversal layer
    with scale lambda_p; p = steps taken / `total_steps`, a saved buffer, so resume is exact.
    Source and target go through the backbone together, as one batch (BatchNorm statistics over
    both domains, as in the Transfer-Learning-Library's DANN).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        img_size: int,
        total_steps: int,
        weight: float = 1.0,
        gamma: float = 10.0,
        schedule: bool = True,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        self.model = model
        self.domain = DomainClassifier(feature_width(model, img_size), hidden)
        self.total_steps, self.weight, self.gamma, self.schedule = (
            max(total_steps, 1),
            weight,
            gamma,
            schedule,
        )
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    def loss_parameters(self) -> list[nn.Parameter]:
        """The domain classifier trains with the model (the run builder adds these)."""
        return list(self.domain.parameters())

    def current_lambda(self) -> float:
        if not self.schedule:
            return 1.0
        return dann_lambda(min(float(self.steps_done) / self.total_steps, 1.0), self.gamma)

    def forward(self, batch: tuple[torch.Tensor, ...]) -> dict[str, Any]:
        source, labels, target, target_labels = batch
        n = len(source)
        features = pre_logits(self.model, torch.cat([source, target]))
        logits = self.model.get_classifier()(features)
        scale = self.current_lambda()
        domain_logits = self.domain(reverse_gradient(features, scale))
        is_target = torch.cat([source.new_zeros(n), source.new_ones(len(target))])
        domain_loss = F.binary_cross_entropy_with_logits(domain_logits, is_target)
        ce = F.cross_entropy(logits[:n], labels)
        if self.training:
            self.steps_done += 1
        domain_acc = ((domain_logits > 0).float() == is_target).float().mean()
        return {
            "loss": ce + self.weight * domain_loss,
            "ce": ce.detach(),
            "domain_loss": domain_loss.detach(),
            "acc": (logits[:n].argmax(1) == labels).float().mean(),
            "target_acc": (logits[n:].argmax(1) == target_labels).float().mean(),
            "domain_acc": domain_acc,
            "lambda": scale,
            "logits": logits[:n].detach(),
        }
