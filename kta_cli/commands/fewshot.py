"""`kta fewshot ckpt=... [data.classes=[5,6,7,8,9]]`: few-shot accuracy on frozen features.

Reads the config and builds typed options; the work is kta_cli/fewshot/ (source.py: data and
feature model, features.py: extraction and cache, episodes.py, methods.py, report.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from kta_cli.engine.checkpoint import load_checkpoint, resolve_checkpoint
from kta_cli.engine.runtime import resolve_device
from kta_cli.fewshot.methods import MethodOptions, check_methods
from kta_cli.fewshot.report import (
    EpisodeSettings,
    evaluate_fewshot,
    results_table,
    save_plot,
    tensorboard_scalars,
)
from kta_cli.fewshot.source import (
    FeatureOptions,
    feature_model,
    novel_and_base_values,
    split_features,
)
from kta_cli.report.reporter import TensorBoard, console
from kta_cli.report.run_folder import current_run_dir, mark_latest, write_metrics
from kta_cli.schema.store import section

CACHE = Path("outputs") / ".cache" / "fewshot"


def user_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task)


def episode_settings(cfg: DictConfig) -> EpisodeSettings:
    options = cfg.fewshot
    return EpisodeSettings(
        ways=options.ways, shots=tuple(options.shots), queries=options.queries,
        episodes=options.episodes, seed=cfg.seed, methods=tuple(options.methods),
    )  # fmt: skip


def method_options(cfg: DictConfig) -> MethodOptions:
    knn, logreg = cfg.fewshot.knn, cfg.fewshot.logreg
    return MethodOptions(
        knn_k=knn.k, knn_metric=knn.metric, knn_transform=knn.transform,
        logreg_c=float(logreg.C), logreg_max_iter=logreg.max_iter,
        logreg_transform=logreg.transform, logreg_episodes=logreg.episodes,
    )  # fmt: skip


def describe(cfg: DictConfig, checkpoint: dict[str, Any]) -> str:
    source = cfg.fewshot.features
    name = "pixels" if source == "pixels" else checkpoint["model_args"]["name"]
    if source == "random":
        name += " (random init)"
    where = "" if source == "pixels" else f", {cfg.layer or 'pre-logits'}/{cfg.pool}"
    return f"{name}{where}"


def run(cfg: DictConfig) -> dict[str, Any]:
    path = resolve_checkpoint(str(cfg.ckpt))
    checkpoint = load_checkpoint(path)
    novel_values, base_values = novel_and_base_values(
        checkpoint, section(cfg, "data"), user_overrides()
    )
    options = FeatureOptions(source=cfg.fewshot.features, layer=cfg.layer, pool=cfg.pool,
                             batch_size=cfg.batch_size, seed=cfg.seed)  # fmt: skip
    settings, methods = episode_settings(cfg), method_options(cfg)
    check_methods(list(settings.methods), methods)  # before minutes of feature extraction
    model = feature_model(checkpoint, options, resolve_device(cfg.trainer.device))
    cache = (CACHE, path) if cfg.fewshot.cache else None
    novel, hit = split_features(model, novel_values, cfg.fewshot.split, options, cache=cache)
    base_mean, base_count = None, 0
    needs_base = {"nc_cl2n"} & set(settings.methods) or "cl2n" in (
        methods.knn_transform,
        methods.logreg_transform,
    )
    if needs_base:
        base, _ = split_features(model, base_values, "train", options, cache=cache,
                                 limit=cfg.fewshot.base_images)  # fmt: skip
        base_mean, base_count = base.features.mean(dim=0), len(base.labels)
    torch.manual_seed(cfg.seed)
    results = evaluate_fewshot(novel, base_mean, settings, methods)

    run_dir = current_run_dir()
    title = f"{settings.ways}-way few-shot: {describe(cfg, checkpoint)} on {novel_values['name']}"
    tensorboard = TensorBoard(run_dir if cfg.logger.tensorboard else None)
    tensorboard_scalars(tensorboard, results)
    plot = save_plot(run_dir, title, results, tensorboard)
    tensorboard.close()
    metrics = {
        "checkpoint": str(path), "parent": str(path), "features": describe(cfg, checkpoint),
        "source": options.source, "layer": cfg.layer, "pool": cfg.pool,
        "novel_data": novel_values, "novel_classes": novel.class_names,
        "novel_images": len(novel.labels), "feature_dim": novel.features.shape[1],
        "base_images": base_count,
        "ways": settings.ways, "queries": settings.queries, "features_cached": hit,
        "config": OmegaConf.to_container(cfg.fewshot, resolve=True),
        "results": results,
    }  # fmt: skip
    write_metrics(run_dir, metrics)
    mark_latest(run_dir, "fewshot")
    console.print(results_table(title, results))
    console.print(f"mean query accuracy ± 95% CI over {settings.episodes} episodes; plot: {plot}")
    console.print(f"run folder: {run_dir} (features of {path})")
    return metrics
