"""Data-set views: easiest and hardest classes, confident mistakes, and the patches a layer's
channels respond to most (the layer-by-layer pattern view)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kta_cli.errors import KtaError
from kta_cli.models.features import FeatureCapture, module_name


def class_accuracy(
    predicted: torch.Tensor, true: torch.Tensor, class_names: list[str]
) -> dict[str, float]:
    """Accuracy per class, for the classes that occur in `true`, hardest first."""
    rows = {}
    for index, name in enumerate(class_names):
        members = true == index
        if members.any():
            rows[name] = float((predicted[members] == index).float().mean())
    return dict(sorted(rows.items(), key=lambda item: (item[1], item[0])))


def confident_mistakes(probabilities: torch.Tensor, true: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the `k` wrong predictions made with the highest probability."""
    confidence, predicted = probabilities.max(dim=1)
    wrong = ((predicted != true) & (true >= 0)).nonzero().flatten()
    return wrong[confidence[wrong].argsort(descending=True)][:k]


@torch.no_grad()
def layer_maps(
    model: nn.Module,
    layer: nn.Module,
    images: torch.Tensor,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The (N, C, h, w) output of `layer` for every image (on the CPU)."""
    name = module_name(model, layer)
    captured: list[torch.Tensor] = []
    with FeatureCapture(model, [name]) as features:
        for chunk in images.split(batch_size):
            model(chunk.to(device))
            captured.append(features.pop(name).detach().cpu())
    return torch.cat(captured)


def strongest_channels(maps: torch.Tensor, count: int) -> list[int]:
    """Channels with the highest mean (over images) of their peak activation."""
    peaks = maps.flatten(2).amax(dim=2).mean(dim=0)
    return peaks.argsort(descending=True)[:count].tolist()


def top_patches(
    maps: torch.Tensor,
    pictures: torch.Tensor,
    channels: list[int],
    *,
    top: int = 8,
    patch: int | None = None,
) -> dict[int, list[torch.Tensor]]:
    """For each channel, the image patches around its `top` strongest activations (one per image).

    The patch is centred on the activation's position mapped to input pixels; its side defaults to
    twice the layer's stride, a stand-in for the receptive field (which is larger but fades).
    """
    n, c, h, w = maps.shape
    bad = [ch for ch in channels if not 0 <= ch < c]
    if bad:
        raise KtaError(
            f"patterns.channels {bad} out of range: the layer has {c} channels (0-{c - 1})"
        )
    height, width = pictures.shape[-2:]
    side = patch or max(3, min(height, 2 * round(height / h)))
    padded = F.pad(pictures, (side, side, side, side))
    result: dict[int, list[torch.Tensor]] = {}
    for channel in channels:
        flat = maps[:, channel].reshape(n, -1)
        peak, where = flat.max(dim=1)
        patches = []
        for image in peak.argsort(descending=True)[:top].tolist():
            y, x = divmod(int(where[image]), w)
            cy, cx = int((y + 0.5) * height / h), int((x + 0.5) * width / w)
            top_y, left = cy - side // 2 + side, cx - side // 2 + side
            patches.append(padded[image, :, top_y : top_y + side, left : left + side])
        result[channel] = patches
    return result
