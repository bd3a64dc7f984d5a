"""Run folders made by hand, as kta writes them: .hydra/{overrides,config,hydra}.yaml and
metrics.json (and a checkpoint file of a chosen size), for the ledger's tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def make_run(
    folder: Path,
    command: str,
    overrides: list[str],
    metrics: dict[str, Any],
    config: dict[str, Any] | None = None,
    checkpoint_bytes: int | None = None,
) -> Path:
    hydra = folder / ".hydra"
    hydra.mkdir(parents=True)
    (hydra / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (hydra / "config.yaml").write_text(yaml.safe_dump(config or {"seed": 0}))
    (hydra / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"name": command}}}))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if checkpoint_bytes is not None:
        name = "model.ckpt" if command in ("prune", "quantize") else "best.ckpt"
        (folder / name).write_bytes(b"\0" * checkpoint_bytes)
    return folder


def seed_study(root: Path) -> Path:
    """outputs/train/ with three groups of seeds, one pruned and one failed run, and a distill
    run with the same overrides as group `full` (another command: its own group).

    full:    test_acc 0.70 (seed=0), 0.74 (seed=1 data.seed=1), 0.78 (default seed)
    freeze:  test_acc 0.80 (seed=0), 0.90 (seed=1); 0.99 (seed=2, pruned), 0.10 (seed=3, failed)
    scratch: test_acc 0.50 (seed=0)
    """
    base = root / "outputs" / "train"
    full = ["model=resnet18", "strategy=full"]
    freeze = ["model=resnet18", "strategy=freeze"]
    make_run(base / "a0", "train", [*full, "seed=0"], {"test_acc": 0.70, "val_acc": 0.6})
    make_run(base / "a1", "train", ["data.seed=1", *full, "seed=1"], {"test_acc": 0.74})
    make_run(base / "a2", "train", full[::-1], {"test_acc": 0.78, "val_acc": 0.8})
    make_run(base / "b0", "train", [*freeze, "seed=0"], {"test_acc": 0.80})
    make_run(base / "b1", "train", [*freeze, "seed=1"], {"test_acc": 0.90})
    pruned = {"test_acc": 0.99, "status": "pruned"}
    make_run(base / "sweep" / "b2", "train", [*freeze, "seed=2"], pruned)
    make_run(base / "sweep" / "b3", "train", [*freeze, "seed=3"], {"test_acc": 0.1, "failed": True})
    make_run(base / "c0", "train", ["model=resnet18", "strategy=scratch", "seed=0"],
             {"test_acc": 0.50})  # fmt: skip
    make_run(root / "outputs" / "distill" / "d0", "distill", [*full, "seed=0"],
             {"test_acc": 0.60, "gap_closure": 0.5})  # fmt: skip
    return root / "outputs"
