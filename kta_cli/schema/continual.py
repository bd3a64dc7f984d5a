"""`kta continual` schema: the scenario (a task sequence) and the method (what each step trains).

`method` is a plain mapping checked here, because its EWC key is `lambda` (the paper's name, and
the name the issue asks for), which a dataclass field cannot be called.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from kta_cli.data.spec import DataSpec
from kta_cli.errors import KtaError, did_you_mean
from kta_cli.schema.checks import check_value, non_negative, one_of, positive
from kta_cli.schema.groups import LoggerConfig, ModelConfig, OptimConfig, SchedConfig, TrainerConfig


@dataclass
class ScenarioConfig:
    """scenario=split_digits | split_shapes | shapes_styles (configs/scenario/*.yaml)."""

    name: str = MISSING
    data: str = one_of("digits", "shapes")
    kind: str = one_of("class_split", "styles")  # classes cut into tasks | one style per task
    classes_per_task: int = positive(2)
    tasks: list[list[int]] | None = None  # explicit class lists per task (overrides order)
    styles: list[str] | None = None  # kind=styles: the shapes styles, one task each
    order: list[int] | None = None  # class order (class_split) or style order (styles)
    seed: int | None = None  # with order null: a seeded random order (as Avalanche's seed)
    mode: str = one_of("class_incremental", "task_incremental")  # task-IL masks logits at test


# method options: key -> (default, rule); `name` selects the row
METHOD_OPTIONS: dict[str, dict[str, tuple[Any, dict[str, Any]]]] = {
    "naive": {},
    "joint": {},
    "replay": {
        "buffer_size": (200, positive(0).metadata),
        "buffer": ("reservoir", one_of("reservoir", "class_balanced").metadata),
    },
    "ewc": {
        "lambda": (100.0, non_negative(0).metadata),
        "fisher_batches": (None, positive(0).metadata),  # null: the whole task's training set
    },
    "lwf": {
        "alpha": (1.0, non_negative(0).metadata),
        "temperature": (2.0, positive(0).metadata),
    },
}


def method_options(method: dict[str, Any]) -> dict[str, Any]:
    """The method's options with defaults filled; KtaError for an unknown name, key or value."""
    name = method.get("name")
    if name not in METHOD_OPTIONS:
        raise KtaError(did_you_mean(str(name), METHOD_OPTIONS, what="continual method"))
    known = METHOD_OPTIONS[name]
    for key in method:
        if key != "name" and key not in known:
            options = [f"method.{k}" for k in known] or ["(no options)"]
            raise KtaError(did_you_mean(f"method.{key}", options, what=f"method={name} key"))
    values = {key: method.get(key, default) for key, (default, _) in known.items()}
    for key, (_, metadata) in known.items():
        check_value(metadata, values[key], f"method.{key}")
    return {"name": name, **values}


@dataclass
class ContinualSchema:
    model: ModelConfig = MISSING
    data: DataSpec = MISSING  # its name comes from scenario.data; the other keys apply
    scenario: ScenarioConfig = MISSING
    method: Any = MISSING  # configs/method/*.yaml; checked by method_options
    optim: OptimConfig = MISSING
    sched: SchedConfig = MISSING
    trainer: TrainerConfig = MISSING  # trainer.epochs: epochs per task
    logger: LoggerConfig = MISSING
    seed: int = 0
    figures: bool = True  # the heat map of R and the accuracy-over-steps plot (PNG)

    def check(self) -> None:
        method_options(dict(self.method) if self.method is not None else {})
        if dataclasses.is_dataclass(self.scenario) and self.scenario.kind == "styles":
            if self.scenario.data != "shapes":
                raise KtaError("scenario.kind=styles needs scenario.data=shapes")
