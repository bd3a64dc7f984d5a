"""What `kta train task=simclr` builds around the run builder: the task, the kNN loaders, the
projection head's parameter group, and the checks a user can act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from kta_cli.data.loaders import InMemoryLoader
from kta_cli.data.spec import DataBundle
from kta_cli.errors import KtaError
from kta_cli.ssl.knn import KnnEvalLoader, unaugmented
from kta_cli.ssl.linear_eval import linear_eval
from kta_cli.ssl.task import SimCLRTask
from kta_cli.ssl.views import ViewSettings

MONITOR = "val_knn_acc"


@dataclass
class SimCLRSettings:
    temperature: float = 0.5
    proj_hidden: int | None = None
    proj_dim: int = 128
    views: ViewSettings = field(default_factory=ViewSettings)
    knn_k: int = 200
    knn_temperature: float = 0.07
    linear_eval: bool = False

    @classmethod
    def from_section(cls, task: dict[str, Any]) -> SimCLRSettings:
        """From the plain task section (configs/task/simclr.yaml, schema SimCLRConfig)."""
        views = ViewSettings(
            crop_scale=tuple(task["crop_scale"]),
            hflip=task["hflip"],
            jitter=task["jitter"],
            jitter_p=task["jitter_p"],
            grayscale_p=task["grayscale_p"],
            blur_p=task["blur_p"],
        )
        keys = ("temperature", "proj_hidden", "proj_dim", "knn_k", "knn_temperature")
        return cls(views=views, linear_eval=task["linear_eval"], **{key: task[key] for key in keys})


def monitor_for_simclr(monitor: str) -> str:
    """The trainer's default monitor (val_acc) is a classifier's, which SimCLR has not: the kNN
    accuracy stands in for it. Any other choice (train_loss, ...) is kept."""
    return MONITOR if monitor == "val_acc" else monitor


def check_batch(data: DataBundle, world_size: int) -> None:
    """Every image's negatives are the other images of its batch: one full batch at least."""
    batch = data.spec.batch_size
    train = data.train  # an InMemoryLoader is its own `dataset`, whose len counts batches
    images = len(train.labels) if isinstance(train, InMemoryLoader) else len(train.dataset)
    per_process = images // max(world_size, 1)
    if batch < 2:
        raise KtaError("task=simclr needs data.batch_size >= 2 (the other images are negatives)")
    if per_process < batch:
        where = f" ({per_process} per process)" if world_size > 1 else ""
        raise KtaError(
            f"task=simclr: the training split of {data.spec.name} has {images} images{where}, "
            f"fewer than one batch of data.batch_size={batch}; lower data.batch_size or use "
            "more data"
        )


def build_simclr(
    model: nn.Module, data: DataBundle, settings: SimCLRSettings, *, world_size: int = 1
) -> tuple[SimCLRTask, DataBundle]:
    """The task on `model`, and `data` with val/test loaders that carry the kNN feature bank."""
    check_batch(data, world_size)
    described = data.spec.describe()
    task = SimCLRTask(
        model,
        img_size=described["img_size"],
        mean=described["mean"],
        std=described["std"],
        num_classes=len(data.class_names),
        temperature=settings.temperature,
        proj_hidden=settings.proj_hidden,
        proj_dim=settings.proj_dim,
        views=settings.views,
        knn_k=settings.knn_k,
        knn_temperature=settings.knn_temperature,
    )
    bank = unaugmented(data.train, data.spec.eval_batch_size)
    monitored = DataBundle(
        data.train,
        KnnEvalLoader(data.val, bank, task),
        KnnEvalLoader(data.test, bank, task) if data.test is not None else None,
        data.class_names,
        data.spec,
    )
    return task, monitored


def projector_group(task: SimCLRTask, lr: float) -> dict[str, Any]:
    """The projection head's parameter group, at the strategy's base rate."""
    return {"params": list(task.projector.parameters()), "name": "projector", "lr": lr}


def final_linear_eval(data: DataBundle, model: nn.Module) -> dict[str, float]:
    """task.linear_eval: a probe on the frozen features of `model` (the best weights, once the
    run builder has scored the test split), fitted on the training split."""
    scored = data.test if data.test is not None else data.val
    return linear_eval(model, scored.bank_loader, scored.loader)
