"""Accuracy-matrix scores against values worked out by hand (Avalanche / GEM / RWalk terms)."""

import pytest

from kta_cli.continual.metrics import (
    average_accuracy,
    backward_transfer,
    forgetting,
    summary,
    task_forgetting,
)

# R[i][j]: accuracy on task j after learning task i. Task 0 improves while task 1 is learned
# (0.5 -> 0.9), then drops to 0.3; task 1 drops from 0.8 to 0.7.
R = [
    [0.5, 0.1, 0.0],
    [0.9, 0.8, 0.2],
    [0.3, 0.7, 0.95],
]


def test_average_accuracy_counts_only_the_tasks_seen_so_far():
    assert average_accuracy(R, 0) == pytest.approx(0.5)
    assert average_accuracy(R, 1) == pytest.approx((0.9 + 0.8) / 2)  # 0.85
    assert average_accuracy(R) == pytest.approx((0.3 + 0.7 + 0.95) / 3)  # 0.65


def test_forgetting_is_best_earlier_accuracy_minus_last_and_bwt_is_last_minus_first():
    # Chaudhry et al.: task 0: max(0.5, 0.9) - 0.3 = 0.6; task 1: 0.8 - 0.7 = 0.1
    assert task_forgetting(R) == pytest.approx([0.6, 0.1])
    assert forgetting(R) == pytest.approx(0.35)
    # Lopez-Paz & Ranzato: ((0.3 - 0.5) + (0.7 - 0.8)) / 2 = -0.15
    assert backward_transfer(R) == pytest.approx(-0.15)
    scores = summary(R)
    assert scores["avalanche_forgetting"] == pytest.approx(0.15)  # Avalanche: BWT = -forgetting
    assert scores["average_accuracy_per_step"] == pytest.approx([0.5, 0.85, 0.65])


def test_one_task_has_no_forgetting_and_a_ragged_matrix_is_refused():
    assert forgetting([[0.7]]) is None and backward_transfer([[0.7]]) is None
    with pytest.raises(ValueError, match="T x T"):
        summary([[0.5, 0.1], [0.4]])
