"""Continual-learning penalties: EWC's quadratic anchor (Kirkpatrick et al. 2017).

A few lines over tensors; LwF's distillation term is losses/distillation.py's soft_target_loss.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def ewc_penalty(
    parameters: Mapping[str, torch.Tensor],
    anchors: Mapping[str, torch.Tensor],
    fisher: Mapping[str, torch.Tensor],
) -> torch.Tensor:
    """sum_k F_k (theta_k - theta*_k)^2 over the parameters the Fisher names.

    The loss adds lambda / 2 times this (Kirkpatrick et al. 2017, eq. 3); `anchors` are the
    weights after the earlier task, `fisher` its diagonal Fisher information.
    """
    total = None
    for name, importance in fisher.items():
        term = (importance * (parameters[name] - anchors[name]).pow(2)).sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total
