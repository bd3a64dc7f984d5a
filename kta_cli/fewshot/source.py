"""Which images and which network: the novel data a user asked for, the checkpoint's own (base)
data, and the feature model of a source (model | random | pixels). Shared by fewshot and embed.

`data.classes=[5,6,7,8,9]` alone means "the checkpoint's own data set, these classes": the
data.* overrides are applied to the data the checkpoint records, not to a fresh preset, so a
digits model trained on 0-4 meets 5-9 at its own size and normalisation. `data=<preset>` starts
from that preset instead (another data set or an image folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from kta_cli.data.datasets import DataBundle, build_data, spec_from_dict
from kta_cli.engine.evaluate import checkpoint_data
from kta_cli.errors import KtaError, did_you_mean
from kta_cli.fewshot.features import (
    SOURCES,
    FeatureSet,
    cache_key,
    cached,
    extract,
    make_extractor,
    random_twin,
)
from kta_cli.loading import model_from_checkpoint

SPLITS = ("test", "val", "train", "all")


def data_overrides(overrides: list[str]) -> tuple[bool, dict[str, Any]]:
    """(whether `data=<preset>` was given, {key: value} of the data.<key>=... overrides)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    preset, values = False, {}
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key == "data":
            preset = True
        elif key.startswith("data."):
            values[key.removeprefix("data.")] = override.value()
    return preset, values


def novel_and_base_values(
    checkpoint: dict[str, Any], composed: dict[str, Any], overrides: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Data values of the novel set and of the base set (the checkpoint's training data)."""
    base = checkpoint_data(checkpoint, None)
    preset, values = data_overrides(overrides)
    if preset:
        return checkpoint_data(checkpoint, composed), base
    novel = dict(base)
    for dotted, value in values.items():
        node = novel
        *parents, leaf = dotted.split(".")
        for parent in parents:  # data.augment.hflip=...
            node = node.setdefault(parent, {})
        node[leaf] = value
    return checkpoint_data(checkpoint, novel), base


@dataclass
class FeatureOptions:
    source: str = "model"  # model | random | pixels
    layer: str | None = None
    pool: str = "avg"
    batch_size: int = 256
    seed: int = 0


def feature_model(
    checkpoint: dict[str, Any], options: FeatureOptions, device: torch.device
) -> nn.Module | None:
    """The network features come from (None for pixels), in eval mode on `device`."""
    if options.source not in SOURCES:
        raise KtaError(did_you_mean(options.source, SOURCES, what="feature source"))
    if options.source == "pixels":
        return None
    model = model_from_checkpoint(checkpoint)
    if options.source == "random":
        model = random_twin(checkpoint, model, options.seed)
    return model.to(device).eval()


def split_loaders(bundle: DataBundle, split: str) -> list[Any]:
    if split not in SPLITS:
        raise KtaError(did_you_mean(split, SPLITS, what="split"))
    return [bundle.train, bundle.val, bundle.test] if split == "all" else [getattr(bundle, split)]


def split_features(
    model: nn.Module | None, values: dict[str, Any], split: str, options: FeatureOptions, *,
    cache: Any = None, limit: int | None = None,
) -> tuple[FeatureSet, bool]:  # fmt: skip
    """(features of a split, cache hit). `cache` is (folder, checkpoint path) or None."""
    bundle = build_data(spec_from_dict(values))
    extractor = make_extractor(model, layer=options.layer, pool=options.pool,
                               batch_size=options.batch_size)  # fmt: skip
    probe = next(iter(split_loaders(bundle, split)[0]), None)
    if probe is not None:  # a layer that cannot be pooled fails here, before the whole split
        extractor(probe[0][:1])
    settings = {"data": values, "split": split, "limit": limit, **vars(options)}
    if options.source != "random":
        settings.pop("seed")  # only random weights depend on the seed
    settings.pop("batch_size")
    folder, path = cache if cache else (None, None)
    key = cache_key(path, settings) if path else ""
    (features, labels), hit = cached(
        folder, key, lambda: extract(extractor, split_loaders(bundle, split), limit=limit)
    )
    return FeatureSet(features, labels, list(bundle.class_names)), hit


@dataclass
class Sample:
    """A stratified sample of a split: features, labels, the images in [0, 1], class names."""

    features: torch.Tensor
    labels: torch.Tensor
    pictures: torch.Tensor
    class_names: list[str]


def sampled_features(
    model: nn.Module | None, values: dict[str, Any], split: str, options: FeatureOptions, *,
    points: int, index: torch.Tensor | None = None,
) -> tuple[Sample, torch.Tensor]:  # fmt: skip
    """(features of a stratified sample of a split, its indices); `index` reuses a sample
    (compare=: the same images through another checkpoint)."""
    from kta_cli.fewshot.embed import stratified_sample
    from kta_cli.fewshot.features import split_batches

    bundle = build_data(spec_from_dict(values))
    batches = [b for loader in split_loaders(bundle, split) for b in split_batches(loader)]
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    if index is None:
        index = stratified_sample(labels, points, options.seed)
    elif len(labels) <= int(index.max()):
        raise KtaError("compare: the second checkpoint's data has fewer images; same data needed")
    extractor = make_extractor(model, layer=options.layer, pool=options.pool,
                               batch_size=options.batch_size)  # fmt: skip
    chosen = images[index]
    mean = torch.tensor(values["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(values["std"]).view(1, -1, 1, 1)
    pictures = (chosen * std + mean).clamp(0, 1)
    sample = Sample(extractor(chosen), labels[index], pictures, list(bundle.class_names))
    return sample, index
