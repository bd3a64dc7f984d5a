"""`kta train`: build data, model and strategy from the config; the run builder does the rest."""

from __future__ import annotations

import logging
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from kta_cli.data.datasets import DataBundle, DataSpec, build_data, spec_from_dict
from kta_cli.engine.run import (
    TrainingRun,
    checkpoint_metadata,
    load_resumable,
    resume_path,
)
from kta_cli.engine.runtime import Runtime, run_in_runtime, shared_run_dir
from kta_cli.engine.settings import RunSettings
from kta_cli.engine.state import seed_everything
from kta_cli.engine.tasks import ClassificationTask
from kta_cli.errors import KtaError
from kta_cli.loading import build_model
from kta_cli.report.run_folder import config_as_dict
from kta_cli.schema.store import section
from kta_cli.strategies.base import trainable_reporter
from kta_cli.strategies.features import HeadOnly, cached_feature_data

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


def is_multitask(cfg: DictConfig) -> bool:
    return cfg.get("task", {}).get("name", "classify") == "multitask"


def is_simclr(cfg: DictConfig) -> bool:
    return cfg.get("task", {}).get("name", "classify") == "simclr"


def build_task_data(cfg: DictConfig, spec: DataSpec, runtime: Runtime) -> DataBundle:
    """The data set's loaders; with task=multitask, one label per task; with task=dann,
    source batches paired with unlabelled target batches."""
    if cfg.task.name == "dann":
        from kta_cli.adaptation.data import dann_data

        return dann_data(spec, rank=runtime.rank, world_size=runtime.world_size)
    if is_multitask(cfg):
        from kta_cli.data.multitask import build_multitask_data

        tasks = cfg.task.tasks
        return build_multitask_data(
            spec, list(tasks) if tasks else None, rank=runtime.rank, world_size=runtime.world_size
        )
    return build_data(spec, rank=runtime.rank, world_size=runtime.world_size)


def build_task(cfg: DictConfig, model: torch.nn.Module, data: DataBundle) -> torch.nn.Module:
    if cfg.task.name == "dann":
        from kta_cli.adaptation.dann import DannTask

        return DannTask(
            model,
            img_size=data.spec.img_size,
            total_steps=cfg.trainer.epochs * len(data.train),
            weight=cfg.task.weight,
            gamma=cfg.task.gamma,
            schedule=cfg.task.schedule,
            hidden=cfg.task.hidden,
        )
    if is_multitask(cfg):
        from kta_cli.engine.multitask import MultiTaskTask

        weights = cfg.task.weights
        return MultiTaskTask(
            model,
            [(name, len(names)) for name, names in data.tasks],
            weighting=cfg.task.weighting,
            weights=OmegaConf.to_container(weights) if weights else None,
        )
    if cfg.task.name == "adversarial":
        from kta_cli.robustness.task import adversarial_task
        from kta_cli.schema.robustness import parse_eps

        described = data.spec.describe()
        settings = cfg.task
        return adversarial_task(
            model,
            mean=described["mean"],
            std=described["std"],
            attack=settings.attack,
            eps=parse_eps(settings.eps, "task.eps"),
            steps=settings.steps,
            step_size=settings.step_size,
            val_steps=settings.val_steps,
            label_smoothing=cfg.loss.label_smoothing,
        )
    return ClassificationTask(model, cfg.loss.label_smoothing)


def train(cfg: DictConfig, runtime: Runtime) -> dict[str, Any]:
    trainer = section(cfg, "trainer")
    if is_simclr(cfg):
        from kta_cli.ssl.setup import monitor_for_simclr

        stopping = trainer["early_stopping"]
        stopping["monitor"] = monitor_for_simclr(stopping["monitor"])
    settings = RunSettings.from_sections(
        trainer,
        section(cfg, "optim"),
        section(cfg, "sched"),
        device=runtime.device,
        tensorboard=bool(cfg.logger.tensorboard),
    )
    run_dir = shared_run_dir(runtime)
    seed_everything(cfg.seed + runtime.rank)
    data = build_task_data(cfg, spec_from_dict(section(cfg, "data")), runtime)
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
    if is_simclr(cfg):
        from kta_cli.ssl.setup import SimCLRSettings, build_simclr, projector_group

        if plan.cache_features:
            raise KtaError("task=simclr trains the backbone; drop strategy.cache_features=true")
        simclr = SimCLRSettings.from_section(section(cfg, "task"))
        task, data = build_simclr(model, data, simclr, world_size=runtime.world_size)
        plan.param_groups.append(projector_group(task, cfg.strategy.lr))
    else:
        task = build_task(cfg, model, data)
    if plan.cache_features and cfg.task.name == "adversarial":
        raise KtaError(
            f"strategy={strategy_name()} trains on cached features, which an input attack "
            "cannot reach; use strategy=freeze (the same head-only training on images)"
        )
    if plan.cache_features:
        if cfg.task.name == "dann":  # the domain loss must reach the backbone
            raise KtaError(f"task=dann trains the backbone; strategy={strategy_name()} freezes it")
        data = cached_feature_data(model, data, runtime.device)
        task.model = HeadOnly(model)
    model_args = {
        "name": cfg.model.name,
        "num_classes": len(data.class_names),
        "img_size": data.spec.img_size,
        **({"head": plan.head} if plan.head else {}),
    }
    metadata = checkpoint_metadata(
        command="train",
        model_args=model_args,
        data=data.spec.describe(),
        class_names=data.class_names,
        config=config_as_dict(cfg),
        parent=resume_from or cfg.model.checkpoint,
    )
    metrics = training.fit(
        task,
        model=model,
        param_groups=plan.param_groups,
        train=data.train,
        val=data.val,
        test=data.test,
        metadata=metadata,
        resumed=resumed,
        epoch_hooks=[*plan.epoch_hooks, trainable_reporter(model, training.tensorboard)],
    )
    if is_simclr(cfg) and simclr.linear_eval:
        from kta_cli.ssl.setup import final_linear_eval

        metrics.update(final_linear_eval(data, model))
    training.finish(
        metrics,
        hparams=hparams_of(cfg),
        title=f"kta train: {cfg.model.name} on {data.spec.name}",
        notes={"body": body_note} if body_note else None,
    )
    return metrics


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
