"""`kta explain --method gradcam ckpt=...`: heatmaps, faithfulness, data-set views, comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from kta_cli.commands.eval import data_spec_for
from kta_cli.data.datasets import build_data, spec_from_dict
from kta_cli.data.transforms import normalize
from kta_cli.engine.checkpoint import load_checkpoint, resolve_checkpoint
from kta_cli.engine.runtime import resolve_device
from kta_cli.errors import KtaError, did_you_mean
from kta_cli.explain import faithfulness as faith
from kta_cli.explain.compare import agreement_table, heatmap_agreement
from kta_cli.explain.inputs import Batch, collect, read_images, sample_batch
from kta_cli.explain.methods import Explainer, Settings, method_names, method_spec
from kta_cli.explain.overlays import (
    Row,
    curves_figure,
    denormalize,
    make_rows,
    patches_figure,
    rows_figure,
)
from kta_cli.explain.views import (
    class_accuracy,
    confident_mistakes,
    layer_maps,
    strongest_channels,
    top_patches,
)
from kta_cli.loading import model_from_checkpoint
from kta_cli.report.figures import save_figure
from kta_cli.report.reporter import TensorBoard, console, print_table
from kta_cli.report.run_folder import current_run_dir, mark_latest, write_metrics


def settings_from(cfg: DictConfig) -> Settings:
    return Settings(
        batch_size=cfg.batch_size,
        ig_steps=cfg.integrated_gradients.steps,
        smoothgrad_samples=cfg.smoothgrad.samples,
        smoothgrad_noise=float(cfg.smoothgrad.noise),
        occlusion_window=cfg.occlusion.window,
        occlusion_stride=cfg.occlusion.stride,
        shap_samples=cfg.shap.samples,
        kernel_shap_samples=cfg.kernel_shap.samples,
        kernel_shap_cells=cfg.kernel_shap.cells,
        seed=cfg.seed,
    )


def explainer_for(cfg: DictConfig, checkpoint: dict[str, Any]) -> Explainer:
    """The checkpoint's model, preprocessing as its training data was, with cfg's settings."""
    data = checkpoint["data"]
    return Explainer(
        model_from_checkpoint(checkpoint),
        mean=data["mean"],
        std=data["std"],
        img_size=data["img_size"],
        layer=cfg.layer,
        settings=settings_from(cfg),
        device=device_for(cfg, checkpoint),
    )


def device_for(cfg: DictConfig, checkpoint: dict[str, Any]) -> torch.device:
    """trainer.device, except for quantized programs, which run on x86 CPUs only."""
    if checkpoint.get("model_kind") == "quantized":
        return torch.device("cpu")
    return resolve_device(cfg.trainer.device)


def target_classes(target: Any, predicted: torch.Tensor, class_names: list[str]) -> torch.Tensor:
    """The class each image is explained for: its prediction, or one given class for all."""
    if target is None:
        return predicted
    if isinstance(target, int) and not isinstance(target, bool):
        if not 0 <= target < len(class_names):
            raise KtaError(f"target={target} is not a class index (0-{len(class_names) - 1})")
        return torch.full_like(predicted, target)
    if str(target) not in class_names:
        raise KtaError(did_you_mean(str(target), class_names, what="target class"))
    return torch.full_like(predicted, class_names.index(str(target)))


def explain_all(
    explainer: Explainer,
    methods: list[str],
    images: torch.Tensor,
    targets: torch.Tensor,
    skip_unrunnable: bool = False,
) -> dict[str, torch.Tensor]:
    """Heatmaps per method, computed `batch_size` images at a time (memory stays bounded).

    With `skip_unrunnable` (method=all), a method this model cannot run is left out with a note.
    """
    size = explainer.settings.batch_size
    heatmaps = {}
    for method in methods:
        try:
            heatmaps[method] = torch.cat(
                [
                    explainer.explain(method, x, t)
                    for x, t in zip(images.split(size), targets.split(size), strict=True)
                ]
            )
        except KtaError as error:
            if not skip_unrunnable:
                raise
            console.print(f"[yellow]skipped {method}[/yellow]: {error}")
    if not heatmaps:
        raise KtaError("no method can run on this model; see the notes above")
    return heatmaps


def faithfulness_report(
    cfg: DictConfig,
    explainer: Explainer,
    images: torch.Tensor,
    targets: torch.Tensor,
    heatmaps: dict[str, torch.Tensor],
    run_dir: Path,
    tensorboard: TensorBoard,
) -> dict[str, dict[str, Any]]:
    rows, deletion, insertion = faith.evaluate_methods(
        explainer.logits,  # batches on the model's device, logits back on the CPU
        images,
        targets,
        heatmaps,
        explainer.reference(cfg.faithfulness.reference, images),
        steps=cfg.faithfulness.steps,
        batch_size=cfg.batch_size,
        repeats=cfg.faithfulness.random_repeats,
        seed=cfg.seed,
    )
    figure = curves_figure(deletion, insertion)
    tensorboard.figure("explain/faithfulness", figure)
    save_figure(figure, run_dir / "faithfulness.png")
    console.print(faith.rich_table(rows))
    return rows


def dataset_views(
    cfg: DictConfig,
    explainer: Explainer,
    loader: Any,
    method: str,
    class_names: list[str],
    run_dir: Path,
    tensorboard: TensorBoard,
) -> dict[str, Any]:
    """Per-class accuracy over the whole split, and its most confident mistakes explained."""
    images, labels = collect(loader, cfg.views.images)
    probabilities = explainer.logits(images).softmax(dim=1)
    per_class = class_accuracy(probabilities.argmax(dim=1), labels, class_names)
    ranked = list(per_class)
    views: dict[str, Any] = {
        "per_class_acc": per_class,
        "hardest_classes": ranked[:3],
        "easiest_classes": ranked[::-1][:3],
    }
    print_table("classes, hardest first (accuracy)", per_class)
    wrong = confident_mistakes(probabilities, labels, cfg.views.mistakes)
    views["confident_mistakes"] = [
        {
            "index": int(i),
            "true": class_names[int(labels[i])],
            "predicted": class_names[int(probabilities[i].argmax())],
            "probability": float(probabilities[i].max()),
        }
        for i in wrong
    ]
    if len(wrong):
        predicted = probabilities[wrong].argmax(dim=1)
        heat = explain_all(explainer, [method], images[wrong], predicted)
        names = [f"{cfg.split}_{int(i):04d}" for i in wrong]
        pictures = denormalize(images[wrong], explainer.mean, explainer.std)
        rows = make_rows(
            names, labels[wrong], pictures, heat, probabilities[wrong], predicted, class_names
        )
        figure = rows_figure(rows, title=f"most confident mistakes ({method})")
        tensorboard.figure("explain/mistakes", figure)
        save_figure(figure, run_dir / "mistakes.png")
    return views


def pattern_layer_exists(cfg: DictConfig, explainer: Explainer) -> bool:
    """False (with a note) when the model has no spatial layer and none was named."""
    if cfg.patterns.layer is not None:
        return True  # a wrong name is a real mistake, reported by pattern_view
    try:
        explainer.target_layer(explainer.layer_name)
    except KtaError as error:
        console.print(f"[yellow]pattern view skipped[/yellow]: {error}")
        return False
    return True


def pattern_view(
    cfg: DictConfig,
    explainer: Explainer,
    images: torch.Tensor,
    run_dir: Path,
    tensorboard: TensorBoard,
) -> dict[str, Any]:
    """Patches that excite the chosen channels of a layer most (the layer-by-layer view)."""
    pictures = denormalize(images, explainer.mean, explainer.std)
    layer = explainer.target_layer(cfg.patterns.layer or explainer.layer.name)
    maps = layer_maps(explainer.model, layer.module, images, cfg.batch_size, explainer.device)
    channels = cfg.patterns.channels
    channels = (
        list(channels) if channels is not None else strongest_channels(maps, cfg.patterns.count)
    )
    patches = top_patches(maps, pictures, channels, top=cfg.patterns.top, patch=cfg.patterns.patch)
    figure = patches_figure(patches, layer.name)
    tensorboard.figure("explain/patterns", figure)
    save_figure(figure, run_dir / "patterns.png")
    return {"layer": layer.name, "channels": channels}


def compare_with(
    cfg: DictConfig,
    methods: list[str],
    pictures: torch.Tensor,
    targets: torch.Tensor,
    heatmaps: dict[str, torch.Tensor],
    predicted: torch.Tensor,
    class_names: list[str],
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Explain the same pictures with another checkpoint and measure how the heatmaps moved.

    Returns the summary and the other model's heatmaps (at this model's input size).
    """
    path = resolve_checkpoint(cfg.compare)
    checkpoint = load_checkpoint(path)
    other_names = checkpoint.get("class_names") or []
    if len(other_names) != len(class_names):
        raise KtaError(
            f"compare={cfg.compare} has {len(other_names)} classes, this checkpoint "
            f"{len(class_names)}; heatmaps are only comparable for the same classes"
        )
    data = checkpoint["data"]
    other = explainer_for(cfg, checkpoint)
    size = data["img_size"]
    resized = (
        pictures
        if pictures.shape[-1] == size
        else F.interpolate(
            pictures, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    )
    images = normalize(resized, data["mean"], data["std"])
    other_predicted = other.logits(images).argmax(dim=1)
    rows: dict[str, Any] = {}
    other_heatmaps: dict[str, torch.Tensor] = {}
    for method in methods:
        try:
            other_heat = explain_all(other, [method], images, targets)[method]
            other_heatmaps[method] = F.interpolate(
                other_heat[:, None], size=pictures.shape[-2:], mode="bilinear"
            )[:, 0]
        except KtaError as error:  # e.g. gradients through a quantized program
            rows[method] = {"skipped": str(error)}
            console.print(f"[yellow]compare: {method} skipped[/yellow]: {error}")
            continue
        rows[method] = heatmap_agreement(heatmaps[method], other_heat)
    agreement = float((other_predicted == predicted).float().mean())
    console.print(agreement_table(rows, short_path(str(path)), agreement))
    summary = {"checkpoint": str(path), "prediction_agreement": agreement, "methods": rows}
    return summary, other_heatmaps


def short_path(path: str) -> str:
    """run-folder/file: enough to tell checkpoints apart in a title."""
    return "/".join(Path(path).parts[-2:])


def load_inputs(
    cfg: DictConfig, checkpoint: dict[str, Any], class_names: list[str]
) -> tuple[Batch, Any]:
    """Images from image= (file or folder), else `n` samples of the data split."""
    data = checkpoint["data"]
    if cfg.image is not None:
        batch = read_images(
            str(cfg.image),
            img_size=data["img_size"],
            mean=data["mean"],
            std=data["std"],
            class_names=class_names,
        )
        return batch, None
    bundle = build_data(spec_from_dict(data_spec_for(cfg, checkpoint)))
    if len(bundle.class_names) != len(class_names):
        raise KtaError(
            f"the checkpoint has {len(class_names)} classes, the data "
            f"{len(bundle.class_names)}; pick data.classes to match"
        )
    loader = getattr(bundle, cfg.split)
    return sample_batch(loader, cfg.n, cfg.split), loader


def compare_report(
    cfg: DictConfig,
    batch: Batch,
    pictures: torch.Tensor,
    probabilities: torch.Tensor,
    targets: torch.Tensor,
    heatmaps: dict[str, torch.Tensor],
    class_names: list[str],
    run_dir: Path,
    tensorboard: TensorBoard,
) -> dict[str, Any]:
    """The comparison table, and compare.png with both checkpoints' heatmaps side by side."""
    methods, predicted = list(heatmaps), probabilities.argmax(dim=1)
    summary, other = compare_with(cfg, methods, pictures, targets, heatmaps, predicted, class_names)
    if other:  # this model's heatmap beside the other's, per method
        both = {f"{m}{tag}": h for m in other for tag, h in (("", heatmaps[m]), (" *", other[m]))}
        rows = make_rows(
            batch.names, batch.labels, pictures, both, probabilities, targets, class_names
        )
        title = f"plain: this checkpoint; *: {short_path(summary['checkpoint'])}"
        figure = rows_figure(rows[: cfg.grid_rows], title=title)
        tensorboard.figure("explain/compare", figure)
        save_figure(figure, run_dir / "compare.png")
    return summary


def write_pictures(
    rows: list[Row], run_dir: Path, tensorboard: TensorBoard, grid_rows: int
) -> None:
    """images/<name>.png per image (all methods side by side) and grid.png for several images."""
    (run_dir / "images").mkdir(exist_ok=True)
    for row in rows:
        figure = rows_figure([row])
        tensorboard.figure(f"explain/{row.name}", figure)
        save_figure(figure, run_dir / "images" / f"{row.name}.png")
    if len(rows) > 1:
        save_figure(rows_figure(rows[:grid_rows]), run_dir / "grid.png")


def prediction_record(row: Row) -> dict[str, Any]:
    return {
        "name": row.name,
        "predicted": row.predicted,
        "probability": row.probability,
        "true": row.true,
        "explained": row.target,
    }


def run(cfg: DictConfig) -> dict[str, Any]:
    methods = method_names(
        OmegaConf.to_object(cfg.method) if OmegaConf.is_list(cfg.method) else str(cfg.method)
    )
    torch.manual_seed(cfg.seed)
    path = resolve_checkpoint(str(cfg.ckpt))
    checkpoint = load_checkpoint(path)
    if checkpoint.get("model_kind") == "quantized" and cfg.method != "all":
        # Known before the int8 program is compiled (a minute on this CPU): say it at once.
        needs_gradients = [m for m in methods if method_spec(m).gradients]
        if needs_gradients:
            raise KtaError(
                f"{needs_gradients[0]} needs gradients, but {path} is a quantized int8 program; "
                "use occlusion or kernel_shap, or explain the float checkpoint it came from"
            )
    data = checkpoint["data"]
    classes = checkpoint.get("model_args", {}).get("num_classes", 0)
    class_names = list(checkpoint.get("class_names") or [str(i) for i in range(classes)])
    explainer = explainer_for(cfg, checkpoint)
    batch, loader = load_inputs(cfg, checkpoint, class_names)
    pictures = denormalize(batch.images, data["mean"], data["std"])
    probabilities = explainer.logits(batch.images).softmax(dim=1)
    predicted = probabilities.argmax(dim=1)
    targets = target_classes(cfg.target, predicted, class_names)
    heatmaps = explain_all(explainer, methods, batch.images, targets, cfg.method == "all")
    methods = list(heatmaps)

    run_dir = current_run_dir()
    tensorboard = TensorBoard(run_dir if cfg.logger.tensorboard else None)
    rows = make_rows(
        batch.names, batch.labels, pictures, heatmaps, probabilities, targets, class_names
    )
    write_pictures(rows, run_dir, tensorboard, cfg.grid_rows)
    uses_layer = any(m in ("gradcam", "gradcam_pp", "guided_gradcam") for m in methods)
    if uses_layer and explainer.layer.grid == (1, 1):
        console.print(
            f"[yellow]note[/yellow]: layer {explainer.layer.name} is 1x1 at "
            f"{data['img_size']} px, so CAM heatmaps are constant; pick an earlier layer="
        )
    metrics: dict[str, Any] = {
        "checkpoint": str(path),
        "parent": str(path),
        "methods": methods,
        "layer": explainer.layer.name if uses_layer else None,
        "images": len(rows),
        "predictions": [prediction_record(r) for r in rows],
    }
    if cfg.faithfulness.enabled:
        metrics["faithfulness"] = faithfulness_report(
            cfg, explainer, batch.images, targets, heatmaps, run_dir, tensorboard
        )
    if loader is not None and cfg.views.enabled:
        views = dataset_views(cfg, explainer, loader, methods[0], class_names, run_dir, tensorboard)
        metrics.update(views)
    if cfg.patterns.enabled and pattern_layer_exists(cfg, explainer):
        images = collect(loader, cfg.patterns.images)[0] if loader is not None else batch.images
        metrics["patterns"] = pattern_view(cfg, explainer, images, run_dir, tensorboard)
    if cfg.compare is not None:
        metrics["compare"] = compare_report(
            cfg,
            batch,
            pictures,
            probabilities,
            targets,
            heatmaps,
            class_names,
            run_dir,
            tensorboard,
        )
    tensorboard.close()
    write_metrics(run_dir, metrics)
    mark_latest(run_dir, "explain")
    console.print(
        f"{len(rows)} image(s) explained with {', '.join(methods)}; PNGs in {run_dir / 'images'}"
    )
    console.print(f"run folder: {run_dir}")
    return metrics
