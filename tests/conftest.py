"""Shared fixtures: run the real CLI in-process in a tmp_path, with tiny models and data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kta_cli.cli import main
from kta_cli.report.run_folder import latest_run

torch.set_num_threads(2)

# Small and fast: timm's test_resnet at 16x16 on a slice of the digits, one epoch.
TINY = [
    "model=test_resnet",
    "data.img_size=16",
    "trainer.epochs=1",
    "trainer.progress=false",
    "logger=none",
]


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
