"""What `kta explain` writes: heatmaps per method (pictures and heatmaps.safetensors),
faithfulness curves, data-set views and layer patterns. Typed options, no config."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kta_cli.data.loaders import collect
from kta_cli.errors import KtaError, did_you_mean
from kta_cli.explain import faithfulness as faith
from kta_cli.explain.inputs import Batch
from kta_cli.explain.methods import Explainer, Settings
from kta_cli.explain.overlays import (
    Row,
    curves_figure,
    denormalize,
    make_rows,
    patches_figure,
    rows_figure,
)
from kta_cli.explain.store import write_heatmaps
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

CAM_METHODS = ("gradcam", "gradcam_pp", "guided_gradcam")


@dataclass
class FaithfulnessOptions:
    enabled: bool = True
    steps: int = 20
    reference: str = "grey"
    random_repeats: int = 3


@dataclass
class ViewOptions:
    enabled: bool = True
    mistakes: int = 8
    images: int = 2048


@dataclass
class PatternOptions:
    enabled: bool = True
    layer: str | None = None
    channels: list[int] | None = None
    count: int = 8
    top: int = 8
    patch: int | None = None
    images: int = 512


@dataclass
class ReportOptions:
    split: str = "test"
    grid_rows: int = 16
    seed: int = 0
    faithfulness: FaithfulnessOptions = field(default_factory=FaithfulnessOptions)
    views: ViewOptions = field(default_factory=ViewOptions)
    patterns: PatternOptions = field(default_factory=PatternOptions)


class Stopwatch:
    """Seconds per stage and per method, for metrics.json: a slow stage shows where it is."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self.methods: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - started

    def record(self) -> dict[str, dict[str, float]]:
        rounded = {k: round(v, 3) for k, v in self.stages.items()}
        return {"stages": rounded, "methods": {k: round(v, 3) for k, v in self.methods.items()}}


def explainer_for(
    checkpoint: dict[str, Any], *, layer: str | None, settings: Settings, device: torch.device
) -> Explainer:
    """The checkpoint's model, preprocessing as its training data was; quantized programs run
    on x86 CPUs only, whatever `device` says."""
    data = checkpoint["data"]
    if checkpoint.get("model_kind") == "quantized":
        device = torch.device("cpu")
    return Explainer(
        model_from_checkpoint(checkpoint),
        mean=data["mean"],
        std=data["std"],
        img_size=data["img_size"],
        layer=layer,
        settings=settings,
        device=device,
    )


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
    stopwatch: Stopwatch | None = None,
) -> dict[str, torch.Tensor]:
    """Heatmaps per method, computed `batch_size` images at a time (memory stays bounded).

    With `skip_unrunnable` (method=all), a method this model cannot run is left out with a note.
    `stopwatch` collects the seconds each method took.
    """
    size = explainer.settings.batch_size
    heatmaps = {}
    for method in methods:
        started = time.perf_counter()
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
        if stopwatch is not None:
            stopwatch.methods[method] = time.perf_counter() - started
    if not heatmaps:
        raise KtaError("no method can run on this model; see the notes above")
    return heatmaps


def faithfulness_report(
    options: FaithfulnessOptions,
    explainer: Explainer,
    images: torch.Tensor,
    targets: torch.Tensor,
    heatmaps: dict[str, torch.Tensor],
    *,
    seed: int,
    run_dir: Path,
    tensorboard: TensorBoard,
) -> dict[str, dict[str, Any]]:
    rows, deletion, insertion = faith.evaluate_methods(
        explainer.logits,  # batches on the model's device, logits back on the CPU
        images,
        targets,
        heatmaps,
        explainer.reference(options.reference, images),
        steps=options.steps,
        batch_size=explainer.settings.batch_size,
        repeats=options.random_repeats,
        seed=seed,
    )
    figure = curves_figure(deletion, insertion)
    tensorboard.figure("explain/faithfulness", figure)
    save_figure(figure, run_dir / "faithfulness.png")
    console.print(faith.rich_table(rows))
    return rows


def dataset_views(
    options: ViewOptions,
    explainer: Explainer,
    loader: Any,
    method: str,
    class_names: list[str],
    *,
    split: str,
    run_dir: Path,
    tensorboard: TensorBoard,
) -> dict[str, Any]:
    """Per-class accuracy over the whole split, and its most confident mistakes explained."""
    images, labels = collect(loader, options.images)
    probabilities = explainer.logits(images).softmax(dim=1)
    per_class = class_accuracy(probabilities.argmax(dim=1), labels, class_names)
    ranked = list(per_class)
    views: dict[str, Any] = {
        "per_class_acc": per_class,
        "hardest_classes": ranked[:3],
        "easiest_classes": ranked[::-1][:3],
    }
    print_table("classes, hardest first (accuracy)", per_class)
    wrong = confident_mistakes(probabilities, labels, options.mistakes)
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
        names = [f"{split}_{int(i):04d}" for i in wrong]
        pictures = denormalize(images[wrong], explainer.mean, explainer.std)
        rows = make_rows(
            names, labels[wrong], pictures, heat, probabilities[wrong], predicted, class_names
        )
        figure = rows_figure(rows, title=f"most confident mistakes ({method})")
        tensorboard.figure("explain/mistakes", figure)
        save_figure(figure, run_dir / "mistakes.png")
    return views


def pattern_layer_exists(options: PatternOptions, explainer: Explainer) -> bool:
    """False (with a note) when the model has no spatial layer and none was named."""
    if options.layer is not None:
        return True  # a wrong name is a real mistake, reported by pattern_view
    try:
        explainer.target_layer(explainer.layer_name)
    except KtaError as error:
        console.print(f"[yellow]pattern view skipped[/yellow]: {error}")
        return False
    return True


def pattern_view(
    options: PatternOptions,
    explainer: Explainer,
    images: torch.Tensor,
    *,
    run_dir: Path,
    tensorboard: TensorBoard,
) -> dict[str, Any]:
    """Patches that excite the chosen channels of a layer most (the layer-by-layer view)."""
    pictures = denormalize(images, explainer.mean, explainer.std)
    layer = explainer.target_layer(options.layer or explainer.layer.name)
    batch_size = explainer.settings.batch_size
    maps = layer_maps(explainer.model, layer.module, images, batch_size, explainer.device)
    channels = options.channels
    channels = list(channels) if channels is not None else strongest_channels(maps, options.count)
    patches = top_patches(maps, pictures, channels, top=options.top, patch=options.patch)
    figure = patches_figure(patches, layer.name)
    tensorboard.figure("explain/patterns", figure)
    save_figure(figure, run_dir / "patterns.png")
    return {"layer": layer.name, "channels": channels}


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


def explain_report(
    explainer: Explainer,
    batch: Batch,
    loader: Any,
    heatmaps: dict[str, torch.Tensor],
    probabilities: torch.Tensor,
    targets: torch.Tensor,
    class_names: list[str],
    *,
    options: ReportOptions,
    run_dir: Path,
    tensorboard: TensorBoard,
    stopwatch: Stopwatch | None = None,
) -> dict[str, Any]:
    """Pictures, heatmaps.safetensors, and the faithfulness, data-set and pattern views
    (each timed as a stage of `stopwatch`)."""
    watch = stopwatch or Stopwatch()
    methods = list(heatmaps)
    pictures = denormalize(batch.images, explainer.mean, explainer.std)
    rows = make_rows(
        batch.names, batch.labels, pictures, heatmaps, probabilities, targets, class_names
    )
    with watch.stage("pictures"):
        write_pictures(rows, run_dir, tensorboard, options.grid_rows)
        write_heatmaps(
            run_dir / "heatmaps.safetensors", heatmaps, batch.names, targets,
            probabilities.argmax(dim=1), class_names=class_names,
        )  # fmt: skip
    uses_layer = any(m in CAM_METHODS for m in methods)
    if uses_layer and explainer.layer.grid == (1, 1):
        console.print(
            f"[yellow]note[/yellow]: layer {explainer.layer.name} is 1x1 at "
            f"{explainer.img_size} px, so CAM heatmaps are constant; pick an earlier layer="
        )
    metrics: dict[str, Any] = {
        "methods": methods,
        "layer": explainer.layer.name if uses_layer else None,
        "images": len(rows),
        "predictions": [prediction_record(r) for r in rows],
    }
    if options.faithfulness.enabled:
        with watch.stage("faithfulness"):
            metrics["faithfulness"] = faithfulness_report(
                options.faithfulness, explainer, batch.images, targets, heatmaps,
                seed=options.seed, run_dir=run_dir, tensorboard=tensorboard,
            )  # fmt: skip
    if loader is not None and options.views.enabled:
        with watch.stage("views"):
            metrics.update(
                dataset_views(
                    options.views,
                    explainer,
                    loader,
                    methods[0],
                    class_names,
                    split=options.split,
                    run_dir=run_dir,
                    tensorboard=tensorboard,
                )  # fmt: skip
            )
    patterns = options.patterns
    if patterns.enabled and pattern_layer_exists(patterns, explainer):
        with watch.stage("patterns"):
            images = collect(loader, patterns.images)[0] if loader is not None else batch.images
            metrics["patterns"] = pattern_view(
                patterns, explainer, images, run_dir=run_dir, tensorboard=tensorboard
            )
    return metrics
