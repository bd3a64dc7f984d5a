"""The scenario folder's pictures: a heat map of R[i][j] and each task's accuracy over steps."""

from __future__ import annotations

from typing import Any

from kta_cli.report.figures import plt


def matrix_figure(matrix: list[list[float]], task_names: list[str]) -> Any:
    """R[i][j]: rows are steps (after learning task i), columns the task scored."""
    steps = len(matrix)
    size = max(4.0, 0.7 * steps + 2)
    figure, axes = plt.subplots(figsize=(size, size * 0.85))
    image = axes.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
    labels = [f"{j}: {name}" for j, name in enumerate(task_names)]
    axes.set_xticks(range(steps), labels, rotation=45, ha="right")
    axes.set_yticks(range(steps), [f"after {i}" for i in range(steps)])
    axes.set_xlabel("task scored (j)")
    axes.set_ylabel("step (i)")
    for i in range(steps):
        for j in range(steps):
            colour = "black" if matrix[i][j] > 0.6 else "white"
            axes.text(j, i, f"{matrix[i][j]:.2f}", ha="center", va="center", color=colour)
    figure.colorbar(image, ax=axes, label="test accuracy")
    figure.tight_layout()
    return figure


def accuracy_over_steps_figure(matrix: list[list[float]], task_names: list[str]) -> Any:
    """One line per task from the step that learned it on, and the running average."""
    steps = len(matrix)
    figure, axes = plt.subplots(figsize=(6.0, 4.0))
    for j, name in enumerate(task_names):
        axes.plot(
            range(j, steps),
            [matrix[i][j] for i in range(j, steps)],
            marker="o",
            label=f"task {j} ({name})",
        )
    average = [sum(matrix[i][: i + 1]) / (i + 1) for i in range(steps)]
    axes.plot(range(steps), average, color="black", linestyle="--", label="average (seen)")
    axes.set_xticks(range(steps))
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("after learning task")
    axes.set_ylabel("test accuracy")
    axes.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    return figure
