"""Data from disk: image folders (split or not), torchvision sets offline, FakeData."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from kta_cli.data.datasets import DataSpec, build_data
from kta_cli.errors import KtaError
from tests.conftest import TINY


def make_folder(root: Path, classes=("cat", "dog"), per_class: int = 10, size: int = 12) -> Path:
    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            colour = (200 * index, 10 * i, 100)
            Image.new("RGB", (size, size + i % 3), colour).save(root / name / f"{i}.png")
    return root


def test_imagefolder_without_split_gets_a_seeded_one(tmp_path: Path):
    make_folder(tmp_path / "pets")
    spec = DataSpec(
        name="imagefolder",
        root=str(tmp_path / "pets"),
        img_size=8,
        batch_size=4,
        val_fraction=0.2,
        test_fraction=0.2,
    )
    data = build_data(spec)
    assert data.class_names == ["cat", "dog"]
    counts = [sum(len(y) for _, y in loader) for loader in (data.train, data.val, data.test)]
    assert counts == [12, 4, 4]
    images, labels = next(iter(data.train))
    assert images.shape == (4, 3, 8, 8) and labels.dtype == torch.int64


def test_imagefolder_with_train_and_val_folders_uses_them(tmp_path: Path):
    make_folder(tmp_path / "set" / "train", per_class=6)
    make_folder(tmp_path / "set" / "val", per_class=2)
    data = build_data(DataSpec(name="imagefolder", root=str(tmp_path / "set"), img_size=8))
    assert sum(len(y) for _, y in data.train) == 12
    assert sum(len(y) for _, y in data.val) == 4 and sum(len(y) for _, y in data.test) == 4


def test_folder_mistakes_are_kta_errors(tmp_path: Path):
    with pytest.raises(KtaError, match="not found"):
        build_data(DataSpec(name="imagefolder", root=str(tmp_path / "nowhere")))
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(KtaError, match="empty"):
        build_data(DataSpec(name="imagefolder", root=str(tmp_path / "empty")))


@pytest.mark.parametrize("cache", ["auto", "off"])  # found while decoding once / in an epoch
def test_unreadable_image_fails_training_with_one_line(kta, tmp_path: Path, cache: str):
    root = make_folder(tmp_path / "broken", per_class=8)
    (root / "cat" / "3.png").write_bytes(b"not a png at all")
    result = kta(
        "train",
        *TINY,
        "data=imagefolder",
        f"data.root={root}",
        "data.num_workers=0",
        "data.img_size=8",
        f"data.cache={cache}",
    )
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1 and "unreadable image" in result.err


def test_torchvision_set_offline_says_how_to_get_it(tmp_path: Path):
    with pytest.raises(KtaError, match="data.download=true"):
        build_data(DataSpec(name="cifar10", root=str(tmp_path), download=False))


def test_fake_data_yields_batches_of_the_asked_size():
    data = build_data(DataSpec(name="fake", img_size=16, size=20, num_classes=3, batch_size=5))
    images, labels = next(iter(data.train))
    assert images.shape == (5, 3, 16, 16) and int(labels.max()) < 3
    assert len(data.train) == 4


def test_unknown_data_set_name_suggests_one():
    with pytest.raises(KtaError, match="did you mean 'digits'"):
        build_data(DataSpec(name="digit"))


def test_a_folder_with_one_class_is_refused_in_one_line(kta, tmp_path: Path):
    root = make_folder(tmp_path / "only_cats", classes=("cat",))
    with pytest.raises(KtaError, match="has 1 class \\(cat\\); classification needs two"):
        build_data(DataSpec(name="imagefolder", root=str(root), img_size=8))
    result = kta("train", *TINY, "data=imagefolder", f"data.root={root}", "data.num_workers=0")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        f"kta train: error: data imagefolder in {root} has 1 class (cat); "
        "classification needs two classes or more"
    ]


def test_folder_images_go_through_the_one_preprocess_function(tmp_path: Path):
    """The eval transform of image files is preprocess() on the [0, 1] pixels, as explain's
    image input and the in-memory sets use it."""
    from torchvision.transforms.functional import pil_to_tensor

    from kta_cli.data.transforms import build_image_transform, preprocess

    image = Image.new("RGB", (12, 9), (200, 10, 100))
    mean, std = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    made = build_image_transform(None, img_size=8, mean=mean, std=std)(image)
    pixels = pil_to_tensor(image).float() / 255
    assert torch.allclose(made, preprocess(pixels, img_size=8, mean=mean, std=std))
    # a flat colour stays flat: red (200/255 - 0.5) / 0.25 everywhere
    assert torch.allclose(made[0], torch.full((8, 8), (200 / 255 - 0.5) / 0.25), atol=1e-5)


def test_unknown_augment_option_suggests_one():
    with pytest.raises(KtaError, match="did you mean 'hflip'"):
        DataSpec(augment={"hflipp": True})
