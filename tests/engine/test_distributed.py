"""Two CPU processes under torchrun (gloo): one run folder, written by rank 0 alone."""

import json
import os
import subprocess
import sys
from pathlib import Path

from kta_cli.engine.checkpoint import load_checkpoint
from tests.conftest import TINY


def torchrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "kta_cli",
        "train",
        *TINY,
        "trainer.threads=1",
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300
    )


def test_two_process_training_and_resume(tmp_path: Path):
    first = torchrun(tmp_path, "trainer.max_steps=4")
    assert first.returncode == 0, first.stderr[-2000:]
    runs = [p for p in (tmp_path / "outputs" / "train").iterdir() if p.name != "latest"]
    assert len(runs) == 1  # rank 1 made no folder of its own
    state = load_checkpoint(runs[0] / "last.ckpt")["train_state"]["loop"]
    assert state["step"] == 4

    resumed = torchrun(tmp_path, "trainer.resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    latest = (tmp_path / "outputs" / "train" / "latest").resolve()
    metrics = json.loads((latest / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and metrics["steps"] == 10  # 20 batches shared by 2 ranks
    assert 0.0 <= metrics["test_acc"] <= 1.0
