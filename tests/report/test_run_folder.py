"""The `latest` pointers: later commands find the newest run, TensorBoard lists each run once."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from torch.utils.tensorboard import SummaryWriter

from kta_cli.engine.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from kta_cli.report.run_folder import latest_run, mark_latest, write_metrics


def fake_run(outputs: Path, command: str, name: str, *, model: bool = True) -> Path:
    """A run folder as a command leaves it: events, metrics.json, a checkpoint, .hydra/."""
    run = outputs / command / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 0\n")
    with SummaryWriter(log_dir=str(run)) as writer:
        writer.add_scalar("train/loss", 1.0, 0)
    write_metrics(run, {"name": name})
    if model:
        save_checkpoint(run / "best.ckpt", {"model": {"w": torch.zeros(1)}, "run": name})
    mark_latest(run, command)
    return run


def tensorboard_runs(logdir: Path) -> list[str]:
    """The runs TensorBoard's own discovery finds under a logdir (what its run list shows)."""
    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(logdir))
    return sorted(multiplexer.Runs())


def test_tensorboard_lists_each_run_once(tmp_path: Path):
    outputs = tmp_path / "outputs"
    fake_run(outputs, "train", "t1")
    fake_run(outputs, "train", "t2")
    fake_run(outputs, "eval", "e1", model=False)
    assert tensorboard_runs(outputs) == ["eval/e1", "train/t1", "train/t2"]


def test_latest_names_the_newest_run_for_every_reader(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outputs = Path("outputs")
    fake_run(outputs, "train", "t1")
    second = fake_run(outputs, "train", "t2").resolve()
    fake_run(outputs, "eval", "e1", model=False)  # made no model: outputs/latest stays on t2
    best = second / "best.ckpt"
    assert resolve_checkpoint("latest") == best
    assert resolve_checkpoint("outputs/train/latest") == best
    assert load_checkpoint("outputs/train/latest/best.ckpt")["run"] == "t2"  # a plain path
    assert json.loads(Path("outputs/train/latest/metrics.json").read_text())["name"] == "t2"
    assert latest_run(outputs / "train" / "latest") == second
    assert latest_run(outputs / "latest") == second
    assert latest_run(outputs / "eval" / "latest") == (outputs / "eval" / "e1").resolve()
    assert sorted(p.name for p in (outputs / "train").iterdir()) == ["latest", "t1", "t2"]


def test_an_older_folder_link_is_replaced(tmp_path: Path):
    outputs = tmp_path / "outputs"
    (outputs / "train").mkdir(parents=True)
    (outputs / "train" / "latest").symlink_to("t0", target_is_directory=True)  # kta <= 0.1
    run = fake_run(outputs, "train", "t1")
    assert not (outputs / "train" / "latest").is_symlink()
    assert latest_run(outputs / "train" / "latest") == run.resolve()
    assert tensorboard_runs(outputs) == ["train/t1"]
