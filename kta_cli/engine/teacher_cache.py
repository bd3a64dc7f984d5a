"""Teacher outputs cached per training example, so epochs (and later students) skip the teacher.

Valid only when the training images do not change between epochs (no random augmentation): the
teacher is in eval mode, so its output for an example is then always the same. The cache holds one
row per example of the training split, looked up by example id; loaders are wrapped to yield ids.
On disk it is keyed by the teacher file's content, the data description and the hinted layers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from kta_cli.data.loaders import InMemoryLoader, SamplerLoader
from kta_cli.engine.checkpoint import load_file, save_checkpoint

log = logging.getLogger(__name__)
Outputs = dict[str, torch.Tensor]


class InMemoryLoaderWithIds:
    """InMemoryLoader's batches plus the example ids (the same order, resumable the same way).

    InMemoryLoader yields no ids, so its five-line batch slicing is repeated here.
    """

    def __init__(self, base: InMemoryLoader) -> None:
        self.base, self.dataset = base, base

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.base.set_epoch(epoch, start_batch)

    def __len__(self) -> int:
        return len(self.base)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        base = self.base  # the same batches, in the same order, with their sample ids
        for ids in base.batch_indices():
            yield base.images[ids], base.labels[ids], ids


class DatasetWithIds(Dataset):
    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return (*self.dataset[index], index)


def with_example_ids(loader: Any) -> Any:
    """The same loader, its batches extended with example ids."""
    if isinstance(loader, InMemoryLoader):
        return InMemoryLoaderWithIds(loader)
    sampler = loader.sampler
    return SamplerLoader(
        DatasetWithIds(loader.dataset),
        batch_size=loader.batch_size,
        shuffle=sampler.shuffle,
        seed=sampler.seed,
        drop_last=loader.drop_last,
        num_workers=loader.loader.num_workers,
        rank=sampler.rank,
        world_size=sampler.world_size,
        pad=sampler.pad,
    )


def why_not_cacheable(loader: Any, augment: dict[str, Any]) -> str | None:
    """None when the training images are the same every epoch; else the reason they are not."""
    active = {k: v for k, v in augment.items() if v}
    if active:
        return f"data.augment={active} changes the images every epoch"
    if isinstance(loader, InMemoryLoader):
        return None if loader.transform is None else "the training loader augments images"
    if isinstance(loader, SamplerLoader):
        return None
    return f"{type(loader).__name__} yields no example ids"


def every_example(loader: Any) -> tuple[int, Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """(number of examples, batches of (images, ids)) over the whole training split, in order.

    Every process reads all of it: under torchrun each rank's share changes from epoch to epoch.
    """
    if isinstance(loader, InMemoryLoader):
        size, step = len(loader.labels), loader.batch_size
        ids = torch.arange(size)
        return size, (
            (loader.images[ids[i : i + step]], ids[i : i + step]) for i in range(0, size, step)
        )
    whole = SamplerLoader(
        DatasetWithIds(loader.dataset),
        batch_size=loader.batch_size,
        shuffle=False,
        num_workers=loader.loader.num_workers,
    )
    return len(loader.dataset), ((batch[0], batch[-1]) for batch in whole)


@torch.no_grad()
def compute_outputs(
    teacher_outputs: Callable[[torch.Tensor], Outputs], loader: Any, device: torch.device
) -> Outputs:
    """Run the teacher once over the training split; one row per example id, kept on the CPU."""
    size, batches = every_example(loader)
    cache: Outputs = {}
    for images, ids in batches:
        outputs = teacher_outputs(images.to(device))
        for key, value in outputs.items():
            if key not in cache:
                cache[key] = torch.zeros((size, *value.shape[1:]), dtype=torch.float32)
            cache[key][ids] = value.float().cpu()
    return cache


def cache_key(teacher_file: Path, data: dict[str, Any], layers: list[str]) -> str:
    digest = hashlib.sha256()
    with open(teacher_file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps({"data": data, "layers": layers}, sort_keys=True).encode())
    return digest.hexdigest()[:24]


def load_or_compute(
    teacher_outputs: Callable[[torch.Tensor], Outputs],
    loader: Any,
    *,
    device: torch.device,
    folder: Path | None,
    key: str,
) -> tuple[Outputs, str]:
    """The cache for `key` from `folder` if saved there, else computed (and saved when it can)."""
    path = folder / f"{key}.pt" if folder is not None else None
    if path is not None and path.is_file():
        saved = load_file(path)
        if isinstance(saved, dict) and isinstance(saved.get("outputs"), dict):
            return saved["outputs"], f"loaded {path}"
    outputs = compute_outputs(teacher_outputs, loader, device)
    if path is None:
        return outputs, "computed"
    try:
        save_checkpoint(path, {"outputs": outputs, "key": key})
    except OSError as error:  # a read-only cache folder costs a re-run, nothing more
        log.warning("could not save the teacher cache to %s (%s)", path, error)
        return outputs, "computed"
    return outputs, f"computed, saved {path}"
