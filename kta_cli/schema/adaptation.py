"""`kta adapt` schema and the `task=dann` preset's schema (domain adaptation)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from kta_cli.data.spec import DataSpec
from kta_cli.schema.checks import non_negative, one_of, positive
from kta_cli.schema.groups import LoggerConfig, TaskConfig, TrainerConfig

ADAPT_METHODS = ("adabn", "tent")


@dataclass
class AdaptOptions:
    # shapes styles to adapt to, one adapted checkpoint each; null: data.test_style (or the
    # data set as given, for sets without styles)
    targets: list[str] | None = None
    split: str = one_of("train", "test")  # unlabelled images: held-out draws, or the test stream
    epochs: int = positive(1)  # tent: passes over the unlabelled images (1: online)
    lr: float = positive(1e-3)  # tent (the TENT paper: Adam 1e-3 on CIFAR-10-C)
    optimizer: str = one_of("adam", "sgd")
    momentum: float = non_negative(0.9)  # sgd only
    batch_size: int = positive(128)  # unlabelled images per BatchNorm batch (TENT: 128)


@dataclass
class AdaptSchema:
    data: DataSpec = MISSING  # data.<key>=... alone: the checkpoint's own data set, changed
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    ckpt: str = "latest"
    method: str = one_of(*ADAPT_METHODS)
    seed: int = 0
    adapt: AdaptOptions = field(default_factory=AdaptOptions)


@dataclass
class DannTaskConfig(TaskConfig):
    """task=dann (Ganin et al. 2016): labelled source, unlabelled target (data.target_style)."""

    name: str = one_of("dann")
    weight: float = non_negative(1.0)  # the domain loss's weight at the end of the schedule
    gamma: float = positive(10.0)  # lambda_p = 2 / (1 + exp(-gamma p)) - 1, p: training progress
    schedule: bool = True  # false: lambda = weight throughout
    hidden: int = positive(256)  # width of the domain classifier's two hidden layers
