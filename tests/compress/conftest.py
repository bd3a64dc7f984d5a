"""Fixtures for compression tests: prune_* for kta prune, quant_* for kta quantize."""

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


# kta quantize on a tiny model: few calibration images, uncompiled int8 graph, no timing rounds.
QUANT_FAST = [
    "data=digits",
    "data.img_size=16",
    "data.train_per_class=5",
    "quant.calib_batches=2",
    "quant.compile=false",
    "measure.latency=false",
    "measure.batch_size=4",
    "logger=none",
]


def _run_in(folder: Path, args: list[str]) -> None:
    previous = os.getcwd()
    os.chdir(folder)
    try:
        main(args)
    finally:
        os.chdir(previous)


@pytest.fixture(scope="session")
def quant_trained_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test_resnet trained for one epoch on 16x16 digits (made once per test session)."""
    folder = tmp_path_factory.mktemp("quant_train")
    _run_in(folder, ["train", *TINY])
    return (folder / "outputs" / "train" / "latest" / "best.ckpt").resolve()


@pytest.fixture(scope="session")
def quant_static_run(tmp_path_factory: pytest.TempPathFactory, quant_trained_ckpt: Path) -> Path:
    """One static int8 `kta quantize` (pt2e_x86) of quant_trained_ckpt, keeping 1 layer float.

    keep_float quantizes twice (the SQNR report comes from the first pass), so one run covers
    the plain path and keep_float; percentile exercises a non-default observer end to end.
    """
    folder = tmp_path_factory.mktemp("quant_static")
    args = ["quant.keep_float=1", "quant.observer=percentile"]
    _run_in(folder, ["quantize", f"ckpt={quant_trained_ckpt}", *QUANT_FAST, *args])
    return (folder / "outputs" / "quantize" / "latest").resolve()
