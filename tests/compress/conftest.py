"""Fixtures for the compression tests. prune_* fixtures: kta prune; quant_* fixtures: kta quantize."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kta_cli.cli import main
from tests.conftest import TINY


@pytest.fixture(scope="session")
def prune_trained_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test_resnet trained for one epoch on 16x16 digits (made once per test session)."""
    folder = tmp_path_factory.mktemp("prune_train")
    previous = os.getcwd()
    os.chdir(folder)
    try:
        main(["train", *TINY])
    finally:
        os.chdir(previous)
    return (folder / "outputs" / "train" / "latest" / "best.ckpt").resolve()
