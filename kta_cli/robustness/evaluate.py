"""Accuracy of one or more models under attack and under noise, on the same images.

A `Victim` is the model scored plus the model whose gradients make its adversarial examples:
itself (white-box), or, for an int8 program that has no gradients, its float parent (transfer).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kta_cli.robustness.attacks import Attack, perturb


@dataclass
class Victim:
    label: str  # name in tables and legends
    model: nn.Module  # takes [0, 1] images (PixelModel)
    source: nn.Module  # makes the adversarial examples: `model` itself, or a float parent
    device: torch.device  # where `model` runs (an int8 program: the CPU)
    num_classes: int
    transfer_from: str | None = None  # the float parent's path when `source` is not `model`

    @property
    def mode(self) -> str:
        return "white-box" if self.transfer_from is None else "transfer"


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Logits of [0, 1] `images` (one batch) on `device`, returned on the images' device."""
    return model(images.to(device)).float().to(images.device)


def batches(total: int, batch_size: int) -> list[slice]:
    return [slice(start, start + batch_size) for start in range(0, total, batch_size)]


def attacked_accuracy(
    victim: Victim,
    images: torch.Tensor,
    labels: torch.Tensor,
    attack: Attack,
    *,
    batch_size: int,
    target: int | None = None,
) -> dict[str, float]:
    """acc: share still classified correctly; with a target, target_hit: share of images of
    another class now predicted as the target (the targeted attack's success rate)."""
    correct = hits = others = 0
    for part in batches(len(labels), batch_size):
        batch, batch_labels = images[part], labels[part]
        wanted = None if target is None else torch.full_like(batch_labels, target)
        adversarial = perturb(victim.source, batch, batch_labels, attack, wanted)
        predicted = predict(victim.model, adversarial, victim.device).argmax(dim=1)
        correct += int((predicted == batch_labels).sum())
        if target is not None:
            other = batch_labels != target
            others += int(other.sum())
            hits += int((predicted[other] == target).sum())
    scores = {"acc": correct / max(len(labels), 1)}
    if target is not None:
        scores["target_hit"] = hits / max(others, 1)
    return scores


def attack_curve(
    victim: Victim,
    images: torch.Tensor,
    labels: torch.Tensor,
    attacks: list[Attack],
    *,
    batch_size: int,
    target: int | None = None,
    seed: int = 0,
) -> list[dict[str, float]]:
    """One point per attack (one method at rising eps): eps, acc (and target_hit)."""
    points = []
    for attack in attacks:
        torch.manual_seed(seed)  # the same random starts for every model and radius
        scores = attacked_accuracy(
            victim, images, labels, attack, batch_size=batch_size, target=target
        )
        points.append({"eps": attack.eps, **scores})
    return points


def noisy_accuracy(
    victim: Victim,
    images: torch.Tensor,
    labels: torch.Tensor,
    stds: list[float],
    *,
    batch_size: int,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Accuracy on images plus Gaussian noise of each std (pixel units), clipped to [0, 1]; the
    same noise pattern (one generator per std, seeded alike) for every model."""
    points = []
    for std in stds:
        generator = torch.Generator().manual_seed(seed)
        correct = 0
        for part in batches(len(labels), batch_size):
            batch = images[part]
            noise = torch.randn(batch.shape, generator=generator).to(batch.device)
            noisy = (batch + std * noise).clamp(0.0, 1.0)
            predicted = predict(victim.model, noisy, victim.device).argmax(dim=1)
            correct += int((predicted == labels[part]).sum())
        points.append({"std": std, "acc": correct / max(len(labels), 1)})
    return points


def clean_accuracy(
    victim: Victim, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int
) -> float:
    correct = 0
    for part in batches(len(labels), batch_size):
        predicted = predict(victim.model, images[part], victim.device).argmax(dim=1)
        correct += int((predicted == labels[part]).sum())
    return correct / max(len(labels), 1)
