"""What `kta quantize` measures and writes: latency, accuracy, sizes, the checkpoint, the report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kta_cli.compress.quantize import Quantized
from kta_cli.compress.quantized import compiled_float
from kta_cli.engine.checkpoint import git_commit, save_checkpoint
from kta_cli.report.figures import save_figure
from kta_cli.report.measure import (
    accuracy,
    file_bytes,
    interleaved_latency_ms,
    parameter_bytes,
    serialized_bytes,
)
from kta_cli.report.reporter import TensorBoard, console, print_table
from kta_cli.report.run_folder import mark_latest, write_metrics


@dataclass
class MeasureSettings:
    """configs/quantize.yaml's measure section."""

    latency: bool = True
    threads: int = 2
    batch_size: int = 32
    rounds: int = 5
    repeats: int = 10
    compiled_float: bool = True


def example_batch(loader: Any, size: int) -> torch.Tensor:
    """`size` real images (repeated when the split is smaller) for latency measurements."""
    images = next(iter(loader))[0]
    while len(images) < size:
        images = torch.cat([images, images])
    return images[:size].contiguous()


def warm_up(model: torch.nn.Module, examples: list[torch.Tensor]) -> float:
    """Seconds of the first calls (torch.compile compiles here), counted apart from latency."""
    started = time.perf_counter()
    with torch.inference_mode():
        for images in examples:
            model(images)
    return time.perf_counter() - started


def measure(
    float_model: torch.nn.Module,
    quantized: torch.nn.Module,
    test_loader: Any,
    settings: MeasureSettings,
) -> dict[str, Any]:
    """Compile time, latency at batch 1 and N (interleaved medians) against eager and compiled
    float, accuracy before and after."""
    one, many = example_batch(test_loader, 1), example_batch(test_loader, settings.batch_size)
    metrics: dict[str, Any] = {"compile_seconds": warm_up(quantized, [one, many])}
    runs = {"float": float_model, "quantized": quantized}
    if settings.latency and settings.compiled_float:
        aoti = getattr(quantized, "aoti", False)  # the float model compiled the same way
        runner, took = compiled_float(float_model, [one, many], aoti=aoti)
        metrics["float_compile_seconds"] = took if runner is not None else f"n/a: {took}"
        if runner is not None:
            runs["float_compiled"] = runner
    for name, images in (("batch1", one), (f"batch{len(many)}", many)):
        if not settings.latency:
            break
        latency = interleaved_latency_ms(
            runs, images, rounds=settings.rounds, repeats=settings.repeats
        )
        metrics[f"float_latency_ms_{name}"] = latency["float"]
        metrics[f"int8_latency_ms_{name}"] = latency["quantized"]
        metrics[f"latency_ratio_{name}"] = latency["quantized"] / latency["float"]
        if "float_compiled" in latency:
            metrics[f"float_compiled_latency_ms_{name}"] = latency["float_compiled"]
            ratio = latency["quantized"] / latency["float_compiled"]
            metrics[f"latency_ratio_vs_compiled_{name}"] = ratio
    metrics["acc_before"] = accuracy(float_model, test_loader)
    metrics["acc_after"] = accuracy(quantized, test_loader)
    metrics["acc_drop_points"] = 100 * (metrics["acc_before"] - metrics["acc_after"])
    return metrics


def sensitivity_figure(rows: list[dict[str, Any]], kept: list[str]) -> Any:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(max(6.0, 0.35 * len(rows) + 2), 4))
    names = [row["layer"] for row in rows]
    colours = ["tab:orange" if name in kept else "tab:blue" for name in names]
    axes.bar(range(len(rows)), [row["drop_db"] for row in rows], color=colours)
    axes.plot(range(len(rows)), [row["sqnr_db"] for row in rows], "k.-", label="SQNR (dB)")
    axes.set_xticks(range(len(rows)), names, rotation=70, ha="right", fontsize=7)
    axes.set_ylabel("SQNR drop (bars) / SQNR (line), dB")
    axes.set_title("per-layer int8 error (orange: kept in float)")
    axes.legend()
    figure.tight_layout()
    return figure


def save_quantized(
    path: Path,
    *,
    source: dict[str, Any],
    parent: Path,
    result: Quantized,
    quant: dict[str, Any],
    config: dict[str, Any],
    metrics: dict[str, Any],
) -> Path:
    """The quantized model as a kta checkpoint; `quant` says how it was made."""
    payload = {
        **result.payload,
        "model_kind": "quantized",
        "quant": {**quant, "kept_float": result.kept_float},
        "model_args": source["model_args"],
        "data": source["data"],
        "class_names": source.get("class_names"),
        "config": config,
        "parent": str(parent),
        "command": "quantize",
        "metrics": metrics,
        "git_commit": git_commit(),
    }
    return save_checkpoint(path, payload)


def reload_agreement(
    reloaded: torch.nn.Module, quantized: torch.nn.Module, images: torch.Tensor
) -> float:
    """Share of images on which the reloaded checkpoint predicts what the in-memory model does."""
    with torch.inference_mode():
        return (reloaded(images).argmax(1) == quantized(images).argmax(1)).float().mean().item()


def sizes(float_model: torch.nn.Module, quantized: torch.nn.Module, saved: Path) -> dict[str, Any]:
    float_file = serialized_bytes(float_model.state_dict())
    return {
        "float_file_bytes": float_file,
        "int8_file_bytes": file_bytes(saved),
        "file_ratio": file_bytes(saved) / float_file,
        "float_parameter_bytes": parameter_bytes(float_model),
        "int8_parameter_bytes": parameter_bytes(quantized),
    }


def report(
    run_dir: Path,
    metrics: dict[str, Any],
    result: Quantized,
    *,
    title: str,
    tensorboard: bool,
) -> None:
    """TensorBoard scalars, sensitivity.png, metrics.json, the `latest` pointers, the tables."""
    board = TensorBoard(run_dir if tensorboard else None)
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    board.scalars(scalars, 0, prefix="quantize/")
    for index, row in enumerate(result.sensitivity):
        board.scalars(
            {"sqnr_db": row["sqnr_db"], "drop_db": row["drop_db"]}, index, prefix="quantize/layer_"
        )
    if result.sensitivity:
        figure = sensitivity_figure(result.sensitivity, result.kept_float)
        board.figure("quantize/sensitivity", figure)
        save_figure(figure, run_dir / "sensitivity.png")
    board.close()
    write_metrics(
        run_dir, {**metrics, "layer_sqnr": result.sensitivity, "qat_history": result.qat_history}
    )
    mark_latest(run_dir, "quantize")
    print_table(title, {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))})
    if result.sensitivity:
        worst = sorted(result.sensitivity, key=lambda row: row["drop_db"], reverse=True)[:5]
        print_table(
            "most sensitive layers (SQNR drop, dB)",
            {row["layer"]: f"{row['drop_db']:.1f} (SQNR {row['sqnr_db']:.1f})" for row in worst},
        )
    console.print(f"run folder: {run_dir}")
