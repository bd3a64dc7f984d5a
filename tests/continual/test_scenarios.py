"""Scenarios: class splits keep each class's own label; orders are permutations; styles vary."""

import pytest
import torch

from kta_cli.continual.scenarios import class_split, style_sequence, task_order
from kta_cli.data.datasets import DataSpec
from kta_cli.errors import KtaError

DIGITS = DataSpec(name="digits", img_size=8)


def test_split_digits_cuts_the_classes_in_order_and_keeps_their_labels():
    scenario = class_split(
        DIGITS, name="split_digits", classes_per_task=2, order=[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    )
    assert [t.classes for t in scenario.tasks] == [[9, 8], [7, 6], [5, 4], [3, 2], [1, 0]]
    assert scenario.num_classes == 10 and scenario.tasks[0].name == "9+8"
    for task in scenario.tasks:
        for images, labels in (task.train, task.test):
            assert set(labels.unique().tolist()) == set(task.classes) and len(images) == len(labels)
    everything = class_split(DIGITS, name="all", classes_per_task=10)
    assert sum(len(t.train[1]) for t in scenario.tasks) == len(everything.tasks[0].train[1])


def test_a_seed_draws_a_reproducible_order_and_a_bad_order_is_refused():
    assert task_order(5, None, 3, "classes") == task_order(5, None, 3, "classes")
    assert sorted(task_order(5, None, 3, "classes")) == [0, 1, 2, 3, 4]
    assert task_order(5, None, None, "classes") == [0, 1, 2, 3, 4]
    with pytest.raises(KtaError, match="must list each of the 3 styles"):
        task_order(3, [0, 0, 1], None, "styles")


def test_style_sequence_has_every_class_in_each_task_drawn_differently():
    shapes = DataSpec(name="shapes", img_size=16, per_class=5)
    scenario = style_sequence(shapes, name="shapes_styles", styles=["flat", "noise"])
    assert [t.name for t in scenario.tasks] == ["flat", "noise"]
    assert scenario.mode == "domain_incremental"
    flat, noise = (t.train for t in scenario.tasks)
    assert torch.equal(flat[1], noise[1]) and not torch.equal(flat[0], noise[0])
