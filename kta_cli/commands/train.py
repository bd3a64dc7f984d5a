"""`kta train`: build data, model and strategy from the config; the run builder does the rest."""

from __future__ import annotations

import logging
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from kta_cli.data.datasets import DataBundle, spec_from_dict
from kta_cli.engine.run import (
    TrainingRun,
    checkpoint_metadata,
    load_resumable,
    resume_path,
)
from kta_cli.engine.runtime import Runtime, run_in_runtime, shared_run_dir
from kta_cli.engine.settings import RunSettings
from kta_cli.engine.state import seed_everything
from kta_cli.errors import KtaError
from kta_cli.loading import build_model
from kta_cli.report.run_folder import config_as_dict
from kta_cli.schema.store import section
from kta_cli.strategies.base import trainable_reporter
from kta_cli.strategies.features import HeadOnly, cached_feature_data
from kta_cli.train_tasks import task_kind

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    return run_in_runtime(
        "train",
        device=cfg.trainer.device,
        threads=cfg.trainer.threads,
        body=lambda runtime: train(cfg, runtime),
    )


def strategy_name() -> str:
    try:
        return HydraConfig.get().runtime.choices.get("strategy") or "custom"
    except ValueError:
        return "custom"


def train(cfg: DictConfig, runtime: Runtime) -> dict[str, Any]:
    kind = task_kind(cfg)
    trainer = section(cfg, "trainer")
    if kind.monitor is not None:
        trainer["early_stopping"]["monitor"] = kind.monitor(trainer["early_stopping"]["monitor"])
    settings = RunSettings.from_sections(
        trainer,
        section(cfg, "optim"),
        section(cfg, "sched"),
        device=runtime.device,
        tensorboard=bool(cfg.logger.tensorboard),
    )
    run_dir = shared_run_dir(runtime)
    seed_everything(cfg.seed + runtime.rank)
    data = kind.data(cfg, spec_from_dict(section(cfg, "data")), runtime)
    resume_from = resume_path(cfg.trainer.resume, "train")
    model = build_model(
        cfg.model.name,
        num_classes=len(data.class_names),
        img_size=data.spec.img_size,
        pretrained=cfg.model.pretrained,
        checkpoint=None if resume_from else cfg.model.checkpoint,
        drop_rate=cfg.model.drop_rate,
        init=cfg.model.init,
    )
    plan = instantiate(cfg.strategy)(model)
    plan.check_trainable(strategy_name())
    if plan.cache_features and kind.no_feature_cache:
        raise KtaError(kind.no_feature_cache.format(strategy=strategy_name()))
    body_note = plan.body_note(body_loaded=bool(cfg.model.pretrained or cfg.model.checkpoint))
    if body_note and runtime.is_main:
        log.warning("strategy %s, body: %s", strategy_name(), body_note)
    training = TrainingRun(command="train", run_dir=run_dir, runtime=runtime, settings=settings)
    if training.tensorboard.writer is not None:
        with torch.random.fork_rng():  # a preview must not move the training's random streams
            training.tensorboard.images("train/images", next(iter(data.train))[0])
    resumed = load_resumable(resume_from) if resume_from else None
    if resumed is not None:
        model.load_state_dict(resumed["model"])
    model.to(runtime.device)
    if settings.loop.channels_last:
        model.to(memory_format=torch.channels_last)
    task, data, extra_groups = kind.build(cfg, model, data, runtime)
    plan.param_groups.extend(extra_groups)
    if plan.cache_features:
        data = cached_feature_data(model, data, runtime.device)
        task.model = HeadOnly(model)
    metrics = training.fit(
        task,
        model=model,
        param_groups=plan.param_groups,
        train=data.train,
        val=data.val,
        test=data.test,
        metadata=metadata_of(cfg, data, plan.head, parent=resume_from or cfg.model.checkpoint),
        resumed=resumed,
        epoch_hooks=[*plan.epoch_hooks, trainable_reporter(model, training.tensorboard)],
    )
    if kind.finish is not None:
        metrics.update(kind.finish(cfg, data, model))
    training.finish(
        metrics,
        hparams=hparams_of(cfg),
        title=f"kta train: {cfg.model.name} on {data.spec.name}",
        notes={"body": body_note} if body_note else None,
    )
    return metrics


def metadata_of(cfg: DictConfig, data: DataBundle, head: Any, parent: Any) -> dict[str, Any]:
    """What the checkpoint says about itself: how to rebuild the model, its data, its parent."""
    model_args = {
        "name": cfg.model.name,
        "num_classes": len(data.class_names),
        "img_size": data.spec.img_size,
        **({"head": head} if head else {}),
    }
    return checkpoint_metadata(
        command="train",
        model_args=model_args,
        data=data.spec.describe(),
        class_names=data.class_names,
        config=config_as_dict(cfg),
        parent=parent,
    )


def hparams_of(cfg: DictConfig) -> dict[str, Any]:
    return {
        "model": cfg.model.name,
        "data": cfg.data.name,
        "optim": cfg.optim.name,
        "lr": cfg.optim.lr,
        "sched": cfg.sched.name,
        "epochs": cfg.trainer.epochs,
        "batch_size": cfg.data.batch_size,
        "label_smoothing": cfg.loss.label_smoothing,
    }
