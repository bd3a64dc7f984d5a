"""Embedded and generated data: splits, subsets, low-data caps, determinism, augmentation."""

import torch

from kta_cli.data.datasets import DataSpec, build_data, stratified_split
from kta_cli.data.loaders import InMemoryLoader, epoch_order
from kta_cli.data.shapes import SHAPES, generate_shapes


def all_labels(loader) -> torch.Tensor:
    loader.set_epoch(0)
    return torch.cat([labels for _, labels in loader])


def test_digits_default_split_is_stratified_and_covers_every_image():
    data = build_data(DataSpec(name="digits", img_size=16))
    sizes = [len(all_labels(x)) for x in (data.train, data.val, data.test)]
    assert sum(sizes) == 1797
    assert abs(sizes[2] - 0.2 * 1797) < 10 and abs(sizes[1] - 0.1 * 1797) < 10
    assert data.class_names == [str(i) for i in range(10)]
    images, _ = next(iter(data.train))
    assert images.shape[1:] == (3, 16, 16) and images.dtype == torch.float32


def test_class_subset_is_relabelled_and_low_data_cap_applies():
    data = build_data(
        DataSpec(name="digits", img_size=8, classes=[5, 6, 7, 8, 9], train_per_class=3)
    )
    assert data.class_names == ["5", "6", "7", "8", "9"]
    train = all_labels(data.train)
    assert torch.equal(train.bincount(), torch.full((5,), 3))
    assert set(all_labels(data.test).tolist()) == {0, 1, 2, 3, 4}


def test_splits_are_seeded():
    labels = torch.arange(100) % 4
    a = stratified_split(labels, val_fraction=0.1, test_fraction=0.2, seed=1)
    b = stratified_split(labels, val_fraction=0.1, test_fraction=0.2, seed=1)
    c = stratified_split(labels, val_fraction=0.1, test_fraction=0.2, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert len(set(torch.cat(a).tolist())) == 100


def test_shapes_are_deterministic_by_seed_and_style_changes_pixels_not_labels():
    a, labels_a, _ = generate_shapes(60, size=24, style="flat", seed=3)
    b, labels_b, _ = generate_shapes(60, size=24, style="flat", seed=3)
    c, labels_c, _ = generate_shapes(60, size=24, style="texture+clutter+noise", seed=3)
    assert torch.equal(a, b) and torch.equal(labels_a, labels_b)
    assert torch.equal(labels_a, labels_c) and not torch.allclose(a, c)
    assert set(labels_a.tolist()) == set(range(len(SHAPES)))
    assert a.shape == (60, 3, 24, 24) and 0.0 <= a.min() and a.max() <= 1.0


def test_shapes_domain_shift_changes_only_val_and_test():
    plain = build_data(DataSpec(name="shapes", img_size=16, per_class=20))
    shifted = build_data(
        DataSpec(name="shapes", img_size=16, per_class=20, test_style="colorshift")
    )
    assert torch.equal(next(iter(plain.train))[0], next(iter(shifted.train))[0])
    assert not torch.equal(next(iter(plain.test))[0], next(iter(shifted.test))[0])


def test_loader_order_depends_on_epoch_and_resumes_at_a_batch():
    images, labels = torch.arange(20.0).view(20, 1, 1, 1), torch.arange(20)
    loader = InMemoryLoader(images, labels, batch_size=6, shuffle=True, seed=0)
    loader.set_epoch(0)
    epoch0 = [y for _, y in loader]
    loader.set_epoch(1)
    epoch1 = torch.cat([y for _, y in loader])
    assert not torch.equal(torch.cat(epoch0), epoch1)
    loader.set_epoch(0, start_batch=2)
    assert [y.tolist() for _, y in loader] == [y.tolist() for y in epoch0[2:]]
    assert len(loader) == 4


def test_ranks_see_disjoint_shards_of_equal_length():
    shards = [epoch_order(10, seed=0, epoch=0, shuffle=True, rank=r, world_size=2) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 5
    assert set(shards[0].tolist()) | set(shards[1].tolist()) == set(range(10))


def test_noise_augmentation_changes_training_images_only():
    clean = build_data(DataSpec(name="digits", img_size=8))
    noisy = build_data(DataSpec(name="digits", img_size=8, augment={"noise_std": 0.5}))
    assert not torch.equal(next(iter(clean.train))[0], next(iter(noisy.train))[0])
    assert torch.equal(next(iter(clean.val))[0], next(iter(noisy.val))[0])
