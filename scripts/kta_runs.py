"""kta commands run in this process, for the study and benchmark scripts beside this file
(imports and start-up paid once, every run folder a real one)."""

from __future__ import annotations

import os
from pathlib import Path

from kta_cli.cli import main as kta
from kta_cli.report.run_folder import latest_run


def call_kta(*args: str) -> None:
    """`kta <args>` in the current directory. A failed command raises."""
    try:
        kta(list(args))
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise RuntimeError(f"kta {' '.join(args)} failed with {exit_.code}") from None


def run_kta(*args: str) -> Path:
    """call_kta, then the run folder the command wrote."""
    call_kta(*args)
    return latest_run(Path("outputs") / args[0] / "latest").resolve()


def run_kta_in(workdir: Path, *args: str) -> Path:
    """run_kta with `workdir` as the current directory for the length of the command."""
    before = Path.cwd()
    os.chdir(workdir)
    try:
        return run_kta(*args)
    finally:
        os.chdir(before)
