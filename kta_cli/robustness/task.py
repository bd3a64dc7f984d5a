"""Adversarial training as a task of the one loop (engine/tasks.py): each training batch is
replaced by adversarial examples of the model being trained.

    fgsm  FGSM from a random start, step 1.25 eps ("fast is better than free", Wong et al. 2020)
    pgd   PGD from a random start, `steps` steps of 2.5 eps / steps (Madry et al. 2018)

The loader's images are normalised; the attack works on [0, 1] pixels (eps in pixel units), so
the task undoes the normalisation, attacks, and lets the model normalise again. Evaluation
reports clean `acc`/`loss` (as the plain task) and `robust_acc`/`robust_loss` under PGD at the
same eps, from a fixed seed and in a forked RNG: the validation attack neither changes between
epochs nor moves the training's random stream (exact resume).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kta_cli.engine.tasks import classification_loss
from kta_cli.robustness.attacks import Attack, perturb, to_pixels

VAL_ATTACK_SEED = 0


class AdversarialTask(nn.Module):
    def __init__(
        self,
        model: nn.Module,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        train_attack: Attack,
        val_attack: Attack,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.train_attack, self.val_attack = train_attack, val_attack
        self.train_loss = classification_loss(label_smoothing)
        # not persistent: they come from the data spec, and last.ckpt stays loadable by the
        # plain task (fine-tuning a plain run adversarially, or the other way round)
        shape = (1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(list(mean)).view(shape), persistent=False)
        self.register_buffer("std", torch.tensor(list(std)).view(shape), persistent=False)

    def pixel_logits(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model((pixels - self.mean) / self.std)

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
        images, labels = batch
        pixels = to_pixels(images, self.mean, self.std)  # noise augmentation is clipped here
        if self.training:
            adversarial = perturb(self.pixel_logits, pixels, labels, self.train_attack)
            logits = self.pixel_logits(adversarial)
            loss = self.train_loss(logits, labels)
            # train_acc: accuracy on the adversarial training examples
            correct = (logits.argmax(dim=1) == labels).float().mean()
            return {"loss": loss, "acc": correct.detach()}
        logits = self.model(images)
        devices = [images.device] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(VAL_ATTACK_SEED)
            adversarial = perturb(self.pixel_logits, pixels, labels, self.val_attack)
        robust_logits = self.pixel_logits(adversarial).float()
        return {
            "loss": F.cross_entropy(logits.float(), labels),
            "acc": (logits.argmax(dim=1) == labels).float().mean(),
            "robust_loss": F.cross_entropy(robust_logits, labels),
            "robust_acc": (robust_logits.argmax(dim=1) == labels).float().mean(),
            "logits": logits.detach(),
        }


def adversarial_task(
    model: nn.Module,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    attack: str,
    eps: float,
    steps: int,
    step_size: float | None,
    val_steps: int,
    label_smoothing: float = 0.0,
) -> AdversarialTask:
    """The task for task=adversarial (attack fgsm | pgd, eps in pixel units)."""
    if attack == "fgsm":
        train_attack = Attack("fgsm", eps, step_size=step_size, random_start=True)
    else:
        train_attack = Attack("pgd", eps, steps, step_size, random_start=True)
    val_attack = Attack("pgd", eps, val_steps, None, random_start=True)
    return AdversarialTask(
        model,
        mean=mean,
        std=std,
        train_attack=train_attack,
        val_attack=val_attack,
        label_smoothing=label_smoothing,
    )
