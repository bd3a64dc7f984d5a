"""The teacher cache: example ids line up with the loader's batches; one row per example."""

import torch
from torch import nn

from kta_cli.data.loaders import InMemoryLoader
from kta_cli.engine.teacher_cache import (
    compute_outputs,
    load_or_compute,
    why_not_cacheable,
    with_example_ids,
)

IMAGES = torch.arange(10 * 3 * 2 * 2, dtype=torch.float32).reshape(10, 3, 2, 2)
LABELS = torch.arange(10) % 3


def loader(**kwargs) -> InMemoryLoader:
    return InMemoryLoader(IMAGES, LABELS, batch_size=4, shuffle=True, seed=3, **kwargs)


def test_ids_follow_the_same_shuffled_order_as_the_plain_loader():
    plain, with_ids = loader(), with_example_ids(loader())
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        with_ids.set_epoch(epoch)
        for (images, labels), (images_i, labels_i, ids) in zip(plain, with_ids, strict=True):
            assert torch.equal(images, images_i) and torch.equal(labels, labels_i)
            assert torch.equal(IMAGES[ids], images)


def test_resuming_mid_epoch_skips_the_same_batches():
    plain, with_ids = loader(), with_example_ids(loader())
    plain.set_epoch(1, start_batch=1)
    with_ids.set_epoch(1, start_batch=1)
    assert [b[1].tolist() for b in plain] == [b[1].tolist() for b in with_ids]


def test_cache_rows_are_the_teacher_outputs_of_each_example():
    teacher = nn.Flatten()  # output = the image itself, so each row is easy to check

    def outputs(images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": teacher(images)}

    cache = compute_outputs(outputs, loader(), torch.device("cpu"))
    assert torch.equal(cache["logits"], IMAGES.flatten(1))


def test_saved_cache_is_loaded_instead_of_recomputed(tmp_path):
    calls = []

    def outputs(images: torch.Tensor) -> dict[str, torch.Tensor]:
        calls.append(len(images))
        return {"logits": images.flatten(1)}

    device = torch.device("cpu")
    first, how = load_or_compute(outputs, loader(), device=device, folder=tmp_path, key="k")
    assert how.startswith("computed, saved") and sum(calls) == 10
    second, how = load_or_compute(outputs, loader(), device=device, folder=tmp_path, key="k")
    assert how.startswith("loaded") and sum(calls) == 10
    assert torch.equal(first["logits"], second["logits"])


def test_augmentation_rules_the_cache_out():
    assert why_not_cacheable(loader(), {}) is None
    assert why_not_cacheable(loader(), {"hflip": False, "noise_std": 0.0}) is None
    assert "changes the images" in why_not_cacheable(loader(), {"hflip": True})
    assert why_not_cacheable(loader(transform=lambda x: x), {}) is not None
