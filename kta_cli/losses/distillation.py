"""Distillation losses on logits: Hinton's soft targets (with the T^2 scaling) and logit matching.

PyTorch has KL divergence but no distillation loss with temperature; timm's KD lives inside its
training task and is not importable as a function, so these few lines are written here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch.

    The T^2 factor keeps the gradient scale of the soft targets independent of T (Hinton 2015).
    """
    student_log_probs = F.log_softmax(student_logits.float() / temperature, dim=1)
    teacher_log_probs = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    kl = F.kl_div(student_log_probs, teacher_log_probs, reduction="batchmean", log_target=True)
    return kl * temperature**2


def logit_mse_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """||z_T - z_S||^2: squared distance between logit vectors, summed over classes, batch mean."""
    difference = student_logits.float() - teacher_logits.float()
    return difference.pow(2).sum(dim=1).mean()


def combined_distillation_loss(
    *,
    ce: torch.Tensor,
    kd: torch.Tensor | None,
    mse: torch.Tensor | None,
    feature: torch.Tensor | None,
    alpha: float,
    kd_weight: float,
    mse_weight: float,
    hint_weight: float,
) -> torch.Tensor:
    """alpha * CE + (1 - alpha) * (kd_weight * KD + mse_weight * MSE) + hint_weight * feature."""
    soft = ce.new_zeros(())
    if kd is not None:
        soft = soft + kd_weight * kd
    if mse is not None:
        soft = soft + mse_weight * mse
    loss = alpha * ce + (1.0 - alpha) * soft
    if feature is not None:
        loss = loss + hint_weight * feature
    return loss
