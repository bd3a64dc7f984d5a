"""Shared fixtures: run the real CLI in-process in a tmp_path, with tiny models and data, and
one tiny trained checkpoint per test session that every command's tests start from."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch

from kta_cli.cli import main
from kta_cli.report.run_folder import latest_run
from tests.settings import QUANT_FAST, TINY

__all__ = ["TINY", "CliResult", "run_cli_in"]  # TINY: `from tests.conftest import TINY` still works

torch.set_num_threads(2)


class CliResult:
    def __init__(self, code: int, out: str, err: str, cwd: Path) -> None:
        self.code, self.out, self.err, self.cwd = code, out, err, cwd

    def run_dir(self, command: str = "train") -> Path:
        return latest_run(self.cwd / "outputs" / command / "latest")

    def metrics(self, command: str = "train") -> dict:
        return json.loads((self.run_dir(command) / "metrics.json").read_text())


@pytest.fixture
def kta(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """kta(*args) runs `kta <args>` in tmp_path and returns exit code, stdout and stderr."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> CliResult:
        code = 0
        try:
            main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err, tmp_path)

    return run


def run_cli_in(folder: Path, *args: str) -> Path:
    """Run `kta <args>` in `folder` (for session fixtures, which cannot use `kta`); a failure
    fails every test that needs the result. Returns the run folder the command wrote."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        main(list(args))
    except SystemExit as exit_:
        assert exit_.code in (0, None), f"kta {' '.join(args)} exited with {exit_.code}"
    finally:
        os.chdir(previous)
    return latest_run(folder / "outputs" / args[0] / "latest")


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.ckpt of `kta train` with TINY (test_resnet, 16 px digits, 1 epoch), trained once per
    session through the real CLI; its run folder (metrics.json, last.ckpt) is tiny_ckpt.parent.
    Tests read it and never write next to it."""
    run_dir = run_cli_in(tmp_path_factory.mktemp("tiny_train"), "train", *TINY)
    return (run_dir / "best.ckpt").resolve()


@pytest.fixture(scope="session")
def quant_static_run(tmp_path_factory: pytest.TempPathFactory, tiny_ckpt: Path) -> Path:
    """One static int8 `kta quantize` (pt2e_x86) of tiny_ckpt, keeping 1 layer float.

    keep_float quantizes twice (the SQNR report comes from the first pass), so one run covers
    the plain path and keep_float; percentile exercises a non-default observer end to end.
    """
    folder = tmp_path_factory.mktemp("quant_static")
    args = ["quant.keep_float=1", "quant.observer=percentile"]
    return run_cli_in(folder, "quantize", f"ckpt={tiny_ckpt}", *QUANT_FAST, *args).resolve()


# The names each area's tests used when every area trained its own checkpoint; other branches
# still write tests against them. They are the one shared checkpoint now.
@pytest.fixture(scope="session")
def prune_trained_ckpt(tiny_ckpt: Path) -> Path:
    return tiny_ckpt


@pytest.fixture(scope="session")
def quant_trained_ckpt(tiny_ckpt: Path) -> Path:
    return tiny_ckpt


@pytest.fixture(scope="session")
def teacher_ckpt(tiny_ckpt: Path) -> Path:
    return tiny_ckpt


@pytest.fixture(scope="session")
def cnn_ckpt(tiny_ckpt: Path) -> Path:
    return tiny_ckpt


@pytest.fixture(scope="session")
def vit_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """timm test_vit on 32x32 digits (a 2x2 token grid), one epoch: explain's transformer."""
    folder = tmp_path_factory.mktemp("vit")
    overrides = ["model=test_vit", "data.img_size=32", "data.train_per_class=10"]
    return (run_cli_in(folder, "train", *TINY, *overrides) / "best.ckpt").resolve()


@pytest.fixture(scope="session")
def source_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test_resnet trained for one epoch on digits 0-4: the source of a transfer to digits 5-9.
    Not tiny_ckpt: a transfer needs a source task other than the target's."""
    folder = tmp_path_factory.mktemp("source")
    overrides = ["data.classes=[0,1,2,3,4]", "data.train_per_class=40"]
    return (run_cli_in(folder, "train", *TINY, *overrides) / "best.ckpt").resolve()


@pytest.fixture
def one_thread():
    """Tiny 16-32 px models gain nothing from a second thread; on a shared 2-core machine the
    spinning second thread only costs time. Restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# In-process `kta` runs leave Hydra's root logging handlers on streams pytest has closed since;
# drop those, so a later log line does not print "--- Logging error ---" into the next test.
@pytest.fixture(autouse=True)
def _no_handlers_on_closed_streams() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        stream = getattr(handler, "stream", None)
        if stream is not None and getattr(stream, "closed", False):
            root.removeHandler(handler)
