"""Figures saved as PNG (matplotlib, no display needed)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from kta_cli.report.run_folder import disk_full_reported  # noqa: E402


def confusion_figure(confusion: torch.Tensor, class_names: list[str]) -> Any:
    """Row-normalised confusion matrix with counts in the cells (rows: true, columns: predicted)."""
    n = len(class_names)
    rates = confusion.float() / confusion.sum(dim=1, keepdim=True).clamp(min=1)
    size = max(4.0, 0.5 * n + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(n), class_names, rotation=45, ha="right")
    axes.set_yticks(range(n), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                colour = "white" if rates[i, j] > 0.5 else "black"
                axes.text(
                    j, i, int(confusion[i, j]), ha="center", va="center", fontsize=8, color=colour
                )
    figure.tight_layout()
    return figure


def save_figure(figure: Any, path: Path) -> Path:
    """A PNG beside the run's other files; a full disk is one KtaError (see run_folder.py)."""
    try:
        with disk_full_reported(path, lambda: png_size(figure)):
            figure.savefig(path, dpi=120)
    except BaseException:
        path.unlink(missing_ok=True)  # matplotlib leaves a truncated PNG behind
        raise
    finally:
        plt.close(figure)
    return path


def png_size(figure: Any) -> int:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return len(buffer.getvalue())
