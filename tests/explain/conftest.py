"""Trained tiny checkpoints shared by the explain tests (trained once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kta_cli.cli import main
from tests.conftest import TINY


def train_once(folder: Path, *overrides: str) -> Path:
    """Run `kta train` in `folder` and return its best.ckpt."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        main(["train", *TINY, *overrides])
    finally:
        os.chdir(previous)
    return (folder / "outputs" / "train" / "latest" / "best.ckpt").resolve()


@pytest.fixture(scope="session")
def cnn_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """timm test_resnet on 16x16 digits, one epoch."""
    return train_once(tmp_path_factory.mktemp("cnn"), "data.train_per_class=20")


@pytest.fixture(scope="session")
def vit_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """timm test_vit on 32x32 digits (a 2x2 token grid), one epoch."""
    return train_once(
        tmp_path_factory.mktemp("vit"),
        "model=test_vit",
        "data.img_size=32",
        "data.train_per_class=10",
    )


# Small settings so every method runs in a fraction of a second on 2 CPU cores.
FAST = [
    "logger=none",
    "integrated_gradients.steps=4",
    "smoothgrad.samples=2",
    "shap.samples=2",
    "kernel_shap.samples=8",
    "kernel_shap.cells=4",
    "faithfulness.steps=4",
    "faithfulness.random_repeats=1",
    "patterns.images=64",
]

# Only the heatmaps: no faithfulness curves, data-set views or pattern grids.
BARE = [
    *FAST,
    "faithfulness.enabled=false",
    "views.enabled=false",
    "patterns.enabled=false",
]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny 16-32 px models gain nothing from a second thread; on a shared 2-core machine the
    spinning second thread only costs time. Restored after each test."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
