"""Frozen features of a checkpoint, extracted once per run (and cached on disk between runs).

Three sources share one interface, so every baseline runs through the same episodes:
    model   the checkpoint's own network (pooled features before the head, or `layer` pooled)
    random  the same architecture with fresh random weights (what training bought)
    pixels  the preprocessed image itself, flattened (what a network must beat at all)
Pooling `grid2` / `grid4` keeps a small spatial layout (adaptive average pooling to 2x2 / 4x4),
which global pooling throws away. Avg/max pooling and the head's own features go through
models/features.py's pooled_features; the grid keeps (C, H, W) so it needs the capture itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kta_cli.data.loaders import InMemoryLoader
from kta_cli.errors import KtaError, did_you_mean
from kta_cli.models.features import FeatureCapture, pooled_features, resolve_layer

POOLS = ("avg", "max", "grid2", "grid4")
SOURCES = ("model", "random", "pixels")
Extractor = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class FeatureSet:
    """(N, D) features with their labels (0..C-1) and the names of those classes."""

    features: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]


def grid_pool(feature: torch.Tensor, pool: str) -> torch.Tensor:
    """(B, C*g*g) from a (B, C, H, W) map: average over each cell of a g x g grid."""
    if feature.dim() != 4:
        raise KtaError(
            f"pool={pool} keeps a spatial grid and needs a (B, C, H, W) layer output, got "
            f"shape {tuple(feature.shape)}; use pool=avg or pool=max for this layer"
        )
    cells = int(pool.removeprefix("grid"))
    return nn.functional.adaptive_avg_pool2d(feature, cells).flatten(1)


def random_twin(checkpoint: dict[str, Any], model: nn.Module, seed: int) -> nn.Module:
    """The checkpoint's architecture with random weights: timm's own init for a plain model,
    each layer's reset_parameters() for a pruned one (its shapes are not timm's)."""
    if checkpoint.get("model_kind") == "quantized":
        raise KtaError("features=random needs a float checkpoint, not a quantized program")
    torch.manual_seed(seed)
    if checkpoint.get("model_kind", "timm") == "timm":
        from kta_cli.models.factory import create_model

        args = checkpoint["model_args"]
        return create_model(
            args["name"], num_classes=args["num_classes"], img_size=args.get("img_size")
        )
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model


def make_extractor(
    model: nn.Module | None, *, layer: str | None, pool: str, batch_size: int
) -> Extractor:
    """images -> (B, D) features. `model=None` is the pixel baseline. layer=None with pool=avg
    is timm's pre-logits vector; layer=None with another pool takes the last feature stage."""
    if pool not in POOLS:
        raise KtaError(did_you_mean(pool, POOLS, what="pooling"))
    if model is None:
        return lambda images: images.flatten(1).float()
    model.eval()
    if layer is None and pool == "avg":
        return lambda images: pooled_features(model, images, batch_size=batch_size)
    name = resolve_layer(model, layer or "auto")
    if not pool.startswith("grid"):
        return lambda images: pooled_features(
            model, images, layer=name, pool=pool, batch_size=batch_size
        )
    device = next(iter(model.parameters()), torch.empty(0)).device

    @torch.no_grad()
    def grid_features(images: torch.Tensor) -> torch.Tensor:
        vectors = []
        for chunk in images.split(batch_size):
            with FeatureCapture(model, [name]) as captured:
                model(chunk.to(device))
            vectors.append(grid_pool(captured[name], pool).float().cpu())
        return torch.cat(vectors)

    return grid_features


def split_batches(loader: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) of a split in its stored order, never augmented for in-memory sets."""
    if isinstance(loader, InMemoryLoader):
        for start in range(0, len(loader.images), loader.batch_size):
            stop = start + loader.batch_size
            yield loader.images[start:stop], loader.labels[start:stop]
        return
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(0, 0)
    yield from loader


def extract(
    extractor: Extractor, loaders: Iterable[Any], *, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels of every example of `loaders` (at most `limit` of them)."""
    features, labels, seen = [], [], 0
    for loader in loaders:
        for images, target in split_batches(loader):
            if limit is not None and seen >= limit:
                break
            features.append(extractor(images))
            labels.append(target.cpu())
            seen += len(target)
    if not features:
        raise KtaError("the split holds no images to take features from")
    features_, labels_ = torch.cat(features), torch.cat(labels)
    return (features_[:limit], labels_[:limit]) if limit else (features_, labels_)


def cache_key(checkpoint_path: Path, settings: dict[str, Any]) -> str:
    """Same file (path, size, mtime), same data and feature settings -> same features."""
    stat = checkpoint_path.stat()
    described = {"ckpt": str(checkpoint_path.resolve()), "size": stat.st_size,
                 "mtime": stat.st_mtime_ns, **settings}  # fmt: skip
    return hashlib.sha1(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def cached(
    folder: Path | None, key: str, make: Callable[[], tuple[torch.Tensor, torch.Tensor]]
) -> tuple[tuple[torch.Tensor, torch.Tensor], bool]:
    """((features, labels), hit): read from `folder`/<key>.safetensors, else make and store."""
    if folder is None:
        return make(), False
    from safetensors.torch import load_file, save_file

    path = folder / f"{key}.safetensors"
    if path.is_file():
        stored = load_file(str(path))
        return (stored["features"], stored["labels"]), True
    features, labels = make()
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")  # not torch's RNG: episodes use it
    save_file({"features": features.contiguous(), "labels": labels.contiguous()}, str(partial))
    partial.replace(path)  # atomic: a reader sees the whole file or none
    return (features, labels), False
