"""`kta adapt ckpt=... method=adabn|tent data.test_style=texture | adapt.targets=[...]`:
test-time adaptation to unlabelled target images, scored before and after on each target.

Reads the config and builds typed settings; the work is kta_cli/adaptation/ (tta.py: AdaBN and
TENT, targets.py: one target scored, adapted, scored again).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.table import Table

from kta_cli.adaptation.data import check_style
from kta_cli.adaptation.targets import AdaptSettings, TargetResult, adapt_target
from kta_cli.adaptation.tta import require_batchnorm
from kta_cli.data.datasets import spec_from_dict
from kta_cli.engine.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from kta_cli.engine.run import checkpoint_metadata
from kta_cli.engine.runtime import resolve_device
from kta_cli.engine.state import seed_everything
from kta_cli.errors import KtaError
from kta_cli.fewshot.source import novel_and_base_values
from kta_cli.loading import checkpoint_kind, model_from_checkpoint
from kta_cli.report.reporter import TensorBoard, console
from kta_cli.report.run_folder import config_as_dict, current_run_dir, mark_latest, write_metrics
from kta_cli.schema.store import section


def user_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task)


def adapt_settings(cfg: DictConfig) -> AdaptSettings:
    options = cfg.adapt
    return AdaptSettings(
        method=cfg.method, split=options.split, epochs=options.epochs, lr=float(options.lr),
        optimizer=options.optimizer, momentum=float(options.momentum),
        batch_size=options.batch_size, seed=cfg.seed,
    )  # fmt: skip


def target_styles(cfg: DictConfig, values: dict[str, Any]) -> list[str | None]:
    """adapt.targets, else data.test_style; a set without styles is its own single target."""
    if cfg.adapt.targets:
        if values["name"] != "shapes":
            raise KtaError(f"adapt.targets names shapes styles; data={values['name']} has none")
        for style in cfg.adapt.targets:  # every typo before minutes of adapting
            check_style(style, "adapt.targets")
        return list(cfg.adapt.targets)
    if values.get("test_style"):
        return [values["test_style"]]
    if values["name"] == "shapes":
        raise KtaError(
            "name the target domain: data.test_style=texture, or adapt.targets=[texture,noise]"
        )
    return [None]


def results_table(title: str, results: list[TargetResult]) -> Table:
    table = Table(title=title)
    for column in ("target", "images", "source-only", "adapted", "gain", "online"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for r in results:
        online = "-" if r.online_acc is None else f"{r.online_acc:.3f}"
        table.add_row(
            r.target, str(r.images), f"{r.source_acc:.3f}", f"{r.adapted_acc:.3f}",
            f"{r.adapted_acc - r.source_acc:+.3f}", online,
        )  # fmt: skip
    return table


def save_adapted(
    run_dir: Path, result: TargetResult, checkpoint: dict[str, Any], parent: Path, cfg: DictConfig
) -> Path:
    """A plain kta checkpoint whose parent is the source (best.ckpt when one target)."""
    metadata = checkpoint_metadata(
        command="adapt",
        model_args=checkpoint["model_args"],
        data=checkpoint["data"],
        class_names=checkpoint.get("class_names") or [],
        config=config_as_dict(cfg),
        parent=parent,
    )
    name = f"adapted_{result.target.replace('+', '_')}.ckpt"
    payload = {**metadata, "model": result.model.state_dict(), "metrics": result.metrics()}
    return save_checkpoint(run_dir / name, payload)


def run(cfg: DictConfig) -> dict[str, Any]:
    path = resolve_checkpoint(str(cfg.ckpt))
    checkpoint = load_checkpoint(path)
    if checkpoint_kind(checkpoint) != "plain":
        raise KtaError(f"{path} is a {checkpoint_kind(checkpoint)} model; adapt a float model")
    model = model_from_checkpoint(checkpoint)
    require_batchnorm(model, cfg.method, str(path))
    values, _ = novel_and_base_values(checkpoint, section(cfg, "data"), user_overrides())
    values = {**values, "target_style": None}
    styles = target_styles(cfg, values)
    spec = spec_from_dict({**values, "test_style": None})
    device = resolve_device(cfg.trainer.device)
    seed_everything(cfg.seed)
    settings = adapt_settings(cfg)
    results = [adapt_target(model.to(device), spec, style, settings, device) for style in styles]

    run_dir = current_run_dir()
    saved = [save_adapted(run_dir, r, checkpoint, path, cfg) for r in results]
    if len(saved) == 1:
        (run_dir / "best.ckpt").hardlink_to(saved[0])  # `ckpt=outputs/adapt/latest` finds it
    tensorboard = TensorBoard(run_dir if cfg.logger.tensorboard else None)
    for r in results:
        tensorboard.scalars(
            {f"adapt/{r.target}/source_acc": r.source_acc,
             f"adapt/{r.target}/adapted_acc": r.adapted_acc}, 0,
        )  # fmt: skip
    tensorboard.close()
    metrics = {
        "checkpoint": str(path),
        "parent": str(path),
        "method": cfg.method,
        "split": settings.split,
        "targets": {r.target: r.metrics() for r in results},
        "mean_source_acc": sum(r.source_acc for r in results) / len(results),
        "mean_adapted_acc": sum(r.adapted_acc for r in results) / len(results),
        "checkpoints": [str(p) for p in saved],
    }
    write_metrics(run_dir, metrics)
    mark_latest(run_dir, "adapt")
    title = f"kta adapt: {checkpoint['model_args']['name']} with {cfg.method} ({settings.split})"
    console.print(results_table(title, results))
    console.print(f"run folder: {run_dir}")
    return metrics
