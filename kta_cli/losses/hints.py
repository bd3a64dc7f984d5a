"""FitNets-style feature hints: taps on named layers (forward hooks) and learned adapters.

Layers are chosen by module name (`model.named_modules()`), so no model code is edited. `auto`
means the last stage timm lists in the model's `feature_info`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kta_cli.errors import KtaError, did_you_mean


def feature_layers(model: nn.Module) -> list[str]:
    """The stage outputs timm names for this model (a short list worth showing to a user)."""
    info = getattr(model, "feature_info", None) or []
    names = [entry["module"] for entry in info if isinstance(entry, dict) and "module" in entry]
    return names or [name for name, _ in model.named_children()]


def resolve_layer(model: nn.Module, name: str, *, role: str) -> str:
    """A module name that exists in `model`; `auto` is the last feature stage."""
    modules = dict(model.named_modules())
    stages = feature_layers(model)
    if name == "auto":
        return stages[-1]
    if name in modules and name:
        return name
    message = did_you_mean(name, [n for n in modules if n], what=f"{role} layer")
    message = message.split(" (options:")[0]
    raise KtaError(
        f"{message} in {type(model).__name__}; feature layers: {', '.join(stages)} "
        f"(any name from named_modules() works, e.g. {stages[0]}.0)"
    )


def as_tensor(output: Any) -> torch.Tensor:
    """The tensor a module returned (some return tuples or lists)."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise KtaError(f"layer output is {type(output).__name__}, not a tensor; pick another layer")
    return output


class FeatureTap:
    """Keeps the latest output of each named module, through forward hooks."""

    def __init__(self, model: nn.Module, names: Iterable[str]) -> None:
        modules = dict(model.named_modules())
        self.features: dict[str, torch.Tensor] = {}
        self.handles = [
            modules[name].register_forward_hook(self._keeper(name)) for name in dict.fromkeys(names)
        ]

    def _keeper(self, name: str) -> Any:
        def keep(module: nn.Module, inputs: Any, output: Any) -> None:
            self.features[name] = as_tensor(output)

        return keep

    def pop(self) -> dict[str, torch.Tensor]:
        """The features of the last forward pass; forgets them so no graph is kept alive."""
        features, self.features = self.features, {}
        return features

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


def pooled(feature: torch.Tensor) -> torch.Tensor:
    """A vector per example: mean over space (B, C, H, W) or over tokens (B, N, D)."""
    if feature.dim() == 4:
        return feature.mean(dim=(2, 3))
    if feature.dim() == 3:
        return feature.mean(dim=1)
    return feature.flatten(1)


def pooled_dim(shape: torch.Size) -> int:
    """Length of `pooled` vectors for features of this shape."""
    return shape[1] if len(shape) == 4 else shape[-1] if len(shape) == 3 else math.prod(shape[1:])


class HintAdapter(nn.Module):
    """Maps a student feature onto the teacher feature's shape (the FitNets regressor).

    Two feature maps: a 1x1 convolution for channels, then average pooling or bilinear resizing
    to the teacher's spatial size. Anything else (a ViT's tokens): pooled vectors and a linear map.
    """

    def __init__(self, student_shape: torch.Size, teacher_shape: torch.Size) -> None:
        super().__init__()
        self.spatial = len(student_shape) == 4 and len(teacher_shape) == 4
        if self.spatial:
            self.project: nn.Module = nn.Conv2d(student_shape[1], teacher_shape[1], 1, bias=False)
            self.size = tuple(teacher_shape[2:])
        else:
            self.project = nn.Linear(pooled_dim(student_shape), pooled_dim(teacher_shape))

    def forward(self, student_feature: torch.Tensor) -> torch.Tensor:
        if not self.spatial:
            return self.project(pooled(student_feature))
        mapped = self.project(student_feature)
        if tuple(mapped.shape[2:]) == self.size:
            return mapped
        if mapped.shape[2] >= self.size[0] and mapped.shape[3] >= self.size[1]:
            return F.adaptive_avg_pool2d(mapped, self.size)
        return F.interpolate(mapped, size=self.size, mode="bilinear", align_corners=False)

    def target(self, teacher_feature: torch.Tensor) -> torch.Tensor:
        """The teacher feature in the form the adapter's output is compared with."""
        return teacher_feature if self.spatial else pooled(teacher_feature)


def hint_loss(adapted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the adapted student feature and the (detached) teacher's."""
    return F.mse_loss(adapted.float(), target.detach().float())
