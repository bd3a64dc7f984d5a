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


def reliability_figure(panels: list[tuple[str, Any, float]]) -> Any:
    """Reliability diagrams side by side, one per (title, bins, ece): per equal-width confidence
    bin, a bar at its accuracy, the gap to its mean confidence shaded, and the diagonal of
    perfect calibration. `bins` is a ReliabilityBins (robustness/calibration.py)."""
    figure, row = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    for axes, (title, bins, ece) in zip(row[0], panels, strict=True):
        width = bins.edges[1] - bins.edges[0]
        used = [b for b, count in enumerate(bins.counts) if count > 0]  # empty bins: no bar
        left = [bins.edges[b] for b in used]
        accuracy = [bins.accuracy[b] for b in used]
        confidence = [bins.confidence[b] for b in used]
        lows = [min(a, c) for a, c in zip(accuracy, confidence, strict=True)]
        gaps = [abs(a - c) for a, c in zip(accuracy, confidence, strict=True)]
        axes.bar(
            left,
            accuracy,
            width,
            align="edge",
            color="tab:blue",
            edgecolor="black",
            label="accuracy",
        )
        axes.bar(
            left,
            gaps,
            width,
            bottom=lows,
            align="edge",
            color="tab:red",
            alpha=0.3,
            edgecolor="tab:red",
            hatch="//",
            label="gap to confidence",
        )
        axes.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        axes.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence (top-class probability)",
            ylabel="accuracy",
            title=f"{title}: ECE {100 * ece:.2f} %",
        )
        axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return figure
