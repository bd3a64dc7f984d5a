"""Scenarios: a data set cut into a sequence of tasks (Avalanche's "experiences").

Class splits (split_digits, split_shapes) keep every class's own label, so one head over all
classes learns them in turn (class-incremental); task-incremental scoring masks the logits to
the task's classes. A style sequence (shapes_styles) keeps all classes and changes the drawing
style each task (domain-incremental).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from kta_cli.data.datasets import DataSpec, build_data
from kta_cli.data.loaders import InMemoryLoader
from kta_cli.errors import KtaError

MODES = ("class_incremental", "task_incremental")


@dataclass
class TaskData:
    """One task: its training, validation and test tensors, and the classes it holds."""

    name: str
    classes: list[int]
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


@dataclass
class Scenario:
    name: str
    tasks: list[TaskData]
    class_names: list[str]
    mode: str  # class_incremental | task_incremental | domain_incremental (a style sequence)
    spec: DataSpec

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _tensors(loader: InMemoryLoader) -> tuple[torch.Tensor, torch.Tensor]:
    return loader.images, loader.labels


def _subset(
    split: tuple[torch.Tensor, torch.Tensor], classes: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = split
    keep = torch.isin(labels, torch.tensor(classes))
    return images[keep], labels[keep]


def task_order(count: int, order: list[int] | None, seed: int | None, what: str) -> list[int]:
    """`order` as given (a permutation of 0..count-1), else seeded, else 0..count-1."""
    if order is not None:
        if sorted(order) != list(range(count)):
            raise KtaError(
                f"scenario.order={order} must list each of the {count} {what} 0..{count - 1} once"
            )
        return list(order)
    if seed is not None:  # as Avalanche: a seed without a fixed order shuffles the order
        return torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    return list(range(count))


def class_split(
    spec: DataSpec,
    *,
    name: str,
    classes_per_task: int,
    tasks: list[list[int]] | None = None,
    order: list[int] | None = None,
    seed: int | None = None,
    mode: str = "class_incremental",
) -> Scenario:
    """Classes in `order` cut into tasks of `classes_per_task` (or the explicit `tasks`)."""
    if mode not in MODES:
        raise KtaError(f"scenario.mode must be one of {', '.join(MODES)}, got {mode!r}")
    bundle = build_data(dataclasses.replace(spec, classes=None))
    names = bundle.class_names
    if tasks is None:
        ordered = task_order(len(names), order, seed, "classes")
        tasks = [
            ordered[i : i + classes_per_task] for i in range(0, len(ordered), classes_per_task)
        ]
    for index, members in enumerate(tasks):
        if not members:
            raise KtaError(f"scenario.tasks[{index}] is empty; every task needs a class or more")
        unknown = [c for c in members if not 0 <= c < len(names)]
        if unknown:
            raise KtaError(
                f"scenario.tasks[{index}] names class {unknown[0]}, but {spec.name} has classes "
                f"0..{len(names) - 1}"
            )
    splits = [_tensors(bundle.train), _tensors(bundle.val), _tensors(bundle.test)]
    built = []
    for members in tasks:
        train, val, test = (_subset(split, members) for split in splits)
        if len(train[1]) == 0 or len(test[1]) == 0:
            raise KtaError(f"task with classes {members} has no images in {spec.name}")
        label = "+".join(names[c] for c in members)
        built.append(TaskData(label, list(members), train, val, test))
    return Scenario(name, built, names, mode, spec)


def style_sequence(
    spec: DataSpec,
    *,
    name: str,
    styles: list[str],
    order: list[int] | None = None,
    seed: int | None = None,
) -> Scenario:
    """Shapes drawn in one style per task, every class in each (domain-incremental)."""
    if not styles:
        raise KtaError("scenario.styles must name one style or more")
    ordered = [styles[i] for i in task_order(len(styles), order, seed, "styles")]
    built, names = [], []
    for style in ordered:
        bundle = build_data(dataclasses.replace(spec, name="shapes", style=style, test_style=None))
        names = bundle.class_names
        every = list(range(len(names)))
        splits = (_tensors(bundle.train), _tensors(bundle.val), _tensors(bundle.test))
        built.append(TaskData(style, every, *splits))
    return Scenario(name, built, names, "domain_incremental", spec)
