"""`kta embed ckpt=... [compare=<ckpt>]`: t-SNE map, TensorBoard projector, separation figures.

Reads the config and builds typed options; the work is kta_cli/fewshot/ (source.py: data and
feature model, embed.py: t-SNE, separation, figure, projector files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from kta_cli.engine.checkpoint import load_checkpoint, resolve_checkpoint
from kta_cli.engine.evaluate import checkpoint_data
from kta_cli.engine.runtime import resolve_device
from kta_cli.errors import KtaError
from kta_cli.fewshot.embed import embed_figure, separation, tsne_map, write_projector
from kta_cli.fewshot.source import (
    FeatureOptions,
    Sample,
    feature_model,
    novel_and_base_values,
    sampled_features,
)
from kta_cli.report.figures import save_figure
from kta_cli.report.reporter import TensorBoard, console, print_table
from kta_cli.report.run_folder import current_run_dir, mark_latest, write_metrics
from kta_cli.schema.store import section


def user_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task)


def label_of(cfg: DictConfig, checkpoint: dict[str, Any], path: Path) -> str:
    name = "pixels" if cfg.features == "pixels" else checkpoint["model_args"]["name"]
    if cfg.features == "random":
        name += " (random init)"
    return f"{name} [{path.parent.name}/{path.name}]"


def one_sample(
    cfg: DictConfig, checkpoint: dict[str, Any], values: dict[str, Any], index: Any = None
) -> tuple[Sample, Any]:
    options = FeatureOptions(source=cfg.features, layer=cfg.layer, pool=cfg.pool,
                             batch_size=cfg.batch_size, seed=cfg.seed)  # fmt: skip
    model = feature_model(checkpoint, options, resolve_device(cfg.trainer.device))
    return sampled_features(model, values, cfg.split, options, points=cfg.embed.points,
                            index=index)  # fmt: skip


def run(cfg: DictConfig) -> dict[str, Any]:
    path = resolve_checkpoint(str(cfg.ckpt))
    checkpoint = load_checkpoint(path)
    values, _ = novel_and_base_values(checkpoint, section(cfg, "data"), user_overrides())
    sample, index = one_sample(cfg, checkpoint, values)
    runs = [(label_of(cfg, checkpoint, path), path, sample)]
    if cfg.compare is not None:
        other_path = resolve_checkpoint(str(cfg.compare))
        other = load_checkpoint(other_path)
        other_sample, _ = one_sample(cfg, other, checkpoint_data(other, values), index)
        if not (other_sample.labels == sample.labels).all():
            raise KtaError(f"compare={cfg.compare} sees other images; it needs the same data")
        runs.append((label_of(cfg, other, other_path), other_path, other_sample))

    run_dir = current_run_dir()
    embed = cfg.embed
    panels, metrics = [], {"checkpoint": str(path), "parent": str(path), "data": values,
                           "split": cfg.split, "embeddings": []}  # fmt: skip
    for label, where, item in runs:
        figures = separation(item.features, item.labels, k=embed.knn_k)
        coords = tsne_map(item.features, pca_dims=embed.pca_dims, perplexity=embed.perplexity,
                          seed=cfg.seed)  # fmt: skip
        title = f"{label}\nkNN {figures['knn_acc']:.3f}, silhouette {figures['silhouette']:.3f}"
        panels.append((title, coords))
        dim = item.features.shape[1]
        metrics["embeddings"].append(
            {"label": label, "checkpoint": str(where), "feature_dim": dim, **figures}
        )
    thumbnails = sample.pictures if embed.thumbnails else None
    figure = embed_figure(panels, sample.labels, sample.class_names, thumbnails,
                          embed.thumbnail_count)  # fmt: skip
    tensorboard = TensorBoard(run_dir if cfg.logger.tensorboard else None)
    tensorboard.figure("embed/tsne", embed_figure(panels, sample.labels, sample.class_names))
    tensorboard.close()
    save_figure(figure, run_dir / "tsne.png")
    if embed.projector:
        names = [sample.class_names[c] for c in sample.labels.tolist()]
        tags = [f"{i}_{label.split(' ')[0]}" for i, (label, _, _) in enumerate(runs)]
        pairs = [(tag, item.features) for tag, (_, _, item) in zip(tags, runs, strict=True)]
        write_projector(run_dir / "projector", pairs, names, sample.pictures)
    write_metrics(run_dir, metrics)
    mark_latest(run_dir, "embed")
    for entry in metrics["embeddings"]:
        shown = ("points", "feature_dim", "knn_acc", "silhouette")
        print_table(f"kta embed: {entry['label']}", {k: entry[k] for k in shown})
    console.print(f"t-SNE map: {run_dir / 'tsne.png'}; projector: tensorboard --logdir "
                  f"{run_dir / 'projector'}")  # fmt: skip
    console.print(f"run folder: {run_dir}")
    return metrics
