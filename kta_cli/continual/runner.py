"""Learn a scenario's tasks one after another, each step a run of the one run builder
(engine/run.py) in its own folder whose checkpoint names the step before as its parent, and
score every task after every step: the accuracy matrix R[i][j]."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kta_cli.continual.buffer import ReplayBuffer, ReplayLoader
from kta_cli.continual.methods import ContinualTask
from kta_cli.continual.metrics import summary
from kta_cli.continual.scenarios import Scenario, TaskData
from kta_cli.data.loaders import InMemoryLoader
from kta_cli.data.transforms import build_augment
from kta_cli.engine.loop import evaluate
from kta_cli.engine.run import TrainingRun, checkpoint_metadata
from kta_cli.engine.runtime import Runtime
from kta_cli.engine.settings import RunSettings
from kta_cli.errors import KtaError
from kta_cli.report.reporter import TensorBoard
from kta_cli.report.run_folder import write_metrics


@dataclass
class ContinualSetup:
    """What every step shares: where and how it trains, and what its checkpoint records."""

    scenario_dir: Path
    runtime: Runtime
    settings: RunSettings
    model_args: dict[str, Any]
    config: dict[str, Any]
    joint: bool = False  # train each step on every task seen so far (the upper bound)
    buffer: ReplayBuffer | None = None
    seed: int = 0
    board: TensorBoard = field(default_factory=lambda: TensorBoard(None))  # the scenario's
    step_dirs: list[Path] = field(default_factory=list)


def loader(
    scenario: Scenario, split: tuple[torch.Tensor, torch.Tensor], train: bool, seed: int
) -> InMemoryLoader:
    spec = scenario.spec
    return InMemoryLoader(
        split[0],
        split[1],
        batch_size=spec.batch_size if train else spec.eval_batch_size,
        shuffle=train,
        seed=seed,
        transform=build_augment(spec.augment, spec.img_size) if train else None,
    )


def step_train_data(scenario: Scenario, step: int, setup: ContinualSetup) -> Any:
    """The current task's examples; joint: every task's so far; replay: mixed with the buffer."""
    tasks = scenario.tasks[: step + 1] if setup.joint else [scenario.tasks[step]]
    images = torch.cat([t.train[0] for t in tasks])
    labels = torch.cat([t.train[1] for t in tasks])
    batches = loader(scenario, (images, labels), True, setup.seed + step)
    if setup.buffer is not None:
        return ReplayLoader(batches, setup.buffer, setup.seed + step)
    return batches


def score_tasks(task: ContinualTask, scenario: Scenario, device: torch.device) -> list[float]:
    """Test accuracy on every task (task-incremental: logits masked to the task's classes)."""
    row = []
    for data in scenario.tasks:
        task.eval_classes = data.classes if scenario.mode == "task_incremental" else None
        row.append(evaluate(task, loader(scenario, data.test, False, 0), device=device)["acc"])
    task.eval_classes = None
    return row


def step_folder(scenario_dir: Path, step: int, data: TaskData) -> Path:
    return scenario_dir / f"step{step}_{re.sub(r'[^A-Za-z0-9]+', '-', data.name)}"


def check_buffer(buffer: ReplayBuffer | None, scenario: Scenario) -> None:
    if buffer is None:
        return
    total = sum(len(t.train[1]) for t in scenario.tasks)
    if buffer.size > total:
        raise KtaError(
            f"method.buffer_size={buffer.size} is larger than the scenario's {total} training "
            "images; choose a smaller buffer (or method=joint to keep everything)"
        )


def run_scenario(
    scenario: Scenario, task: ContinualTask, model: nn.Module, setup: ContinualSetup
) -> dict[str, Any]:
    """Train task after task; returns the matrix and its scores (continual/metrics.py)."""
    check_buffer(setup.buffer, scenario)
    device = setup.runtime.device
    board = setup.board
    matrix: list[list[float]] = []
    parent: Path | None = None
    steps: list[dict[str, Any]] = []
    for step, data in enumerate(scenario.tasks):
        run_dir = step_folder(setup.scenario_dir, step, data)
        run_dir.mkdir(parents=True, exist_ok=True)
        training = TrainingRun(
            command="continual", run_dir=run_dir, runtime=setup.runtime, settings=setup.settings
        )
        metadata = checkpoint_metadata(
            command="continual",
            model_args=setup.model_args,
            data={**scenario.spec.describe(), "task": data.name, "task_classes": data.classes},
            class_names=scenario.class_names,
            config=setup.config,
            parent=parent,
        )
        fit = training.fit(
            task,
            model=model,
            param_groups=[{"params": list(model.parameters()), "name": "all"}],
            train=step_train_data(scenario, step, setup),
            val=loader(scenario, data.val if len(data.val[1]) else data.test, False, 0),
            metadata=metadata,
            best_path=run_dir / "last.ckpt",  # continual learning keeps the last weights
        )
        row = score_tasks(task, scenario, device)
        matrix.append(row)
        # the Fisher from training-sized batches in order, without augmentation
        fisher_batches = InMemoryLoader(
            *data.train, batch_size=scenario.spec.batch_size, shuffle=False
        )
        task.after_task(fisher_batches, data.classes, device)
        if setup.buffer is not None:
            setup.buffer.add(*data.train)
        record = {
            "step": step,
            "task": data.name,
            "classes": data.classes,
            "accuracy_per_task": row,
            "parent": str(parent) if parent else None,
            **fit,
        }
        if setup.buffer is not None:
            record["buffer_labels"] = torch.bincount(setup.buffer.labels).tolist()
        write_metrics(run_dir, record)
        training.tensorboard.close()
        board.scalars({f"task{j}": acc for j, acc in enumerate(row)}, step, "acc/")
        board.scalars({"average_accuracy": sum(row[: step + 1]) / (step + 1)}, step, "continual/")
        steps.append({"folder": run_dir.name, "task": data.name, "classes": data.classes})
        setup.step_dirs.append(run_dir)
        parent = run_dir / "last.ckpt"
    link_final(setup.scenario_dir, parent)
    scores = summary(matrix)
    scores["steps"] = steps
    scores["final_checkpoint"] = str(parent)
    board.scalars(
        {k: v for k, v in scores.items() if isinstance(v, float)}, len(matrix) - 1, "continual/"
    )
    return scores


def link_final(scenario_dir: Path, last: Path | None) -> None:
    """model.ckpt: a relative link to the last step's weights, so `ckpt=<scenario folder>` and
    `ckpt=latest` name the model that learned every task (resolving names the real file)."""
    if last is None:
        return
    link = scenario_dir / "model.ckpt"
    link.unlink(missing_ok=True)
    link.symlink_to(last.relative_to(scenario_dir))
