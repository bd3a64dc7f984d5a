"""A trained teacher checkpoint shared by the distill tests (made once, ~3 s)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kta_cli.cli import main
from tests.conftest import TINY

# The student side of a tiny run: timm's test models at the teacher's 16x16, few images, 1 epoch.
DISTILL_TINY = [
    "student=test_resnet",
    "data.train_per_class=8",
    "data.val_fraction=0.05",
    "data.test_fraction=0.1",
    "trainer.epochs=1",
    "trainer.progress=false",
    "logger=none",
    "distill.cache_dir=null",
]


@pytest.fixture(scope="session")
def teacher_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("teacher")
    before = Path.cwd()
    os.chdir(folder)
    try:
        main(["train", *TINY, "data.train_per_class=8"])
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    finally:
        os.chdir(before)
    return (folder / "outputs" / "train" / "latest" / "best.ckpt").resolve()
