"""`kta eval ckpt=...`: accuracy, loss, per-class accuracy and a confusion matrix."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from kta_cli.data.datasets import build_data, spec_from_dict
from kta_cli.engine.checkpoint import load_checkpoint, resolve_checkpoint
from kta_cli.engine.evaluate import checkpoint_data, confusion_matrix, predict
from kta_cli.engine.runtime import resolve_device
from kta_cli.errors import KtaError
from kta_cli.loading import model_from_checkpoint
from kta_cli.report.figures import confusion_figure, save_figure
from kta_cli.report.reporter import TensorBoard, console, print_table
from kta_cli.report.run_folder import current_run_dir, mark_latest, write_metrics
from kta_cli.schema.store import section


def data_values(cfg: DictConfig, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """`data=...` if given (with the model's input size and normalisation), else the
    checkpoint's own data set."""
    override = None
    if cfg.get("data") is not None:
        override = section(cfg, "data")
    return checkpoint_data(checkpoint, override)


def run(cfg: DictConfig) -> dict[str, Any]:
    path = resolve_checkpoint(cfg.ckpt)
    checkpoint = load_checkpoint(path)
    if (checkpoint.get("config") or {}).get("task", {}).get("name") == "multitask":
        raise KtaError(
            f"{path} is a multi-task model; kta eval scores single-task classifiers "
            "(its per-task figures are in the train run's metrics.json)"
        )
    model = model_from_checkpoint(checkpoint)
    data = build_data(spec_from_dict(data_values(cfg, checkpoint)))
    class_names = checkpoint.get("class_names") or data.class_names
    if len(data.class_names) != len(class_names):
        raise KtaError(
            f"the checkpoint has {len(class_names)} classes, the data "
            f"{len(data.class_names)}; pick data.classes to match"
        )
    device = resolve_device(cfg.trainer.device)
    model.to(device)
    loader = getattr(data, cfg.split)
    predicted, true, loss = predict(model, loader, device)
    n = len(class_names)
    confusion = confusion_matrix(predicted, true, n)
    per_class = (confusion.diag().float() / confusion.sum(dim=1).clamp(min=1)).tolist()
    ranked = sorted(range(n), key=lambda c: per_class[c])
    metrics = {
        "checkpoint": str(path),
        "split": cfg.split,
        "images": len(true),
        "acc": (predicted == true).float().mean().item(),
        "loss": loss,
        "per_class_acc": {class_names[c]: per_class[c] for c in range(n)},
        "easiest_classes": [class_names[c] for c in ranked[::-1][:3]],
        "hardest_classes": [class_names[c] for c in ranked[:3]],
    }

    run_dir = current_run_dir()
    figure = confusion_figure(confusion, class_names)
    tensorboard = TensorBoard(run_dir if cfg.logger.tensorboard else None)
    tensorboard.scalars({"eval/acc": metrics["acc"], "eval/loss": loss}, 0)
    tensorboard.figure("eval/confusion_matrix", figure)
    save_figure(figure, run_dir / "confusion_matrix.png")
    tensorboard.close()
    write_metrics(run_dir, {**metrics, "confusion_matrix": confusion.tolist(), "parent": str(path)})
    mark_latest(run_dir, "eval")
    print_table(
        f"kta eval: {checkpoint['model_args']['name']} on {data.spec.name} ({cfg.split})",
        {k: v for k, v in metrics.items() if not isinstance(v, dict)},
    )
    console.print(f"run folder: {run_dir}")
    return metrics
