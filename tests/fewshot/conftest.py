"""A tiny checkpoint trained on digits 0-4 (the base classes), once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kta_cli.cli import main
from tests.conftest import TINY


@pytest.fixture(scope="session")
def base_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """timm test_resnet on 16x16 digits 0-4, a few steps: 5-9 stay novel."""
    folder = tmp_path_factory.mktemp("fewshot_base")
    previous = Path.cwd()
    os.chdir(folder)
    try:
        main(["train", *TINY, "data.classes=[0,1,2,3,4]", "data.train_per_class=30"])
    finally:
        os.chdir(previous)
    return (folder / "outputs" / "train" / "latest" / "best.ckpt").resolve()
