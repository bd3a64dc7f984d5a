"""Multi-task data on the embedded sets: one image, one label per task (labels are (N, T)).

Built-in tasks: digits -> digit (10), parity (even/odd), high (0-4 / 5-9);
shapes -> shape (6), colour (6). The first task's classes stratify the split and cap
`train_per_class`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from kta_cli.data.loaders import InMemoryLoader
from kta_cli.data.memory import in_memory_loader, load_digits_tensors
from kta_cli.data.shapes import COLORS, SHAPES, generate_shapes
from kta_cli.data.spec import DataBundle, DataSpec
from kta_cli.data.splits import cap_per_class, stratified_split
from kta_cli.data.transforms import build_augment, preprocess
from kta_cli.errors import KtaError, did_you_mean

Tasks = dict[str, tuple[torch.Tensor, list[str]]]
DEFAULT_TASKS = {"digits": ["digit", "parity"], "shapes": ["shape", "colour"]}


@dataclass
class MultiTaskBundle(DataBundle):
    """A DataBundle whose class_names are 'task:class'; `tasks` lists (task, its class names)."""

    tasks: list[tuple[str, list[str]]] = field(default_factory=list)


def digits_tasks(spec: DataSpec) -> tuple[torch.Tensor, Tasks]:
    images, digit, names = load_digits_tensors()
    return images, {
        "digit": (digit, names),
        "parity": (digit % 2, ["even", "odd"]),
        "high": ((digit >= 5).long(), ["0-4", "5-9"]),
    }


def shapes_tasks(spec: DataSpec) -> tuple[torch.Tensor, Tasks]:
    images, shape, colour = generate_shapes(
        spec.per_class * len(SHAPES), size=spec.img_size, style=spec.style, seed=spec.seed
    )
    return images, {"shape": (shape, list(SHAPES)), "colour": (colour, list(COLORS))}


SOURCES: dict[str, Callable[[DataSpec], tuple[torch.Tensor, Tasks]]] = {
    "digits": digits_tasks,
    "shapes": shapes_tasks,
}


def build_multitask_data(
    spec: DataSpec, tasks: list[str] | None = None, *, rank: int = 0, world_size: int = 1
) -> MultiTaskBundle:
    """Loaders of (images, labels[N, T]) for the chosen tasks of an embedded data set."""
    if spec.name not in SOURCES:
        raise KtaError(did_you_mean(spec.name, SOURCES, what="data set for task=multitask"))
    if spec.classes or spec.test_style:
        raise KtaError("task=multitask does not take data.classes or data.test_style")
    images, available = SOURCES[spec.name](spec)
    tasks = list(tasks or DEFAULT_TASKS[spec.name])
    for name in tasks:
        if name not in available:
            raise KtaError(did_you_mean(name, available, what=f"task for data={spec.name}"))
    if len(set(tasks)) != len(tasks):
        raise KtaError(f"task.tasks lists a task twice: {tasks}")
    labels = torch.stack([available[name][0] for name in tasks], dim=1)
    first = labels[:, 0]
    train_idx, val_idx, test_idx = stratified_split(
        first, val_fraction=spec.val_fraction, test_fraction=spec.test_fraction, seed=spec.seed
    )
    train_idx = cap_per_class(train_idx, first, spec.train_per_class, spec.seed)
    images = preprocess(images, img_size=spec.img_size, mean=spec.mean, std=spec.std)
    augment = build_augment(spec.augment, spec.img_size)

    def loader(index: torch.Tensor, train: bool) -> InMemoryLoader:
        return in_memory_loader(
            spec, images[index], labels[index], train, augment, rank, world_size
        )

    task_names = [(name, available[name][1]) for name in tasks]
    class_names = [f"{task}:{c}" for task, names in task_names for c in names]
    return MultiTaskBundle(
        loader(train_idx, True),
        loader(val_idx, False),
        loader(test_idx, False),
        class_names,
        spec,
        tasks=task_names,
    )
