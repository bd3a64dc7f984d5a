"""What `kta attack` shows: the accuracy table, the curves, the noise curve, the examples grid."""

from __future__ import annotations

from typing import Any

import torch
from rich.table import Table

from kta_cli.report.figures import plt  # matplotlib with the Agg backend already chosen

LINF = ("fgsm", "pgd")


def eps_text(method: str, eps: float) -> str:
    """L-inf radii as n/255 where they are whole, L2 radii as numbers."""
    if method in LINF and eps > 0 and abs(eps * 255 - round(eps * 255)) < 1e-6:
        return f"{round(eps * 255)}/255"
    return f"{eps:g}"


def curves_table(results: list[dict[str, Any]], title: str, methods: tuple[str, ...]) -> Table:
    """One row per model and attack among `methods` (which share their radii): the accuracy
    at each radius. A transfer row's examples were made on the float parent."""
    table = Table(title=title, show_header=True, header_style="bold")
    for name in ("model", "mode", "attack", "clean"):
        table.add_column(name, justify="right" if name == "clean" else "left")
    shown = [m for m in methods if m in results[0]["attacks"]]
    if not shown:
        return table
    for point in results[0]["attacks"][shown[0]]:
        table.add_column(eps_text(shown[0], point["eps"]), justify="right")
    for result in results:
        for method in shown:
            cells = [f"{p['acc']:.3f}" for p in result["attacks"][method]]
            clean = f"{result['clean_acc']:.3f}"
            table.add_row(result["label"], result["mode"], method, clean, *cells)
    return table


def noise_table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="accuracy under Gaussian noise (std in pixel units)", header_style="bold")
    table.add_column("model")
    stds = [p["std"] for p in results[0]["noise"]] if results else []
    for std in stds:
        table.add_column(f"std {std:g}", justify="right")
    for result in results:
        table.add_row(result["label"], *[f"{p['acc']:.3f}" for p in result["noise"]])
    return table


def curves_figure(results: list[dict[str, Any]]) -> Any:
    """Accuracy against epsilon, one line per model and attack (dashed: a transfer attack);
    L-inf radii in /255 on the left, L2 radii on the right when pgd_l2 ran."""
    has_l2 = any("pgd_l2" in r["attacks"] for r in results)
    figure, axes = plt.subplots(1, 2 if has_l2 else 1, figsize=(11 if has_l2 else 6, 4))
    axes = list(axes) if has_l2 else [axes]
    for result in results:
        style = "--" if result.get("transfer_from") else "-"
        for method, points in result["attacks"].items():
            axis = axes[1] if method == "pgd_l2" else axes[0]
            scale = 1.0 if method == "pgd_l2" else 255.0
            xs = [p["eps"] * scale for p in points]
            suffix = " (transfer)" if result.get("transfer_from") else ""
            label = f"{result['label']} {method}{suffix}"
            axis.plot(xs, [p["acc"] for p in points], style, marker="o", label=label)
    axes[0].set_xlabel("L-inf epsilon (x / 255)")
    if has_l2:
        axes[1].set_xlabel("L2 epsilon")
    for axis in axes:
        axis.set_ylabel("accuracy")
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def noise_figure(results: list[dict[str, Any]]) -> Any:
    figure, axis = plt.subplots(figsize=(6, 4))
    for result in results:
        points = result["noise"]
        axis.plot([p["std"] for p in points], [p["acc"] for p in points], marker="o")
        axis.lines[-1].set_label(result["label"])
    axis.set_xlabel("Gaussian noise std (pixel units)")
    axis.set_ylabel("accuracy")
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def examples_figure(
    images: torch.Tensor,
    adversarial: torch.Tensor,
    before: torch.Tensor,
    after: torch.Tensor,
    class_names: list[str],
    title: str,
) -> Any:
    """Rows of original | perturbation (amplified to fill the range) | adversarial, with the
    predicted class and its probability before and after. `before`/`after`: probabilities."""
    rows = len(images)
    figure, axes = plt.subplots(rows, 3, figsize=(6.6, 2.2 * rows + 0.4), squeeze=False)
    delta = adversarial - images
    for row in range(rows):
        scale = float(delta[row].abs().max()) or 1.0
        amplified = (delta[row] / (2 * scale) + 0.5).clamp(0, 1)
        p_before, c_before = before[row].max(dim=0)
        p_after, c_after = after[row].max(dim=0)
        cells = [
            (images[row], f"{class_names[c_before]} {p_before:.2f} (clean)"),
            (amplified, f"perturbation x{0.5 / scale:.0f}"),
            (adversarial[row], f"{class_names[c_after]} {p_after:.2f} (attacked)"),
        ]
        for column, (picture, text) in enumerate(cells):
            axis = axes[row][column]
            axis.imshow(picture.permute(1, 2, 0).cpu().numpy())
            axis.set_title(text, fontsize=8)
            axis.axis("off")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure
