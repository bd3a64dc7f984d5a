"""Hydra multirun through a cluster launcher: hydra-submitit-launcher's local executor runs each
job in its own process, as submitit_slurm does on a cluster's nodes."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

from tests.settings import TINY

LOCAL = ["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"]


def test_the_slurm_launcher_config_is_found_on_kta_s_search_path(kta):
    args = ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu"]
    result = kta("train", *args, "--cfg", "hydra", "--package", "hydra.launcher")
    assert result.code == 0, result.err
    assert "submitit_launcher.SlurmLauncher" in result.out and "partition: gpu" in result.out


def test_submitit_local_multirun_writes_one_run_folder_with_metrics_per_job(kta, tmp_path):
    result = kta("train", *LOCAL, "seed=0,1", *TINY, "data.train_per_class=10")
    assert result.code == 0, result.err
    sweeps = list((tmp_path / "outputs" / "train").glob("*_sweep"))
    assert len(sweeps) == 1 and (sweeps[0] / ".submitit").is_dir()  # the launcher's job files
    metrics = [json.loads((sweeps[0] / job / "metrics.json").read_text()) for job in ("0", "1")]
    assert all(0 <= m["test_acc"] <= 1 for m in metrics)
    seeds = [(sweeps[0] / job / ".hydra" / "overrides.yaml").read_text() for job in ("0", "1")]
    assert "seed=0" in seeds[0] and "seed=1" in seeds[1]


def test_a_mistake_inside_a_submitit_job_is_one_line_and_exit_code_2(kta):
    result = kta("train", *LOCAL, "trainer.resume=/no/such/last.ckpt", *TINY)
    assert result.code == 2  # before the fix: exit 0, the error only in the job's log file
    assert result.err.strip().splitlines()[-1] == (
        "kta train: error: checkpoint not found: /no/such/last.ckpt"
    )


def stop_the_job_after_its_first_epoch(sweep_root: Path, done: threading.Event) -> None:
    """SIGTERM, as SLURM sends at preemption, to the local job (its id is its process id)."""
    while not done.wait(0.2):
        for log in sweep_root.glob("*_sweep/.submitit/*/*_0_log.out"):
            if "epoch 1:" in log.read_text():
                os.kill(int(log.parent.name), signal.SIGTERM)
                return


def test_a_job_stopped_by_sigterm_makes_the_multirun_exit_75_naming_its_folder(kta, tmp_path):
    done = threading.Event()
    watcher = threading.Thread(
        target=stop_the_job_after_its_first_epoch, args=(tmp_path / "outputs" / "train", done)
    )
    watcher.start()
    try:
        result = kta("train", *LOCAL, *TINY, "trainer.epochs=50")
    finally:
        done.set()
        watcher.join()
    assert result.code == 75, result.err  # before the fix: a submitit traceback, exit code 1
    line = result.err.strip().splitlines()[-1]
    assert line.startswith("kta train: job 0 stopped (exit code 75)")
    run_dir = next((tmp_path / "outputs" / "train").glob("*_sweep")) / "0"
    assert str(run_dir) in line and (run_dir / "last.ckpt").is_file()  # resumable from here
