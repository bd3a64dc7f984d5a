"""`kta eval ckpt=...`: accuracy, loss, per-class accuracy, a confusion matrix, calibration (ECE,
NLL, Brier, a reliability diagram, temperature scaling) and, on cue-conflict shapes, shape bias."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig

from kta_cli.data.datasets import DataBundle, build_data, spec_from_dict
from kta_cli.engine.checkpoint import load_checkpoint, resolve_checkpoint
from kta_cli.engine.evaluate import (
    confusion_matrix,
    cue_conflict_scores,
    predict_logits,
    scored_data,
)
from kta_cli.engine.runtime import resolve_device
from kta_cli.errors import KtaError
from kta_cli.loading import model_from_checkpoint
from kta_cli.report.figures import confusion_figure, reliability_figure, save_figure
from kta_cli.report.reporter import TensorBoard, console, print_table
from kta_cli.report.run_folder import current_run_dir, mark_latest, write_metrics
from kta_cli.robustness.calibration import (
    CalibrationReport,
    calibration_report,
    has_temperature_optimum,
)


def run(cfg: DictConfig) -> dict[str, Any]:
    path = resolve_checkpoint(cfg.ckpt)
    checkpoint = load_checkpoint(path)
    if (checkpoint.get("config") or {}).get("task", {}).get("name") == "multitask":
        raise KtaError(
            f"{path} is a multi-task model; kta eval scores single-task classifiers "
            "(its per-task figures are in the train run's metrics.json)"
        )
    model = model_from_checkpoint(checkpoint)
    data = build_data(spec_from_dict(scored_data(cfg, checkpoint)))
    class_names = checkpoint.get("class_names") or data.class_names
    if len(data.class_names) != len(class_names):
        raise KtaError(
            f"the checkpoint has {len(class_names)} classes, the data "
            f"{len(data.class_names)}; pick data.classes to match"
        )
    device = resolve_device(cfg.trainer.device)
    model.to(device)
    logits, true = predict_logits(model, getattr(data, cfg.split), device)
    if len(true) == 0:
        raise KtaError(f"the {cfg.split} split is empty; pick another split= or data fractions")
    predicted = logits.argmax(dim=1)
    n = len(class_names)
    confusion = confusion_matrix(predicted, true, n)
    per_class = (confusion.diag().float() / confusion.sum(dim=1).clamp(min=1)).tolist()
    ranked = sorted(range(n), key=lambda c: per_class[c])
    calibration = calibrate(cfg, model, data, device, logits, true)
    metrics = {
        "checkpoint": str(path),
        "split": cfg.split,
        "images": len(true),
        "acc": (predicted == true).float().mean().item(),
        "loss": torch.nn.functional.cross_entropy(logits, true).item(),
        **calibration.scores,
        "per_class_acc": {class_names[c]: per_class[c] for c in range(n)},
        "easiest_classes": [class_names[c] for c in ranked[::-1][:3]],
        "hardest_classes": [class_names[c] for c in ranked[:3]],
    }
    textures = data.texture_labels.get(cfg.split)
    if textures is not None and bool(((textures >= 0) & (textures != true)).any()):
        metrics.update(cue_conflict_scores(predicted, true, textures))
    title = f"kta eval: {checkpoint['model_args']['name']} on {data.spec.name} ({cfg.split})"
    write_results(cfg, title, metrics, confusion, calibration, class_names)
    return metrics


def calibrate(
    cfg: DictConfig,
    model: torch.nn.Module,
    data: DataBundle,
    device: torch.device,
    logits: torch.Tensor,
    true: torch.Tensor,
) -> CalibrationReport:
    """ECE, NLL, Brier of the scored split; with eval.temperature_scaling, a temperature fitted
    on the val split (the scored split's own logits when that is val) and the scores after it."""
    held_out = None
    if cfg.eval.temperature_scaling:
        held_out = (logits, true)
        if cfg.split != "val":
            held_out = predict_logits(model, data.val, device)
        if len(held_out[1]) == 0:  # a tiny set: score it anyway, without the fitted temperature
            console.print("[yellow]temperature scaling skipped: the val split is empty[/yellow]")
            held_out = None
        elif not has_temperature_optimum(*held_out):
            console.print(
                "[yellow]temperature scaling skipped: every val image is classified correctly, "
                "so the NLL keeps falling as T -> 0 and there is no temperature to fit[/yellow]"
            )
            held_out = None
    return calibration_report(logits, true, bins=cfg.eval.bins, held_out=held_out)


def write_results(
    cfg: DictConfig,
    title: str,
    metrics: dict[str, Any],
    confusion: torch.Tensor,
    calibration: CalibrationReport,
    class_names: list[str],
) -> None:
    """metrics.json, confusion_matrix.png, reliability.png, TensorBoard, the console table."""
    run_dir = current_run_dir()
    figure = confusion_figure(confusion, class_names)
    scores = calibration.scores
    panels = [("before temperature scaling", calibration.bins, scores["ece"])]
    if calibration.scaled_bins is not None:
        after = f"after (T = {scores['temperature']:.2f})"
        panels.append((after, calibration.scaled_bins, scores["ece_scaled"]))
    reliability = reliability_figure(panels)
    tensorboard = TensorBoard(run_dir if cfg.logger.tensorboard else None)
    numbers = {k: v for k, v in metrics.items() if isinstance(v, float)}
    tensorboard.scalars({f"eval/{k}": v for k, v in numbers.items()}, 0)
    tensorboard.figure("eval/confusion_matrix", figure)
    tensorboard.figure("eval/reliability", reliability)
    save_figure(figure, run_dir / "confusion_matrix.png")
    save_figure(reliability, run_dir / "reliability.png")
    tensorboard.close()
    parent = metrics["checkpoint"]
    write_metrics(run_dir, {**metrics, "confusion_matrix": confusion.tolist(), "parent": parent})
    mark_latest(run_dir, "eval")
    print_table(title, {k: v for k, v in metrics.items() if not isinstance(v, dict)})
    console.print(f"run folder: {run_dir}")
