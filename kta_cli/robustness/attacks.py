"""FGSM and PGD (L-inf, L2) on a model that takes [0, 1] images, so epsilon is in pixel units.

Written by hand (a few lines each) rather than taken from torchattacks: kta needs the same maths
inside a training step (the adversarial task, under the loop's autocast and DDP) and in batched
evaluation with a transfer source, without a second model wrapper. The updates follow
torchattacks' FGSM / PGD / PGDL2: the gradient of the mean cross-entropy (minus it towards a
target), a step along its sign (L-inf) or its unit-L2 direction, projection onto the epsilon
ball around the clean image, then clipping to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kta_cli.errors import KtaError

METHODS = ("fgsm", "pgd", "pgd_l2")
L2_DIVISION_EPS = 1e-12
Classifier = Callable[
    [torch.Tensor], torch.Tensor
]  # [0, 1] images -> logits  # keeps a zero gradient or a zero perturbation from dividing by zero


class PixelModel(nn.Module):
    """A classifier that takes [0, 1] images: its own normalisation, then the model."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images - self.mean) / self.std)


def to_pixels(
    normalized: torch.Tensor,
    mean: torch.Tensor | Sequence[float],
    std: torch.Tensor | Sequence[float],
) -> torch.Tensor:
    """Undo the data pipeline's normalisation: model inputs back to [0, 1] images."""
    mean_t = torch.as_tensor(mean, dtype=normalized.dtype, device=normalized.device).view(
        1, -1, 1, 1
    )
    std_t = torch.as_tensor(std, dtype=normalized.dtype, device=normalized.device).view(1, -1, 1, 1)
    return (normalized * std_t + mean_t).clamp(0.0, 1.0)


@dataclass(frozen=True)
class Attack:
    """One attack at one radius. step_size None: 2.5 * eps / steps (Madry et al. 2018)."""

    method: str
    eps: float
    steps: int = 10
    step_size: float | None = None
    random_start: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise KtaError(f"unknown attack {self.method!r}; one of {', '.join(METHODS)}")
        if self.eps < 0:
            raise KtaError(f"attack epsilon must be >= 0, got {self.eps}")
        if self.method != "fgsm" and self.steps < 1:
            raise KtaError(f"PGD needs at least 1 step, got steps={self.steps}")

    @property
    def alpha(self) -> float:
        if self.step_size is not None:
            return self.step_size
        if self.method == "fgsm":
            return 1.25 * self.eps if self.random_start else self.eps  # Wong et al. 2020
        return 2.5 * self.eps / self.steps


def loss_gradient(
    model: Classifier, images: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None
) -> torch.Tensor:
    """d(loss)/d(images) for the attacker's loss: CE of the true label, or minus CE of the
    target (a step up this gradient moves towards the target). Model weights get no gradient."""
    with torch.enable_grad():
        images = images.detach().requires_grad_(True)
        logits = model(images)
        if target is None:
            loss = F.cross_entropy(logits.float(), labels)
        else:
            loss = -F.cross_entropy(logits.float(), target)
        return torch.autograd.grad(loss, images)[0].detach()


def random_start(images: torch.Tensor, attack: Attack) -> torch.Tensor:
    """A uniform point of the L-inf ball, or of the L2 ball as torchattacks' PGDL2 draws it."""
    if attack.method != "pgd_l2":
        delta = torch.empty_like(images).uniform_(-attack.eps, attack.eps)
    else:
        delta = torch.empty_like(images).normal_()
        norms = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        radius = torch.empty_like(norms).uniform_(0, 1)
        delta = delta * radius / (norms + L2_DIVISION_EPS) * attack.eps
    return (images + delta).clamp(0.0, 1.0)


def project(adversarial: torch.Tensor, images: torch.Tensor, attack: Attack) -> torch.Tensor:
    """Back into the epsilon ball around `images`, then into [0, 1] (in place on the
    fresh `adversarial` tensor: fewer allocations per step)."""
    delta = adversarial.sub_(images)
    if attack.method == "pgd_l2":
        norms = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta.mul_(torch.clamp(attack.eps / (norms + L2_DIVISION_EPS), max=1.0))
    else:
        delta.clamp_(-attack.eps, attack.eps)
    return delta.add_(images).clamp_(0.0, 1.0)


def step(adversarial: torch.Tensor, gradient: torch.Tensor, attack: Attack) -> torch.Tensor:
    """A new tensor: `adversarial` moved up the gradient by the attack's step size."""
    if attack.method == "pgd_l2":
        norms = gradient.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        return torch.add(adversarial, gradient / (norms + L2_DIVISION_EPS), alpha=attack.alpha)
    return torch.add(adversarial, gradient.sign_(), alpha=attack.alpha)


def perturb(
    model: Classifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    attack: Attack,
    target: torch.Tensor | None = None,
) -> torch.Tensor:
    """Adversarial versions of [0, 1] `images` against `model` (which takes [0, 1] images).

    FGSM: one step of size eps from the clean image (with random_start: Wong et al.'s step of
    1.25 eps from a random point). PGD: `steps` projected steps, from a random point of the ball
    when random_start. The result is inside the ball and inside [0, 1].
    """
    images = images.detach()
    if attack.eps == 0:
        return images.clone()
    adversarial = random_start(images, attack) if attack.random_start else images.clone()
    steps = 1 if attack.method == "fgsm" else attack.steps
    for _ in range(steps):
        gradient = loss_gradient(model, adversarial, labels, target)
        adversarial = project(step(adversarial, gradient, attack), images, attack)
    return adversarial
