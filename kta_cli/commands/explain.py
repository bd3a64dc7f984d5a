"""`kta explain --method gradcam ckpt=...`: heatmaps, faithfulness, data-set views, comparison.

Reads the config and builds typed options; the work is kta_cli/explain/ (report.py writes the
pictures, heatmaps.safetensors and views; compare.py the comparison with another checkpoint).
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from kta_cli.data.datasets import build_data, spec_from_dict
from kta_cli.engine.checkpoint import Usable, float_only, load_checkpoint, resolve_checkpoint
from kta_cli.engine.evaluate import scored_data
from kta_cli.engine.runtime import resolve_device
from kta_cli.errors import KtaError
from kta_cli.explain.compare import compare_report
from kta_cli.explain.inputs import Batch, read_images, sample_batch
from kta_cli.explain.methods import Explainer, Settings, method_names, method_spec
from kta_cli.explain.overlays import denormalize
from kta_cli.explain.report import (
    FaithfulnessOptions,
    PatternOptions,
    ReportOptions,
    Stopwatch,
    ViewOptions,
    explain_all,
    explain_report,
    explainer_for,
    target_classes,
)
from kta_cli.report.reporter import TensorBoard, console
from kta_cli.report.run_folder import current_run_dir, mark_latest, write_metrics
from kta_cli.schema.store import section


def settings_from(cfg: DictConfig) -> Settings:
    return Settings(
        batch_size=cfg.batch_size, ig_steps=cfg.integrated_gradients.steps,
        smoothgrad_samples=cfg.smoothgrad.samples, smoothgrad_noise=float(cfg.smoothgrad.noise),
        occlusion_window=cfg.occlusion.window, occlusion_stride=cfg.occlusion.stride,
        shap_samples=cfg.shap.samples, kernel_shap_samples=cfg.kernel_shap.samples,
        kernel_shap_cells=cfg.kernel_shap.cells, seed=cfg.seed,
    )  # fmt: skip


def options_from(cfg: DictConfig) -> ReportOptions:
    patterns = section(cfg, "patterns")
    return ReportOptions(
        split=cfg.split, grid_rows=cfg.grid_rows, seed=cfg.seed,
        faithfulness=FaithfulnessOptions(**section(cfg, "faithfulness")),
        views=ViewOptions(**section(cfg, "views")), patterns=PatternOptions(**patterns),
    )  # fmt: skip


def explainer_of(cfg: DictConfig, checkpoint: dict[str, Any]) -> Explainer:
    device = resolve_device(cfg.trainer.device)
    return explainer_for(checkpoint, layer=cfg.layer, settings=settings_from(cfg), device=device)


def load_inputs(
    cfg: DictConfig, checkpoint: dict[str, Any], class_names: list[str]
) -> tuple[Batch, Any]:
    """Images from image= (file or folder), else `n` samples of the data split."""
    data = checkpoint["data"]
    if cfg.image is not None:
        batch = read_images(
            str(cfg.image), img_size=data["img_size"], mean=data["mean"], std=data["std"],
            class_names=class_names,
        )  # fmt: skip
        return batch, None
    bundle = build_data(spec_from_dict(scored_data(cfg, checkpoint)))
    if len(bundle.class_names) != len(class_names):
        raise KtaError(
            f"the checkpoint has {len(class_names)} classes, the data "
            f"{len(bundle.class_names)}; pick data.classes to match"
        )
    loader = getattr(bundle, cfg.split)
    return sample_batch(loader, cfg.n, cfg.split), loader


def refuse_gradients_on_int8(cfg: DictConfig, checkpoint: dict[str, Any], path: Any) -> None:
    """Known before the int8 program is compiled (a minute on this CPU): say it at once."""
    if checkpoint.get("model_kind") != "quantized" or cfg.method == "all":
        return
    needs_gradients = [m for m in method_names_of(cfg) if method_spec(m).gradients]
    if needs_gradients:
        raise KtaError(
            f"{needs_gradients[0]} needs gradients, but {path} is a quantized int8 program; "
            "use occlusion or kernel_shap, or explain the float checkpoint it came from"
        )


def usable_for(cfg: DictConfig) -> Usable | None:
    """What `latest` may be: the newest float model for gradient methods, else any model
    (occlusion and kernel SHAP only call the model; method=all skips what it cannot run)."""
    if cfg.method == "all":
        return None
    return float_only if any(method_spec(m).gradients for m in method_names_of(cfg)) else None


def method_names_of(cfg: DictConfig) -> list[str]:
    return method_names(
        OmegaConf.to_object(cfg.method) if OmegaConf.is_list(cfg.method) else str(cfg.method)
    )


def other_explainer(cfg: DictConfig, class_names: list[str]) -> tuple[Explainer, Any]:
    """compare=<checkpoint>: its explainer, for the same classes."""
    path = resolve_checkpoint(cfg.compare, usable=usable_for(cfg))
    checkpoint = load_checkpoint(path)
    other_names = checkpoint.get("class_names") or []
    if len(other_names) != len(class_names):
        raise KtaError(
            f"compare={cfg.compare} has {len(other_names)} classes, this checkpoint "
            f"{len(class_names)}; heatmaps are only comparable for the same classes"
        )
    return explainer_of(cfg, checkpoint), path


def run(cfg: DictConfig) -> dict[str, Any]:
    methods = method_names_of(cfg)
    options = options_from(cfg)
    torch.manual_seed(cfg.seed)
    watch = Stopwatch()
    with watch.stage("load"):
        path = resolve_checkpoint(str(cfg.ckpt), usable=usable_for(cfg))
        checkpoint = load_checkpoint(path)
        refuse_gradients_on_int8(cfg, checkpoint, path)
        classes = checkpoint.get("model_args", {}).get("num_classes", 0)
        class_names = list(checkpoint.get("class_names") or [str(i) for i in range(classes)])
        explainer = explainer_of(cfg, checkpoint)
        batch, loader = load_inputs(cfg, checkpoint, class_names)
        probabilities = explainer.logits(batch.images).softmax(dim=1)
    targets = target_classes(cfg.target, probabilities.argmax(dim=1), class_names)
    with watch.stage("methods"):
        heatmaps = explain_all(
            explainer, methods, batch.images, targets, cfg.method == "all", stopwatch=watch
        )

    run_dir = current_run_dir()
    tensorboard = TensorBoard(run_dir if cfg.logger.tensorboard else None)
    metrics: dict[str, Any] = {"checkpoint": str(path), "parent": str(path)}
    metrics.update(
        explain_report(
            explainer,
            batch,
            loader,
            heatmaps,
            probabilities,
            targets,
            class_names,
            options=options,
            run_dir=run_dir,
            tensorboard=tensorboard,
            stopwatch=watch,
        )  # fmt: skip
    )
    if cfg.compare is not None:
        with watch.stage("compare"):
            other, other_path = other_explainer(cfg, class_names)
            pictures = denormalize(batch.images, explainer.mean, explainer.std)
            metrics["compare"] = compare_report(
                other, other_path, batch, pictures, probabilities, targets, heatmaps,
                class_names, grid_rows=cfg.grid_rows, run_dir=run_dir, tensorboard=tensorboard,
            )  # fmt: skip
    metrics["seconds"] = watch.record()  # per stage and per method: where the time went
    tensorboard.close()
    write_metrics(run_dir, metrics)
    mark_latest(run_dir, "explain")
    console.print(
        f"{metrics['images']} image(s) explained with {', '.join(metrics['methods'])}; "
        f"PNGs and heatmaps.safetensors in {run_dir}"
    )
    console.print(f"run folder: {run_dir}")
    return metrics
