"""The steps of `kta attack` below the command: collect the split, score each victim, the grid."""

from __future__ import annotations

from typing import Any

import torch

from kta_cli.robustness.attacks import Attack, perturb
from kta_cli.robustness.evaluate import (
    Victim,
    attack_curve,
    clean_accuracy,
    noisy_accuracy,
    predict,
)
from kta_cli.robustness.report import eps_text, examples_figure


def evaluate_victim(
    victim: Victim,
    images: torch.Tensor,
    labels: torch.Tensor,
    attacks: dict[str, list[Attack]],
    noise_stds: list[float],
    *,
    batch_size: int,
    target: int | None,
    seed: int,
) -> dict[str, Any]:
    """Clean accuracy, each attack's curve and the noise curve of one victim."""
    return {
        "label": victim.label,
        "mode": victim.mode,
        "transfer_from": victim.transfer_from,
        "clean_acc": clean_accuracy(victim, images, labels, batch_size=batch_size),
        "attacks": {
            method: attack_curve(
                victim, images, labels, radii, batch_size=batch_size, target=target, seed=seed
            )
            for method, radii in attacks.items()
        },
        "noise": noisy_accuracy(
            victim, images, labels, noise_stds, batch_size=batch_size, seed=seed
        ),
    }


def flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The main model's figures as flat keys: clean_acc, pgd_acc@8/255, noise_acc@0.1, ..."""
    flat = {"clean_acc": result["clean_acc"], "mode": result["mode"]}
    for method, points in result["attacks"].items():
        for point in points:
            key = f"{method}_acc@{eps_text(method, point['eps'])}"
            flat[key] = point["acc"]
            if "target_hit" in point:
                flat[f"{method}_target_hit@{eps_text(method, point['eps'])}"] = point["target_hit"]
    for point in result["noise"]:
        flat[f"noise_acc@{point['std']:g}"] = point["acc"]
    return flat


def example_grid(
    victim: Victim,
    images: torch.Tensor,
    labels: torch.Tensor,
    attacks: dict[str, list[Attack]],
    class_names: list[str],
    *,
    rows: int,
    target: int | None,
    seed: int,
) -> Any:
    """The strongest attack that ran (PGD, else the last method, at its largest radius) on the
    first `rows` images; None when every radius is 0."""
    method = "pgd" if "pgd" in attacks else list(attacks)[-1]
    attack = max(attacks[method], key=lambda a: a.eps)
    if attack.eps == 0:
        return None
    batch, batch_labels = images[:rows], labels[:rows]
    torch.manual_seed(seed)
    wanted = None if target is None else torch.full_like(batch_labels, target)
    adversarial = perturb(victim.source, batch, batch_labels, attack, wanted)
    before = predict(victim.model, batch, victim.device).softmax(dim=1)
    after = predict(victim.model, adversarial, victim.device).softmax(dim=1)
    title = f"{victim.label}: {method} eps {eps_text(method, attack.eps)} ({victim.mode})"
    return examples_figure(batch, adversarial, before, after, class_names, title)
