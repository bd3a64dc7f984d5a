"""Hydra multirun through a cluster launcher: hydra-submitit-launcher's local executor runs each
job in its own process, as submitit_slurm does on a cluster's nodes."""

from __future__ import annotations

import json

from tests.settings import TINY

LOCAL = ["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"]


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
