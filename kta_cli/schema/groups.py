"""Schemas of the config groups that several commands share (configs/<group>/*.yaml presets)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from kta_cli.errors import KtaError
from kta_cli.schema.checks import (
    fraction,
    non_negative,
    one_of,
    positive,
    ruled,
    unit_open_closed,
)

INITS = ("default", "kaiming", "xavier", "orthogonal")
HEADS = ("keep", "linear", "mlp")


@dataclass
class ModelConfig:
    """model=, student= (any timm model name works; a preset only records its defaults)."""

    name: str = MISSING
    pretrained: bool = False  # timm hub weights (needs internet)
    checkpoint: str | None = None  # local weights: a kta .ckpt, a state_dict, or .safetensors
    drop_rate: float = fraction(0.0)
    init: str = one_of("default", *INITS)  # for scratch training


@dataclass
class TeacherConfig:
    """teacher=<checkpoint | run folder | latest> or teacher=<timm name> teacher.checkpoint=..."""

    name: str | None = None  # null: the architecture recorded in the kta checkpoint
    checkpoint: str | None = "outputs/train/latest"


@dataclass
class OptimConfig:
    name: str = "sgd"  # timm.optim.create_optimizer_v2 name: sgd (Nesterov), adam, adamw, ...
    lr: float = positive(0.05)
    momentum: float = non_negative(0.9)  # unused by Adam(W)
    weight_decay: float = non_negative(0.0)


@dataclass
class SchedConfig:
    """One schema for every schedule; each preset sets what its schedule reads."""

    name: str = one_of(
        "cosine", "step", "multistep", "plateau", "poly", "tanh", "onecycle", "constant"
    )
    warmup_epochs: float = non_negative(0.0)  # linear warmup from warmup_lr
    warmup_lr: float = non_negative(1e-5)
    min_lr: float = non_negative(0.0)
    decay_epochs: float = positive(30.0)  # step: multiply the lr by decay_rate this often
    decay_rate: float = positive(0.1)
    milestones: list[int] = field(default_factory=list)  # multistep: epochs where lr drops
    patience_epochs: int = non_negative(5)  # plateau


@dataclass
class EarlyStopping:
    monitor: str = "val_acc"  # val_acc | val_loss | train_loss ...
    mode: str = one_of("max", "min")
    patience: int | None = positive(None)  # epochs without improvement before stopping
    min_delta: float = non_negative(0.0)


@dataclass
class TrainerConfig:
    epochs: int = positive(10)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = one_of("fp32", "bf16", "fp16")  # fp16 needs CUDA
    channels_last: bool = False
    compile: bool = False  # torch.compile the model
    grad_clip: float | None = positive(None)  # max gradient norm
    max_steps: int | None = positive(None)  # stop after this many steps, with last.ckpt
    checkpoint_every: int = positive(1)  # epochs between last.ckpt writes; the end always writes
    threads: int | None = positive(None)  # torch CPU threads (null: torch's default)
    resume: str | None = None  # a last.ckpt, a run folder, or `auto` (the latest train run)
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    progress: bool = True
    log_every: int = positive(10)  # steps between TensorBoard step scalars


@dataclass
class LoggerConfig:
    tensorboard: bool = True  # events in the run folder: tensorboard --logdir outputs


@dataclass
class TaskConfig:
    name: str = one_of("classify", "multitask")
    tasks: list[str] | None = None  # multitask; null: digits -> [digit, parity], shapes -> ...
    weighting: str = one_of("fixed", "uncertainty")  # uncertainty: Kendall et al.
    # fixed loss weights, e.g. {digit: 1.0}; Any: OmegaConf 2.3 cannot merge a mapping onto a
    # typed Optional[Dict] that is None
    weights: Any = ruled(
        None, (">= 0", lambda v: isinstance(v, (int, float)) and v >= 0), each=True
    )


@dataclass
class SimCLRConfig(TaskConfig):
    """task=simclr: self-supervised pretraining (Chen et al. 2020); kta_cli/ssl/."""

    name: str = one_of("simclr")
    temperature: float = positive(0.5)  # NT-Xent temperature
    proj_hidden: int | None = positive(None)  # projection MLP width; null: the feature width
    proj_dim: int = positive(128)  # the projection's output (where the loss is taken)
    crop_scale: list[float] = ruled([0.08, 1.0], ("in (0, 1]", lambda v: 0 < v <= 1), each=True)
    hflip: float = fraction(0.5, closed=True)  # probability of a horizontal flip
    jitter: float = non_negative(1.0)  # colour strength s: 0.8 s brightness/contrast/sat, 0.2 s hue
    jitter_p: float = fraction(0.8, closed=True)
    grayscale_p: float = fraction(0.2, closed=True)
    blur_p: float = fraction(0.5, closed=True)
    knn_k: int = positive(200)  # kNN monitor: neighbours that vote
    knn_temperature: float = positive(0.07)  # vote weight exp(cosine / T), Wu et al. 2018
    linear_eval: bool = False  # logistic regression on frozen features after training

    def check(self) -> None:
        if len(self.crop_scale) != 2 or self.crop_scale[0] > self.crop_scale[1]:
            raise KtaError(
                f"task.crop_scale must be [low, high] with low <= high, got {self.crop_scale}"
            )


@dataclass
class ImportanceConfig:
    """How kta prune ranks channels or weights; `criterion` is a torch_pruning importance."""

    name: str = MISSING
    gradients: bool = False
    batches: int = positive(4)  # training batches whose gradients a gradient criterion sums
    criterion: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hint:
    student: str = "auto"  # a module name, or `auto`: the last stage
    teacher: str = "auto"


@dataclass
class DistillConfig:
    """L = alpha * CE + (1 - alpha) * (kd_weight * T^2 * KL + mse_weight * ||z_T - z_S||^2)
    + hint_weight * feature hint loss. The presets (distill=hinton, ...) set only the weights,
    so that several combine: distill=[hinton,hints]."""

    temperature: float = positive(4.0)
    temperature_end: float | None = positive(None)  # where a non-constant schedule ends
    temperature_schedule: str = one_of("constant", "linear", "cosine", "step")
    temperature_milestones: list[float] = field(default_factory=lambda: [0.5])
    alpha: float = fraction(0.5, closed=True)  # weight of the hard-label cross-entropy
    alpha_end: float | None = fraction(None, closed=True)
    alpha_schedule: str = one_of("constant", "linear", "cosine", "step")
    alpha_milestones: list[float] = field(default_factory=lambda: [0.5])
    kd_weight: float = non_negative(0.0)  # Hinton soft targets (set by distill=hinton)
    mse_weight: float = non_negative(0.0)  # logit matching (set by distill=mse)
    hints: list[Hint] = field(default_factory=list)  # FitNets: [{student: .., teacher: ..}]
    hint_weight: float = non_negative(1.0)
    cache: Any = "auto"  # teacher outputs per example: auto (no augmentation) | true | false
    cache_dir: str | None = "outputs/.cache/teacher"  # reused across runs; null: memory only
    baseline: bool = False  # also train the student without the teacher: gap closure
    omit_class: int | None = non_negative(None)  # dark knowledge: leave this class out

    def check(self) -> None:
        """Rules across fields, run by check_fields after each field's own."""
        if self.cache not in ("auto", True, False):
            raise KtaError(f"distill.cache must be auto, true or false, got {self.cache!r}")
        if self.kd_weight == 0 and self.mse_weight == 0 and not self.hints:
            raise KtaError(
                "no distillation loss is on (kd_weight, mse_weight and hints are all off); "
                "pick distill=hinton, mse, hints or a list of them"
            )
        for name in ("temperature", "alpha"):
            kind = getattr(self, f"{name}_schedule")
            if kind != "constant" and getattr(self, f"{name}_end") is None:
                raise KtaError(f"distill.{name}_schedule={kind} needs distill.{name}_end=<value>")


# strategy=<name>: one schema per strategy function, the keys it takes (instantiate passes all)
@dataclass
class StrategyConfig:
    _target_: str = MISSING
    _partial_: bool = True
    lr: float = positive(0.05)  # the base rate every group's rate derives from
    head: str = one_of("linear", *HEADS)  # keep the model's head, or put a fresh one on
    head_lr_mult: float = non_negative(1.0)  # the head's rate = lr * head_lr_mult


@dataclass
class HeadStrategyConfig(StrategyConfig):
    head_hidden: int = positive(256)  # width of the mlp head


@dataclass
class ScratchConfig(HeadStrategyConfig):
    init: str = one_of("kaiming", *INITS)


@dataclass
class DiscriminativeConfig(HeadStrategyConfig):
    layer_decay: float = unit_open_closed(0.7)


@dataclass
class GradualUnfreezeConfig(HeadStrategyConfig):
    every: int = positive(1)  # epochs per stage
    layer_decay: float = unit_open_closed(1.0)  # < 1 also decays earlier stages' rates


@dataclass
class LinearProbeConfig(StrategyConfig):
    cache_features: bool = False  # extract features once, train the head on them


@dataclass
class LpFtConfig(HeadStrategyConfig):
    probe_epochs: int = non_negative(1)
    ft_lr_mult: float = unit_open_closed(0.1)


@dataclass
class PartialConfig(HeadStrategyConfig):
    trainable_from: str | None = None  # a module name, e.g. layer3
    frozen_stages: int | None = non_negative(None)  # how many of timm's stages to freeze


STRATEGY_SCHEMAS: dict[str, type] = {
    "strategy_schema": HeadStrategyConfig,
    "scratch_schema": ScratchConfig,
    "discriminative_schema": DiscriminativeConfig,
    "gradual_unfreeze_schema": GradualUnfreezeConfig,
    "linear_probe_schema": LinearProbeConfig,
    "lp_ft_schema": LpFtConfig,
    "partial_schema": PartialConfig,
}
