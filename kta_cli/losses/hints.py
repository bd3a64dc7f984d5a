"""FitNets-style feature hints: learned adapters from student features to the teacher's.

The features come from kta_cli/models/features.py (FeatureCapture on layers named as in
`model.named_modules()`, resolved by resolve_layer; `auto` is the last stage timm lists).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kta_cli.models.features import pool_feature


def pooled_dim(shape: torch.Size) -> int:
    """Length of `pool_feature` (avg) vectors for features of this shape."""
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
            return self.project(pool_feature(student_feature))
        mapped = self.project(student_feature)
        if tuple(mapped.shape[2:]) == self.size:
            return mapped
        if mapped.shape[2] >= self.size[0] and mapped.shape[3] >= self.size[1]:
            return F.adaptive_avg_pool2d(mapped, self.size)
        return F.interpolate(mapped, size=self.size, mode="bilinear", align_corners=False)

    def target(self, teacher_feature: torch.Tensor) -> torch.Tensor:
        """The teacher feature in the form the adapter's output is compared with."""
        return teacher_feature if self.spatial else pool_feature(teacher_feature)


def hint_loss(adapted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the adapted student feature and the (detached) teacher's."""
    return F.mse_loss(adapted.float(), target.detach().float())
