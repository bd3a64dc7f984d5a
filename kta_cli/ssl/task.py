"""SimCLR as a task of the one training loop (engine/tasks.py): two views, a projection head on
the pooled backbone features, NT-Xent. Labels are never read in training.

The projection head belongs to the task, not the model: last.ckpt keeps it (the loop saves a
task's own state, for exact resume), while the checkpoint's model is the plain timm backbone
every kta command loads. The model's own classifier is unused here, so it is frozen (it would
otherwise have no gradient, which DistributedDataParallel refuses).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from kta_cli.losses.contrastive import contrastive_accuracy, nt_xent_logits
from kta_cli.models.features import pre_logits
from kta_cli.ssl.knn import knn_predict
from kta_cli.ssl.views import ViewSettings, two_views


def projection_head(features: int, hidden: int, out: int) -> nn.Sequential:
    """SimCLR's MLP g(h): Linear, BatchNorm, ReLU, Linear (the BatchNorm as in SimCLR v2)."""
    return nn.Sequential(
        nn.Linear(features, hidden, bias=False),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, out),
    )


def feature_width(model: nn.Module, img_size: int) -> int:
    """The width of the pooled features before the head (one tiny forward, weights unchanged)."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        width = pre_logits(model, torch.zeros(1, 3, img_size, img_size, device=device)).shape[1]
    for module, mode in modes.items():
        module.training = mode
    return int(width)


class SimCLRTask(nn.Module):
    """Training: `loss` (NT-Xent), `contrast_acc`, `positive_cos`. Evaluation, given a batch with
    the feature bank (ssl/knn.py KnnEvalLoader): `knn_acc`."""

    def __init__(
        self,
        model: nn.Module,
        *,
        img_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        num_classes: int,
        temperature: float = 0.5,
        proj_hidden: int | None = None,
        proj_dim: int = 128,
        views: ViewSettings | None = None,
        knn_k: int = 200,
        knn_temperature: float = 0.07,
    ) -> None:
        super().__init__()
        self.model = model
        width = feature_width(model, img_size)
        self.projector = projection_head(width, proj_hidden or width, proj_dim)
        classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
        if isinstance(classifier, nn.Module):
            classifier.requires_grad_(False)
        self.mean, self.std = list(mean), list(std)
        self.temperature, self.num_classes = temperature, num_classes
        self.views = views or ViewSettings()
        self.knn_k, self.knn_temperature = knn_k, knn_temperature

    def forward(self, batch: Sequence[torch.Tensor]) -> dict[str, Any]:
        if not self.training:
            return self.knn_scores(*batch)
        images = batch[0]  # the labels (batch[1]) are not used
        view1, view2 = two_views(images, self.views, mean=self.mean, std=self.std)
        both = torch.cat([view1, view2])
        if images.is_contiguous(memory_format=torch.channels_last):
            both = both.contiguous(memory_format=torch.channels_last)
        embeddings = self.projector(pre_logits(self.model, both))
        z1, z2 = embeddings.chunk(2)
        distributed = dist.is_available() and dist.is_initialized()
        logits, positive = nt_xent_logits(z1, z2, self.temperature, distributed=distributed)
        loss = F.cross_entropy(logits, positive)
        cosine = F.cosine_similarity(z1.detach().float(), z2.detach().float()).mean()
        return {
            "loss": loss,
            "contrast_acc": contrastive_accuracy(logits.detach(), positive),
            "positive_cos": cosine,
        }

    def knn_scores(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        bank: torch.Tensor | None = None,
        bank_labels: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        if bank is None or bank_labels is None:
            raise ValueError("SimCLRTask scores batches that carry a feature bank (KnnEvalLoader)")
        features = F.normalize(pre_logits(self.model, images).float(), dim=1)
        predicted = knn_predict(
            features,
            bank,
            bank_labels,
            num_classes=self.num_classes,
            k=self.knn_k,
            temperature=self.knn_temperature,
        )
        return {"knn_acc": (predicted == labels).float().mean()}
