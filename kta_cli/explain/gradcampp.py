"""Grad-CAM++ (Chattopadhay et al., 2018).

Written by hand because captum (0.9) has Grad-CAM but not Grad-CAM++.
"""

from __future__ import annotations

import torch
from torch import nn

from kta_cli.models.features import FeatureCapture, module_name


def layer_activations_and_gradients(
    model: nn.Module, layer: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's output A (B, C, h, w) and d score[target] / dA for each image."""
    with FeatureCapture(model, [module_name(model, layer)]) as features, torch.enable_grad():
        logits = model(inputs.detach().requires_grad_(True))
        (activations,) = features.values()
        score = logits.gather(1, targets[:, None]).sum()
        (gradients,) = torch.autograd.grad(score, activations)
    return activations.detach(), gradients.detach()


def grad_cam_plus_plus(
    model: nn.Module, layer: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """(B, 1, h, w) map: channels weighted by positive gradients with pixel-wise alphas.

    With the score taken through exp(), the paper's second and third derivatives reduce to powers
    of the first: alpha = g^2 / (2 g^2 + sum_ij(A) g^3).
    """
    activations, gradients = layer_activations_and_gradients(model, layer, inputs, targets)
    g2, g3 = gradients.pow(2), gradients.pow(3)
    denominator = 2 * g2 + activations.sum(dim=(2, 3), keepdim=True) * g3
    alphas = g2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    weights = (alphas * torch.relu(gradients)).sum(dim=(2, 3), keepdim=True)
    return torch.relu((weights * activations).sum(dim=1, keepdim=True))
