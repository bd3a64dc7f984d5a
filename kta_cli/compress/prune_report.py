"""What `kta prune` shows: measurements of a model, rich tables, PNG figures, and the whole
prune-measure-save-report sequence (prune_and_report)."""

from __future__ import annotations

import copy
import io
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.table import Table
from torch import nn

from kta_cli.compress.prune_run import (
    Session,
    run_sensitivity,
    run_structured,
    run_unstructured,
    save_pruned,
)
from kta_cli.compress.prune_schedule import IterativeResult, StepRecord
from kta_cli.compress.prune_structured import count_macs_and_params
from kta_cli.compress.prune_unstructured import layer_sparsity
from kta_cli.errors import KtaError
from kta_cli.report.figures import plt, save_figure
from kta_cli.report.measure import file_bytes, interleaved_latency_ms, parameter_bytes
from kta_cli.report.reporter import TensorBoard, console, print_table
from kta_cli.report.run_folder import mark_latest, write_metrics


def weights_zlib_bytes(model: nn.Module) -> int:
    """Size of the weights after generic compression: where unstructured zeros pay off on disk."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return len(zlib.compress(buffer.getbuffer(), level=1))


def size_figures(model: nn.Module, macs: int) -> dict[str, int]:
    params = sum(p.numel() for p in model.parameters())
    nonzero = sum(int(p.count_nonzero()) for p in model.parameters())
    return {
        "params": params,
        "nonzero_params": nonzero,
        "macs": macs,
        "weights_bytes": parameter_bytes(model),
        "weights_zlib_bytes": weights_zlib_bytes(model),
    }


def outcome_metrics(
    result: IterativeResult, start: dict[str, float], before: dict[str, int],
    after: dict[str, int],
) -> dict[str, Any]:  # fmt: skip
    """Sizes before/after and test accuracy before, after pruning, after fine-tuning."""
    kept = next((r for r in result.records if r.step == result.best_step), None)
    metrics: dict[str, Any] = {"sparsity": kept.sparsity if kept else 0.0}
    for key in before:
        metrics[f"{key}_before"], metrics[f"{key}_after"] = before[key], after[key]
    metrics["params_ratio"] = after["params"] / max(before["params"], 1)
    metrics["macs_ratio"] = after["macs"] / max(before["macs"], 1)
    metrics["test_acc_before"] = start["test_acc"]
    metrics["test_acc_after_pruning"] = kept.pruned["test_acc"] if kept else start["test_acc"]
    metrics["test_acc_after_finetune"] = kept.tuned["test_acc"] if kept else start["test_acc"]
    metrics["val_loss_before"] = start["loss"]
    metrics["val_loss_after"] = kept.tuned["loss"] if kept else start["loss"]
    return metrics


def layer_rows(
    method: str, names: list[str], original: nn.Module, model: nn.Module
) -> dict[str, Any]:
    """Per layer: sparsity (unstructured) or output channels before and after (structured)."""
    if method == "unstructured":
        return layer_sparsity({n: model.get_submodule(n) for n in names})
    rows = {}
    for name in names:
        before, after = original.get_submodule(name), model.get_submodule(name)
        width = "out_channels" if hasattr(before, "out_channels") else "out_features"
        rows[name] = [getattr(before, width), getattr(after, width)]
    return rows


def steps_table(records: list[StepRecord], best_step: int) -> Table:
    table = Table(title="pruning steps (val)", header_style="bold")
    for column in ("step", "target", "reached", "acc pruned", "acc tuned", "loss tuned", ""):
        table.add_column(column, justify="right")
    for r in records:
        mark = "kept" if r.step == best_step else ("over max loss" if not r.meets else "")
        table.add_row(
            str(r.step),
            f"{r.target:.3f}",
            f"{r.sparsity:.3f}",
            f"{r.pruned['acc']:.4f}",
            f"{r.tuned['acc']:.4f}",
            f"{r.tuned['loss']:.4f}",
            mark,
        )
    return table


def layers_table(title: str, rows: dict[str, Any], columns: tuple[str, ...]) -> Table:
    table = Table(title=title, header_style="bold")
    table.add_column("layer")
    for column in columns:
        table.add_column(column, justify="right")
    for name, values in rows.items():
        values = values if isinstance(values, (list, tuple)) else [values]
        table.add_row(name, *(f"{v:.3f}" if isinstance(v, float) else str(v) for v in values))
    return table


def sensitivity_table(table: dict[str, dict[float, float]], baseline: float) -> Table:
    ratios = next(iter(table.values())).keys() if table else []
    out = Table(title=f"sensitivity: val acc with one layer pruned (input {baseline:.4f})")
    out.add_column("layer")
    for ratio in ratios:
        out.add_column(f"{ratio:g}", justify="right")
    for name, row in table.items():
        out.add_row(name, *(f"{acc:.4f}" for acc in row.values()))
    return out


def accuracy_vs_sparsity_figure(
    start: dict[str, float], records: list[StepRecord], xlabel: str
) -> Any:
    """Test accuracy along the way: each step drops it (pruning), fine-tuning lifts it back."""
    figure, axes = plt.subplots(figsize=(6, 4))
    xs, ys = [0.0], [start["test_acc"]]
    for r in records:
        xs += [r.sparsity, r.sparsity]
        ys += [r.pruned["test_acc"], r.tuned["test_acc"]]
    axes.plot(xs, ys, "-", color="0.7", zorder=1)
    axes.scatter([0.0], ys[:1], color="black", label="input", zorder=2)
    axes.scatter(xs[1::2], ys[1::2], marker="x", color="tab:red", label="after pruning", zorder=2)
    axes.scatter(xs[2::2], ys[2::2], color="tab:blue", label="after fine-tuning", zorder=2)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("test accuracy")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


def sensitivity_figure(table: dict[str, dict[float, float]], baseline: float) -> Any:
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.set_prop_cycle(color=plt.cm.tab20.colors)  # 20 distinct colours before any repeats
    for name, row in table.items():
        axes.plot([0.0, *row.keys()], [baseline, *row.values()], marker="o", label=name)
    axes.set_xlabel("ratio pruned in this layer alone")
    axes.set_ylabel("val accuracy (no fine-tuning)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=6, ncol=2 if len(table) > 12 else 1)
    figure.tight_layout()
    return figure


def save_figures(run_dir: Path, figures: dict[str, Any], tensorboard: Any) -> None:
    for name, figure in figures.items():
        tensorboard.figure(f"prune/{name}", figure)
        save_figure(figure, run_dir / f"{name}.png")


def print_tables(*tables: Table) -> None:
    for table in tables:
        console.print(table)


@dataclass
class LatencySettings:
    """configs/prune.yaml's measure section."""

    latency: bool = True
    batch_size: int = 1
    rounds: int = 5
    channels_last: bool = True
    onnxruntime: bool = False


def measure_latency(
    original: nn.Module, pruned: nn.Module, img_size: int, settings: LatencySettings
) -> dict[str, Any]:
    """Both models timed the same way. channels_last is how a CPU deployment runs a CNN (oneDNN's
    native layout); the pruned model gains more from it (resnet18@224, 50 %: 0.38 -> 0.31 at
    batch 1, docs/benchmarks.md). Copies are converted, so the saved model keeps its layout."""
    example = torch.randn(settings.batch_size, 3, img_size, img_size)
    models = {"input": original.cpu().eval(), "pruned": pruned.cpu().eval()}
    runs, inputs = models, example
    layout = "channels_last" if settings.channels_last else "contiguous"
    if layout == "channels_last":  # .to(memory_format=...) converts a module in place
        runs = {
            name: copy.deepcopy(model).to(memory_format=torch.channels_last)
            for name, model in models.items()
        }
        inputs = example.to(memory_format=torch.channels_last)
    latency = interleaved_latency_ms(runs, inputs, rounds=settings.rounds)
    metrics = {
        "latency_ms_before": latency["input"],
        "latency_ms_after": latency["pruned"],
        "latency_ratio": latency["pruned"] / latency["input"],
        "latency_layout": layout,
    }
    if settings.onnxruntime:
        metrics.update(onnxruntime_latency(models, example, settings.rounds))
    return metrics


def onnxruntime_latency(
    models: dict[str, nn.Module], example: torch.Tensor, rounds: int
) -> dict[str, Any]:
    """Both models exported as `kta export` does and timed in onnxruntime (which folds BatchNorm
    into the convolutions): resnet18@224 pruned 50 % runs at 0.29 of its input there at batch 1,
    0.31-0.35 in eager PyTorch (docs/benchmarks.md). n/a and the reason when one does not export;
    the pruning run is kept either way."""
    from kta_cli.export.latency import onnxruntime_runners

    with tempfile.TemporaryDirectory(prefix="kta-prune-onnx-") as folder:
        try:
            runs = onnxruntime_runners(models, example, Path(folder), torch.get_num_threads())
        except KtaError as error:
            return {"latency_onnxruntime": f"n/a: {error}"}
        latency = interleaved_latency_ms(runs, example, rounds=rounds)
    return {
        "latency_ms_before_onnxruntime": latency["input"],
        "latency_ms_after_onnxruntime": latency["pruned"],
        "latency_ratio_onnxruntime": latency["pruned"] / latency["input"],
    }


def summary_metrics(
    session: Session, path: Path, result: IterativeResult, start: dict[str, float],
    before: dict[str, int], after: dict[str, int],
) -> dict[str, Any]:  # fmt: skip
    settings = session.settings
    metrics: dict[str, Any] = {
        "checkpoint": str(path),
        "method": settings.method,
        "importance": session.criterion,
        "ratio": float(settings.ratio),
        "steps_run": len(result.records),
        "kept_step": result.best_step,
        "stopped_on_max_loss": result.stopped_early,
    }
    return {**metrics, **outcome_metrics(result, start, before, after)}


def prune_and_report(
    session: Session, *, checkpoint: dict[str, Any], path: Path,
    load_original: Callable[[], nn.Module],
    run_dir: Path, config: dict[str, Any], latency: LatencySettings, tensorboard: bool,
    with_sensitivity: bool,
) -> dict[str, Any]:  # fmt: skip
    """Prune (with sensitivity first if asked), measure, save model.ckpt, write the report.
    `load_original()` rebuilds the input model, for the before/after comparisons."""
    model, method = session.model, session.settings.method
    board = TensorBoard(run_dir if tensorboard else None)
    start = session.evaluate()
    before = size_figures(model, count_macs_and_params(model.cpu(), session.example.cpu())[0])
    model.to(session.device)
    tables, figures, rows = [], {}, None
    if with_sensitivity:
        rows = run_sensitivity(session)
        tables.append(sensitivity_table(rows, start["acc"]))
        figures["sensitivity"] = sensitivity_figure(rows, start["acc"])
    result = (run_structured if method == "structured" else run_unstructured)(session)
    pruned = result.model.cpu().eval()
    original = load_original().eval()
    after = size_figures(pruned, count_macs_and_params(pruned, session.example.cpu())[0])
    metrics = summary_metrics(session, path, result, start, before, after)
    if latency.latency:
        metrics.update(measure_latency(original, pruned, session.data.spec.img_size, latency))
    for record in result.records:
        values = {f"{k}_pruned": v for k, v in record.pruned.items()}
        values.update({f"{k}_tuned": v for k, v in record.tuned.items()})
        board.scalars({**values, "sparsity": record.sparsity}, record.step, prefix="prune/")
    xlabel = "weight sparsity" if method == "unstructured" else "parameters removed"
    figures["accuracy_vs_sparsity"] = accuracy_vs_sparsity_figure(start, result.records, xlabel)
    save_figures(run_dir, figures, board)
    board.close()
    saved = save_pruned(run_dir / "model.ckpt", session, checkpoint=checkpoint, parent=path,
                        model=pruned, metrics=metrics, config=config)  # fmt: skip
    metrics["file_bytes_before"], metrics["file_bytes_after"] = file_bytes(path), file_bytes(saved)
    layers = layer_rows(method, list(session.layers), original, pruned)
    full = {**metrics, "layers": layers, "steps": [vars(r) for r in result.records]}
    if rows is not None:
        full["sensitivity"] = {n: {str(r): a for r, a in row.items()} for n, row in rows.items()}
    write_metrics(run_dir, full)
    mark_latest(run_dir, "prune")
    columns = ("sparsity",) if method == "unstructured" else ("channels before", "after")
    tables += [
        steps_table(result.records, result.best_step),
        layers_table("layers", layers, columns),
    ]
    print_tables(*tables)
    print_table(f"kta prune: {session.model_name} ({method}, {session.criterion})", metrics)
    if result.best_step == 0:
        console.print("[yellow]no step met prune.max_allowed_loss: saved the input, unpruned")
    console.print(f"run folder: {run_dir}")
    return metrics
