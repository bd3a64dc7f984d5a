"""The `task=` choices of `kta train`, and what each one changes in a run.

A choice can change four things: the loaders (multitask labels, DANN's paired target batches),
the module the loop trains (a classifier, SimCLR's projector, an attacker in the loop, ...),
whether the head-only feature cache may be used, and what is added to metrics.json at the end.
`kta train` reads this table instead of asking `if task == ...` at each step, so a new task is
one entry here and a module in its own package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from kta_cli.data.datasets import DataBundle, DataSpec, build_data
from kta_cli.engine.runtime import Runtime
from kta_cli.engine.tasks import ClassificationTask
from kta_cli.schema.store import section

Built = tuple[nn.Module, DataBundle, list[dict[str, Any]]]  # task, data, extra param groups


def plain_data(cfg: DictConfig, spec: DataSpec, runtime: Runtime) -> DataBundle:
    return build_data(spec, rank=runtime.rank, world_size=runtime.world_size)


def multitask_data(cfg: DictConfig, spec: DataSpec, runtime: Runtime) -> DataBundle:
    from kta_cli.data.multitask import build_multitask_data

    tasks = list(cfg.task.tasks) if cfg.task.tasks else None
    return build_multitask_data(spec, tasks, rank=runtime.rank, world_size=runtime.world_size)


def dann_data(cfg: DictConfig, spec: DataSpec, runtime: Runtime) -> DataBundle:
    from kta_cli.adaptation.data import dann_data as paired

    return paired(spec, rank=runtime.rank, world_size=runtime.world_size)


def classify(cfg: DictConfig, model: nn.Module, data: DataBundle, runtime: Runtime) -> Built:
    return ClassificationTask(model, cfg.loss.label_smoothing), data, []


def multitask(cfg: DictConfig, model: nn.Module, data: DataBundle, runtime: Runtime) -> Built:
    from kta_cli.engine.multitask import MultiTaskTask

    weights = OmegaConf.to_container(cfg.task.weights) if cfg.task.weights else None
    heads = [(name, len(names)) for name, names in data.tasks]
    task = MultiTaskTask(model, heads, weighting=cfg.task.weighting, weights=weights)
    return task, data, []


def simclr(cfg: DictConfig, model: nn.Module, data: DataBundle, runtime: Runtime) -> Built:
    from kta_cli.ssl.setup import SimCLRSettings, build_simclr, projector_group

    settings = SimCLRSettings.from_section(section(cfg, "task"))
    task, data = build_simclr(model, data, settings, world_size=runtime.world_size)
    return task, data, [projector_group(task, cfg.strategy.lr)]


def simclr_linear_eval(cfg: DictConfig, data: DataBundle, model: nn.Module) -> dict[str, Any]:
    if not cfg.task.linear_eval:
        return {}
    from kta_cli.ssl.setup import final_linear_eval

    return final_linear_eval(data, model)


def simclr_monitor(monitor: str) -> str:
    from kta_cli.ssl.setup import monitor_for_simclr

    return monitor_for_simclr(monitor)


def adversarial(cfg: DictConfig, model: nn.Module, data: DataBundle, runtime: Runtime) -> Built:
    from kta_cli.robustness.task import adversarial_task
    from kta_cli.schema.robustness import parse_eps

    described, settings = data.spec.describe(), cfg.task
    task = adversarial_task(
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
    return task, data, []


def dann(cfg: DictConfig, model: nn.Module, data: DataBundle, runtime: Runtime) -> Built:
    from kta_cli.adaptation.dann import DannTask

    task = DannTask(
        model,
        img_size=data.spec.img_size,
        total_steps=cfg.trainer.epochs * len(data.train),
        weight=cfg.task.weight,
        gamma=cfg.task.gamma,
        schedule=cfg.task.schedule,
        hidden=cfg.task.hidden,
    )
    return task, data, []


@dataclass(frozen=True)
class TaskKind:
    build: Callable[[DictConfig, nn.Module, DataBundle, Runtime], Built]
    data: Callable[[DictConfig, DataSpec, Runtime], DataBundle] = plain_data
    # Why strategy.cache_features (a head trained on cached features) cannot serve this task;
    # None: it can. {strategy} is filled with the strategy's name.
    no_feature_cache: str | None = None
    monitor: Callable[[str], str] | None = None  # rewrites the early-stopping monitor
    finish: Callable[[DictConfig, DataBundle, nn.Module], dict[str, Any]] | None = None


TASKS = {
    "classify": TaskKind(classify),
    "multitask": TaskKind(multitask, data=multitask_data),
    "simclr": TaskKind(
        simclr,
        no_feature_cache="task=simclr trains the backbone; drop strategy.cache_features=true",
        monitor=simclr_monitor,
        finish=simclr_linear_eval,
    ),
    "adversarial": TaskKind(
        adversarial,
        no_feature_cache=(
            "strategy={strategy} trains on cached features, which an input attack cannot "
            "reach; use strategy=freeze (the same head-only training on images)"
        ),
    ),
    "dann": TaskKind(
        dann,
        data=dann_data,
        no_feature_cache="task=dann trains the backbone; strategy={strategy} freezes it",
    ),
}


def task_kind(cfg: DictConfig) -> TaskKind:
    """The entry for cfg.task.name (the schema already refused names that are not here)."""
    return TASKS[cfg.get("task", {}).get("name", "classify")]
