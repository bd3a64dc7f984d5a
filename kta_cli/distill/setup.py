"""What a distillation run is built from: teacher, transfer set, loss options, teacher cache."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kta_cli.data.datasets import DataSpec
from kta_cli.data.loaders import InMemoryLoader
from kta_cli.engine.checkpoint import resolve_checkpoint
from kta_cli.engine.distill_task import DistillationTask
from kta_cli.engine.teacher_cache import (
    cache_key,
    load_or_compute,
    why_not_cacheable,
    with_example_ids,
)
from kta_cli.errors import KtaError
from kta_cli.loading import build_model, load_weights, model_from_checkpoint
from kta_cli.losses.schedules import ValueSchedule

log = logging.getLogger(__name__)
WEIGHT_SUFFIXES = (".ckpt", ".pt", ".pth", ".safetensors", ".bin")
DEFAULT_TEACHER = "outputs/train/latest"


@dataclass
class DistillOptions:
    """The distillation loss and its data: configs/distill/*.yaml, typed."""

    temperature: ValueSchedule
    alpha: ValueSchedule
    kd_weight: float = 0.0
    mse_weight: float = 0.0
    hint_weight: float = 1.0
    hints: list[tuple[str, str]] = field(default_factory=list)  # (student layer, teacher layer)
    cache: bool | str = "auto"
    cache_dir: str | None = None
    omit_class: int | None = None
    baseline: bool = False


def value_schedule(
    name: str, *, start: float, end: float | None, kind: str, milestones: list[float]
) -> ValueSchedule:
    """distill.<name>'s schedule; a wrong kind or a missing end value names the key."""
    try:
        return ValueSchedule(
            start=float(start),
            end=None if end is None else float(end),
            kind=str(kind),
            milestones=tuple(float(m) for m in milestones),
        )
    except KtaError as error:
        raise KtaError(f"distill.{name}_schedule: {error}") from error


def looks_like_path(value: str) -> bool:
    return (
        value == "latest"
        or "/" in value
        or value.endswith(WEIGHT_SUFFIXES)
        or (Path(value).exists())
    )


def teacher_source(name: str | None, checkpoint: str | None) -> tuple[Path, str | None]:
    """(checkpoint file, timm name or None): teacher=<path> arrives as teacher.name, a path."""
    if name and looks_like_path(name):
        name, checkpoint = None, name
    if not checkpoint:
        raise KtaError(f"teacher {name} needs weights: add teacher.checkpoint=<file>")
    if checkpoint == "latest":
        checkpoint = DEFAULT_TEACHER
    if checkpoint == DEFAULT_TEACHER and not Path(checkpoint).exists():
        raise KtaError(
            f"no teacher: {DEFAULT_TEACHER} does not exist; run `kta train` first or pass "
            "teacher=<checkpoint or run folder>"
        )
    return resolve_checkpoint(checkpoint), name


FOLLOW_TEACHER = ("img_size", "mean", "std")  # null in configs/distill.yaml: the teacher's


def _changed_keys(data: dict[str, Any]) -> set[str]:
    """Keys of `data` that differ from the data schema's defaults (user or experiment set them)."""
    defaults = dataclasses.asdict(DataSpec())
    return {
        key
        for key, value in data.items()
        if key not in FOLLOW_TEACHER and key in defaults and value != defaults[key]
    } | {key for key in FOLLOW_TEACHER if data.get(key) is not None}


def transfer_data(
    data: dict[str, Any],
    teacher: dict[str, Any] | None,
    *,
    data_chosen: bool = True,
    given: Iterable[str] = (),
) -> dict[str, Any]:
    """The transfer data: by default the teacher's own data set and options, else `data`.

    data_chosen: the user (or an experiment) picked a data set with data=<name>; then `data` is
    the transfer set and only img_size/mean/std left null come from the teacher. Otherwise the
    teacher's recorded data options are the base, and the data.* keys the user set (`given`, and
    any that differ from the schema's defaults) replace theirs: distill needs no data options.
    """
    recorded = (teacher or {}).get("data", {})
    trained_with = dict((teacher or {}).get("config", {}).get("data") or {})
    if data_chosen or not trained_with:
        values = dict(data)
    else:
        values = {**trained_with, **{k: data[k] for k in _changed_keys(data) | set(given)}}
    for key in FOLLOW_TEACHER:
        if values.get(key) is None:
            values[key] = recorded.get(key, getattr(DataSpec(), key))
    trained_on = trained_with.get("name")
    if trained_on and trained_on != values["name"]:
        log.warning("teacher was trained on %s, the transfer set is %s", trained_on, values["name"])
    return values


def load_teacher(
    path: Path,
    name: str | None,
    checkpoint: dict[str, Any] | None,
    *,
    num_classes: int,
    img_size: int,
) -> tuple[nn.Module, str]:
    """The frozen teacher and its architecture name; its class count must match the data's."""
    if checkpoint is not None:
        teacher_classes = checkpoint["model_args"]["num_classes"]
        if teacher_classes != num_classes:
            raise KtaError(
                f"the teacher {path} predicts {teacher_classes} classes, the transfer data has "
                f"{num_classes}; teacher and student must share classes (pick data= / "
                "data.classes to match the teacher)"
            )
        model, arch = model_from_checkpoint(checkpoint), checkpoint["model_args"]["name"]
    else:
        model = build_model(name, num_classes=num_classes, img_size=img_size)
        if load_weights(model, path)["replaced"]:
            raise KtaError(
                f"the teacher weights {path} have a classifier for another class count than "
                f"the transfer data's {num_classes}; teacher and student must share classes"
            )
        arch = name
    return model.eval().requires_grad_(False), arch


def without_class(loader: Any, omitted: int | None, num_classes: int) -> Any:
    """The training loader without one class (Hinton's dark-knowledge transfer set)."""
    if omitted is None:
        return loader
    if omitted >= num_classes:
        raise KtaError(
            f"distill.omit_class={omitted} is not a class index in [0, {num_classes - 1}]"
        )
    if not isinstance(loader, InMemoryLoader):
        raise KtaError("distill.omit_class works with in-memory data sets (digits, shapes, fake)")
    keep = (loader.labels != omitted).nonzero().flatten()
    return InMemoryLoader(
        loader.images[keep],
        loader.labels[keep],
        batch_size=loader.batch_size,
        shuffle=loader.shuffle,
        seed=loader.seed,
        drop_last=loader.drop_last,
        transform=loader.transform,
        rank=loader.rank,
        world_size=loader.world_size,
    )


def distillation_task(
    options: DistillOptions, student: nn.Module, teacher: nn.Module, train_loader: Any, epochs: int
) -> DistillationTask:
    example = next(iter(train_loader))[0][:2] if options.hints else None
    train_loader.set_epoch(0, 0)
    return DistillationTask(
        student,
        teacher,
        temperature=options.temperature,
        alpha=options.alpha,
        total_steps=epochs * len(train_loader),
        kd_weight=options.kd_weight,
        mse_weight=options.mse_weight,
        hint_weight=options.hint_weight,
        hints=list(options.hints),
        example_input=example,
    )


def prepare_cache(
    options: DistillOptions,
    task: DistillationTask,
    train_loader: Any,
    data_values: dict[str, Any],
    teacher_path: Path,
    device: torch.device,
) -> tuple[Any, str]:
    """(loader to train on, how teacher outputs are obtained); fills the task's cache if used."""
    reason = why_not_cacheable(train_loader, data_values.get("augment") or {})
    if options.cache is True and reason:
        raise KtaError(f"distill.cache=true but {reason}; use distill.cache=auto or false")
    if options.cache is False or reason:
        return train_loader, f"teacher runs every step ({reason or 'distill.cache=false'})"
    key = cache_key(
        teacher_path,
        {**data_values, "omit_class": options.omit_class},
        task.teacher_layers,
    )
    folder = Path(options.cache_dir) if options.cache_dir else None
    outputs, how = load_or_compute(
        task.teacher_outputs, train_loader, device=device, folder=folder, key=key
    )
    task.use_cache({k: v.to(device) for k, v in outputs.items()})
    return with_example_ids(train_loader), f"cached per example ({how})"
