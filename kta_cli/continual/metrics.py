"""Scores of an accuracy matrix R[i][j] (accuracy on task j after learning task i).

Definitions as in Avalanche's metrics (forgetting_bwt.py), Lopez-Paz & Ranzato 2017 (GEM) and
Chaudhry et al. 2018 (RWalk), written out because they are a few lines over a T x T matrix:

- average accuracy after step i: mean over the tasks seen so far, R[i][0..i]
- forgetting of task j (j < T-1): max over steps j <= l < T-1 of R[l][j] - R[T-1][j]
  (Chaudhry et al.); its mean over j is `forgetting`
- Avalanche's forgetting of task j: R[j][j] - R[T-1][j] (first value minus last)
- backward transfer: mean over j < T-1 of R[T-1][j] - R[j][j] (Lopez-Paz & Ranzato), which is
  minus Avalanche's forgetting averaged (Avalanche: BWT = -forgetting)
"""

from __future__ import annotations

from typing import Any


def _square(matrix: list[list[float]]) -> int:
    steps = len(matrix)
    if steps == 0 or any(len(row) != steps for row in matrix):
        raise ValueError("the accuracy matrix must be T x T with T >= 1")
    return steps


def average_accuracy(matrix: list[list[float]], step: int | None = None) -> float:
    """Mean of R[step][0..step] (default: the last step, all tasks)."""
    _square(matrix)
    step = len(matrix) - 1 if step is None else step
    seen = matrix[step][: step + 1]
    return sum(seen) / len(seen)


def task_forgetting(matrix: list[list[float]]) -> list[float]:
    """Per earlier task j: the best accuracy it ever had before the last step, minus its last."""
    steps = _square(matrix)
    last = matrix[-1]
    return [
        max(matrix[step][j] for step in range(j, steps - 1)) - last[j] for j in range(steps - 1)
    ]


def forgetting(matrix: list[list[float]]) -> float | None:
    """Mean Chaudhry forgetting over tasks 0..T-2 (None for one task)."""
    values = task_forgetting(matrix)
    return sum(values) / len(values) if values else None


def backward_transfer(matrix: list[list[float]]) -> float | None:
    """Mean over j < T-1 of R[T-1][j] - R[j][j] (None for one task)."""
    steps = _square(matrix)
    if steps < 2:
        return None
    return sum(matrix[-1][j] - matrix[j][j] for j in range(steps - 1)) / (steps - 1)


def summary(matrix: list[list[float]]) -> dict[str, Any]:
    """Every score of the matrix, as metrics.json keeps them."""
    steps = _square(matrix)
    bwt = backward_transfer(matrix)
    return {
        "accuracy_matrix": matrix,
        "average_accuracy": average_accuracy(matrix),
        "average_accuracy_per_step": [average_accuracy(matrix, i) for i in range(steps)],
        "forgetting": forgetting(matrix),
        "forgetting_per_task": task_forgetting(matrix),
        "avalanche_forgetting": None if bwt is None else -bwt,
        "backward_transfer": bwt,
    }
