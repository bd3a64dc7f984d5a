"""A full disk: one line naming what could not be written and its size, exit 2, and the
checkpoints written before intact. Simulated by writers that fail with ENOSPC, and once on a real
4 MB tmpfs where this machine lets a test mount one."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.summary.writer import record_writer

from kta_cli.engine import checkpoint as checkpoint_module
from kta_cli.engine.checkpoint import RunCheckpoints, load_checkpoint, save_checkpoint
from kta_cli.errors import KtaError
from kta_cli.report import run_folder
from kta_cli.report.figures import plt, save_figure
from kta_cli.report.run_folder import human_size, stop_when_the_log_file_fills, write_metrics
from tests.conftest import TINY

SHORT = [*TINY, "data.train_per_class=8"]  # 4 steps an epoch


def no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullFile:
    """A file on a disk with `room` bytes left: the write that passes it fails, as a real one."""

    def __init__(self, handle: Any, room: int) -> None:
        self.handle, self.room = handle, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.handle.write(data[: self.room])
            self.room = 0
            raise no_space()
        self.room -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def __enter__(self) -> FullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def full_disk_os(room: int) -> types.SimpleNamespace:
    """The `os` a writer module sees, whose fdopen hands out FullFiles."""
    names = {name: getattr(os, name) for name in dir(os) if not name.startswith("__")}
    return types.SimpleNamespace(
        **{**names, "fdopen": lambda fd, mode="r": FullFile(os.fdopen(fd, mode), room)}
    )


def test_a_checkpoint_write_says_what_and_how_big_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.ckpt", {"model": {"w": torch.zeros(3)}})
    payload = {"model": {"w": torch.ones(100_000)}}
    with monkeypatch.context() as patch:
        patch.setattr(checkpoint_module, "os", full_disk_os(room=1000))
        with pytest.raises(KtaError) as error:
            save_checkpoint(path, payload)
    size = save_checkpoint(tmp_path / "elsewhere" / "same.ckpt", payload).stat().st_size
    message = str(error.value)
    assert f"could not write {path} ({human_size(size)} needed" in message  # "400.9 kB"
    assert "the checkpoints written before (last.ckpt) are intact" in message
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.zeros(3))
    assert os.listdir(tmp_path) == ["elsewhere", "last.ckpt"]  # no temporary file left


def test_kta_train_on_a_disk_that_fills_at_last_ckpt_exits_2_with_one_line(kta, monkeypatch):
    original = RunCheckpoints.__call__

    def save(self, kind: str, train_state: dict) -> None:
        with monkeypatch.context() as patch:
            if kind == "last":
                patch.setattr(checkpoint_module, "os", full_disk_os(room=0))
            original(self, kind, train_state)

    monkeypatch.setattr(RunCheckpoints, "__call__", save)
    result = kta("train", *SHORT)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "no space left on device: could not write" in result.err
    assert "last.ckpt (" in result.err and "MB needed" in result.err
    assert "(best.ckpt) are intact" in result.err
    run = next((result.cwd / "outputs" / "train").iterdir())
    assert load_checkpoint(run / "best.ckpt")["metrics"]["epochs_run"] == 1
    assert not list(run.glob(".*.tmp")) and not (run / "metrics.json").exists()


def test_metrics_json_on_a_full_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(run_folder, "os", full_disk_os(room=10))
    with pytest.raises(KtaError, match=r"could not write .*metrics.json \(\d+ B needed"):
        write_metrics(tmp_path, {"acc": 0.5, "name": "a run"})
    assert os.listdir(tmp_path) == []  # neither metrics.json nor a temporary file


def test_a_figure_on_a_full_disk_leaves_no_truncated_png(tmp_path, monkeypatch):
    original = plt.Figure.savefig

    def savefig(figure, target, **kwargs):
        if isinstance(target, Path):
            target.write_bytes(b"\x89PNG half")
            raise no_space()
        return original(figure, target, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", savefig)
    figure = plt.figure()
    with pytest.raises(KtaError, match=r"could not write .*plot.png \(\d+\.\d kB needed"):
        save_figure(figure, tmp_path / "plot.png")
    assert not (tmp_path / "plot.png").exists()


def test_tensorboard_on_a_full_disk_is_one_line_without_the_writer_threads_traceback(
    kta, monkeypatch
):
    def write(self, data: bytes) -> None:
        raise no_space()  # in TensorBoard's writer thread, which re-raises it in the next call

    monkeypatch.setattr(record_writer.RecordWriter, "write", write)
    result = kta("train", *[a for a in SHORT if a != "logger=none"], "logger=tensorboard")
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "could not write TensorBoard events in" in result.err


def test_the_run_log_on_a_full_disk_stops_the_run(tmp_path):
    handler = logging.FileHandler(tmp_path / "train.log")
    handler.stream = FullFile(handler.stream, room=0)
    logging.getLogger().addHandler(handler)
    try:
        stop_when_the_log_file_fills(tmp_path)
        with pytest.raises(KtaError, match=r"could not write .*train.log \(\d+ B needed"):
            logging.getLogger("kta_cli.test").warning("a record the disk has no room for")
    finally:
        logging.getLogger().removeHandler(handler)


# The real thing: `kta train` with outputs/ on a 4 MB tmpfs in a private mount namespace (as
# root, or with user namespaces). best.ckpt (1.5 MB) fits, last.ckpt (3 MB) does not.
SCRIPT = """
set -e
mount -t tmpfs -o size=4m tmpfs "$DISK"
cd "$DISK"
code=0
"$PYTHON" -m kta_cli train {args} > "$OUT/stdout" 2> "$OUT/stderr" || code=$?
echo $code > "$OUT/code"
ls -A outputs/train/*/ > "$OUT/files"
cp outputs/train/*/best.ckpt "$OUT/" || true
"""


def can_mount_tmpfs(folder: Path) -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {folder}"],
        capture_output=True,
    )
    return probe.returncode == 0


def test_a_real_full_filesystem(tmp_path: Path):
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir(), out.mkdir()
    if not can_mount_tmpfs(disk):
        pytest.skip("mounting a small tmpfs is not permitted here")
    args = " ".join([*TINY, "trainer.threads=2"])
    env = {
        **os.environ,
        "DISK": str(disk),
        "OUT": str(out),
        "PYTHON": sys.executable,
        "PYTHONPATH": str(Path(__file__).parents[2]),
    }
    subprocess.run(
        ["unshare", "-rm", "sh", "-c", SCRIPT.format(args=args)], env=env, check=True, timeout=300
    )
    stderr = (out / "stderr").read_text()
    assert (out / "code").read_text().strip() == "2", stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "no space left on device: could not write" in stderr and "last.ckpt (" in stderr
    assert "MB needed" in stderr and "(best.ckpt) are intact" in stderr
    assert not [name for name in (out / "files").read_text().split() if name.endswith(".tmp")]
    assert load_checkpoint(out / "best.ckpt")["metrics"]["epochs_run"] == 1
