"""Test-time adaptation of a trained classifier to unlabelled target images.

AdaBN (Li et al. 2016, "Revisiting Batch Normalization For Practical Domain Adaptation"):
re-estimate every BatchNorm layer's running mean and variance on target images; no weight moves.
TENT (Wang et al. 2021, "Tent: Fully Test-Time Adaptation by Entropy Minimization"): BatchNorm
normalises with the target batch's statistics and only its affine weight and bias are trained,
to minimise the entropy of the predictions (as the authors' configure_model / collect_params).
The saved TENT model then carries target running statistics (an AdaBN pass with the adapted
affine parameters), so in eval mode it predicts as it was adapted.

Written here rather than taken from a package: both are a few lines on torch's BatchNorm, and
the TTA packages pin their own model zoos.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from kta_cli.errors import KtaError

ImageBatches = Callable[[], Iterable[torch.Tensor]]  # one pass over the unlabelled images


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def require_batchnorm(model: nn.Module, method: str, where: str) -> None:
    if not batchnorm_layers(model):
        raise KtaError(
            f"{where} ({type(model).__name__}) has no BatchNorm layers, so method={method} does "
            "not apply: adabn and tent adapt BatchNorm; kta train task=dann adapts any model"
        )


@torch.no_grad()
def adabn(model: nn.Module, batches: ImageBatches, device: torch.device) -> nn.Module:
    """Replace every BatchNorm layer's running statistics by those of the target images: the
    cumulative average over the batches (momentum=None), everything else in eval mode."""
    layers = batchnorm_layers(model)
    momenta = [layer.momentum for layer in layers]
    model.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
        layer.train()
    seen = 0
    for images in batches():
        model(images.to(device))
        seen += len(images)
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum
    model.eval()
    if seen == 0:
        raise KtaError("no target images to adapt on")
    return model


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy of the softmax predictions (nats)."""
    return -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()


def configure_tent(model: nn.Module) -> list[nn.Parameter]:
    """Everything frozen and in eval mode but BatchNorm: batch statistics, affine trainable."""
    model.eval()
    model.requires_grad_(False)
    params: list[nn.Parameter] = []
    for layer in batchnorm_layers(model):
        layer.train()  # normalise with the current target batch's statistics
        for param in (layer.weight, layer.bias):
            if param is not None:
                param.requires_grad_(True)
                params.append(param)
    if not params:
        raise KtaError("tent needs BatchNorm layers with affine parameters; use method=adabn")
    return params


def tent(
    model: nn.Module,
    batches: ImageBatches,
    device: torch.device,
    *,
    epochs: int = 1,
    lr: float = 1e-3,
    optimizer: str = "adam",
    momentum: float = 0.9,
) -> tuple[nn.Module, list[torch.Tensor]]:
    """Entropy minimisation, one step per batch, for `epochs` passes; returns the model (target
    running statistics, eval mode) and the predictions made online during the first pass,
    before each batch's step, as TENT scores them."""
    params = configure_tent(model)
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    online: list[torch.Tensor] = []
    for epoch in range(epochs):
        for images in batches():
            logits = model(images.to(device))
            if epoch == 0:
                online.append(logits.argmax(1).detach().cpu())
            loss = entropy(logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.requires_grad_(True)
    adabn(model, batches, device)  # eval-mode statistics that match the adapted model
    return model, online
