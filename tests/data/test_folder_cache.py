"""Image folders decoded once into a tensor store (data.cache): same batches, reused, rebuilt."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from kta_cli.data import folder_cache
from kta_cli.data.datasets import DataSpec, build_data
from kta_cli.data.loaders import InMemoryLoader, SamplerLoader
from kta_cli.engine.checkpoint import load_checkpoint
from kta_cli.errors import KtaError
from tests.conftest import TINY


def make_folder(root: Path, classes=("ant", "bee", "cow"), per_class: int = 8, size=8) -> Path:
    """Noise PNGs (so any pixel mix-up shows), `size` wide, some a little taller."""
    generator = torch.Generator().manual_seed(0)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            height = size + (i % 3 if size != 8 else 0)
            pixels = torch.randint(0, 256, (height, size, 3), generator=generator)
            Image.fromarray(pixels.to(torch.uint8).numpy()).save(root / name / f"{i}.png")
    return root


def spec(root: Path, **overrides) -> DataSpec:
    values = {
        "name": "imagefolder",
        "root": str(root),
        "img_size": 8,
        "batch_size": 5,
        "eval_batch_size": 4,
        "val_fraction": 0.25,
        "test_fraction": 0.25,
        "num_workers": 0,
        "mean": [0.5, 0.4, 0.3],
        "std": [0.2, 0.25, 0.3],
        **overrides,
    }
    return DataSpec(**values)


def batches(data) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two training epochs, then the validation and test batches."""
    seen = []
    for epoch in (0, 1):
        data.train.set_epoch(epoch)
        seen += list(data.train)
    return seen + list(data.val) + list(data.test)


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"n": 0}
    original = folder_cache.load_image

    def counted(path: str) -> Image.Image:
        calls["n"] += 1
        return original(path)

    monkeypatch.setattr(folder_cache, "load_image", counted)
    return calls


def stores(root: Path) -> list[Path]:
    return sorted((root.parent / ".kta_cache").glob("*.safetensors"))


@pytest.mark.parametrize("layout", ["flat", "split"])
def test_store_decodes_once_and_gives_the_per_sample_batches(tmp_path, monkeypatch, layout):
    if layout == "flat":
        root = make_folder(tmp_path / "insects")
    else:  # train/val/test folders; data.classes selects and relabels two of three classes
        root = tmp_path / "insects"
        for part, count in (("train", 6), ("val", 2), ("test", 2)):
            make_folder(root / part, per_class=count)
    options = {"classes": [2, 0]} if layout == "split" else {}
    per_sample = build_data(spec(root, cache="off", **options))
    assert isinstance(per_sample.train, SamplerLoader) and not stores(root)

    decodes = count_decodes(monkeypatch)
    cached = build_data(spec(root, **options))
    assert isinstance(cached.train, InMemoryLoader)
    assert decodes["n"] == (24 if layout == "flat" else 30)  # every file once, not per epoch
    assert cached.class_names == per_sample.class_names
    expected, got = batches(per_sample), batches(cached)
    assert len(got) == len(expected)
    for (want_x, want_y), (got_x, got_y) in zip(expected, got, strict=True):
        assert torch.equal(got_y, want_y)
        assert torch.equal(got_x, want_x)  # the PNGs are 8x8: nothing to resize, bit-equal

    def refuse(path: str) -> Image.Image:
        raise AssertionError(f"{path} decoded again")

    monkeypatch.setattr(folder_cache, "load_image", refuse)
    again = build_data(spec(root, **options))  # a later run: the saved store, no decoding
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches(again), got, strict=True))
    assert len(stores(root)) == 1


def test_resized_store_is_within_half_a_grey_level_of_per_sample_decoding(tmp_path):
    root = make_folder(tmp_path / "big", per_class=4, size=13)  # 13 x 13..15 px down to 8
    per_sample = torch.cat([x for x, _ in build_data(spec(root, cache="off")).test])
    cached = torch.cat([x for x, _ in build_data(spec(root)).test])
    # stored as uint8 after the same antialiased resize: at most 0.5/255 before normalising
    assert (cached - per_sample).abs().max() <= 0.5 / 255 / 0.2 + 1e-5
    assert (cached - per_sample).abs().max() > 0  # the rounding is real, not skipped


def test_a_changed_folder_gets_a_new_store_and_the_old_one_goes(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "insects", per_class=4)
    build_data(spec(root))
    first = stores(root)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(root / "bee" / "new.png")
    decodes = count_decodes(monkeypatch)
    data = build_data(spec(root))
    assert decodes["n"] == 13  # the new key: decoded again, with the added file
    assert (
        sum(len(y) for _, y in data.train)
        + sum(len(y) for _, y in data.val)
        + sum(len(y) for _, y in data.test)
        == 13
    )
    assert len(stores(root)) == 1 and stores(root) != first
    build_data(spec(root, img_size=4))  # another size is another store, kept beside
    assert len(stores(root)) == 2


@pytest.mark.parametrize("damage", ["garbage", "flipped byte"])
def test_a_damaged_store_is_rebuilt_with_one_warning(tmp_path, monkeypatch, caplog, damage):
    root = make_folder(tmp_path / "insects", per_class=4)
    reference = torch.cat([x for x, _ in build_data(spec(root)).test])
    (path,) = stores(root)
    raw = bytearray(path.read_bytes())
    if damage == "garbage":
        raw = raw[: len(raw) // 2]  # a half-written copy
    else:
        raw[-100] ^= 0xFF  # one pixel changed: only the checksum can tell
    path.write_bytes(bytes(raw))
    decodes = count_decodes(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="kta_cli.data.folder_cache"):
        rebuilt = torch.cat([x for x, _ in build_data(spec(root)).test])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        len(warnings) == 1
        and str(path) in warnings[0]
        and "decoding the folder again" in (warnings[0])
    )
    assert decodes["n"] == 12 and torch.equal(rebuilt, reference)
    folder_cache.read_store(path, path.stem.rsplit("-", 1)[1])  # whole again: reads cleanly


def test_over_the_limit_auto_decodes_per_sample_and_ram_refuses_in_one_line(tmp_path):
    root = make_folder(tmp_path / "insects", per_class=4, size=4)
    # 12 images at 256 x 256 as float32: 9 MB, over a 1 MB limit; nothing is decoded to know
    data = build_data(spec(root, img_size=256, cache_limit_mb=1))
    assert isinstance(data.train, SamplerLoader) and not stores(root)
    with pytest.raises(KtaError) as refused:
        build_data(spec(root, img_size=256, cache_limit_mb=1, cache="ram"))
    message = str(refused.value)
    assert "\n" not in message and "data.cache=ram" in message
    assert "9 MB in memory, over data.cache_limit_mb=1" in message
    with pytest.raises(KtaError, match="color_jitter needs the image files"):
        build_data(spec(root, cache="ram", augment={"color_jitter": 0.2}))


def test_the_store_goes_to_data_cache_dir_when_given(tmp_path):
    root = make_folder(tmp_path / "insects", per_class=4)
    build_data(spec(root, cache_dir=str(tmp_path / "elsewhere")))
    assert not stores(root) and len(list((tmp_path / "elsewhere").glob("insects-8px-*"))) == 1


def test_resume_on_a_cached_folder_is_bit_exact(kta, tmp_path):
    root = make_folder(tmp_path / "insects", classes=("ant", "bee"), per_class=20, size=16)
    run = [
        *TINY,
        "data=imagefolder",
        f"data.root={root}",
        "data.num_workers=0",
        "data.batch_size=8",
        "trainer.epochs=2",  # 28 training images: 4 steps an epoch
        "model.drop_rate=0.2",  # dropout, noise and crops draw random numbers every step
        "data.augment.noise_std=0.1",
        "data.augment.crop_padding=2",
    ]
    reference = kta("train", *run)  # decodes the folder; the two runs below read the store
    assert reference.code == 0, reference.err
    assert len(stores(root)) == 1
    stopped = kta("train", *run, "trainer.max_steps=6")  # inside the second epoch
    assert stopped.code == 0, stopped.err
    resumed = kta("train", *run, "trainer.resume=auto")
    assert resumed.code == 0, resumed.err
    runs = sorted(p for p in (tmp_path / "outputs" / "train").iterdir() if p.name != "latest")
    want = load_checkpoint(runs[0] / "last.ckpt")["model"]
    got = load_checkpoint(resumed.run_dir() / "last.ckpt")["model"]
    different = [key for key in want if not torch.equal(want[key], got[key])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
