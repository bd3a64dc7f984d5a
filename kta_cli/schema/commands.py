"""Each command's top-level schema (`schema_<command>`): its groups and its own options.

configs/<command>.yaml names it first in its defaults list; the defaults here are the values
a run gets when neither the YAML nor the command line sets them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from kta_cli.data.spec import DataSpec
from kta_cli.schema.checks import (
    fraction,
    is_number,
    non_negative,
    one_of,
    positive,
    ruled,
    unit_open_closed,
)
from kta_cli.schema.groups import (
    DistillConfig,
    ImportanceConfig,
    LoggerConfig,
    ModelConfig,
    OptimConfig,
    SchedConfig,
    StrategyConfig,
    TaskConfig,
    TeacherConfig,
    TrainerConfig,
)

SPLITS = ("test", "train", "val")


@dataclass
class LossConfig:
    label_smoothing: float = fraction(0.0)  # > 0 uses timm's label-smoothing cross-entropy


@dataclass
class TrainSchema:
    model: ModelConfig = MISSING
    data: DataSpec = MISSING
    task: TaskConfig = MISSING
    optim: OptimConfig = MISSING
    sched: SchedConfig = MISSING
    strategy: StrategyConfig = MISSING  # after optim: its lr is ${optim.lr}, checked there first
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    seed: int = 0
    loss: LossConfig = field(default_factory=LossConfig)


@dataclass
class EvalSettings:
    bins: int = positive(15)  # equal-width confidence bins: the ECE and the reliability diagram
    temperature_scaling: bool = True  # fit one temperature on the val split; scores before/after


@dataclass
class EvalSchema:
    data: DataSpec | None = None  # null: the checkpoint's own data set and preprocessing
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    ckpt: str = "latest"  # a .ckpt file, a run folder, or latest
    split: str = one_of(*SPLITS)
    seed: int = 0
    eval: EvalSettings = field(default_factory=EvalSettings)


@dataclass
class DistillSchema:
    teacher: TeacherConfig = MISSING
    student: ModelConfig = MISSING
    data: DataSpec = MISSING
    optim: OptimConfig = MISSING
    sched: SchedConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    distill: DistillConfig = field(default_factory=DistillConfig)
    seed: int = 0


def is_round_to(value: Any) -> bool:
    return value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value > 0)


@dataclass
class PruneSettings:
    method: str = one_of("structured", "unstructured")  # remove channels | zero single weights
    ratio: float = fraction(0.5)  # channels (structured) or weights (unstructured) removed
    scope: str = one_of("global", "layer")  # rank across layers | the same ratio in each layer
    # per layer or block, e.g. {layer4: 0.7}; Any: see TaskConfig.weights
    layer_ratios: Any = ruled(None, ("in [0, 1)", lambda v: is_number(v) and 0 <= v < 1), each=True)
    ignore: Any = field(default_factory=list)  # layers or blocks left alone (a name or a list)
    max_layer_ratio: float = unit_open_closed(0.9)  # global: no layer loses more than this
    # structured: channel counts a multiple of this; auto: 16 where a layer keeps >= 64, 8 where
    # it keeps >= 16 (the x86 int8 kernels' blocks, cheap there), null: none
    round_to: Any = ruled("auto", ("auto, null or an integer > 0", is_round_to))
    attention: str = one_of("head_dims", "heads")  # ViTs: shrink every head | remove heads
    steps: int = positive(1)  # prune in this many steps, fine-tuning after each
    schedule: str = one_of("linear", "cubic")  # cubic: gradual AGP, big steps first
    max_allowed_loss: float | None = positive(None)  # stop when val loss after a step exceeds it
    sensitivity: bool = False  # also prune each layer alone at sensitivity_ratios
    sensitivity_ratios: list[float] = ruled(
        [0.25, 0.5, 0.75], ("in (0, 1)", lambda v: 0 < v < 1), each=True
    )


@dataclass
class FinetuneSettings:
    """After each pruning step, on the checkpoint's training split."""

    epochs: int = non_negative(2)  # 0: no fine-tuning
    lr: float = positive(0.01)
    optimizer: str = "sgd"
    weight_decay: float = non_negative(0.0)
    schedule: str = "cosine"


@dataclass
class PruneMeasure:
    latency: bool = True  # CPU latency of input vs pruned, interleaved rounds
    batch_size: int = positive(1)
    rounds: int = positive(5)
    channels_last: bool = True  # both models in channels_last, as a CPU deployment would run them
    onnxruntime: bool = False  # also both exported to ONNX and timed in onnxruntime (kta export's)


@dataclass
class PruneSchema:
    data: DataSpec | None = None  # null: the checkpoint's own data set and preprocessing
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    importance: ImportanceConfig = MISSING
    ckpt: str = "latest"
    seed: int = 0
    prune: PruneSettings = field(default_factory=PruneSettings)
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    measure: PruneMeasure = field(default_factory=PruneMeasure)


@dataclass
class QuantSettings:
    mode: str = one_of("static", "dynamic", "fp16", "bf16")
    backend: str = one_of("pt2e_x86", "fx_x86")  # pt2e: torch.export + torchao; fx: deprecated
    observer: str = one_of("histogram", "minmax", "moving_average", "percentile")
    percentile: float = ruled(99.99, ("in (0, 100]", lambda v: 0 < v <= 100))
    per_channel: bool = True  # one weight scale per output channel (false: per tensor)
    calib_batches: int = non_negative(8)  # training batches seen by the observers (static)
    qat_epochs: int = non_negative(0)  # > 0: fake-quant fine-tuning before conversion
    qat_lr: float = positive(0.001)
    keep_float: Any = 0  # N most sensitive layers stay float, or a list of layer names
    sensitivity: bool = True  # per-layer SQNR report (pt2e_x86 static)
    compile: bool = True  # pt2e_x86: torch.compile the int8 graph; false: reference ops
    aoti: Any = ruled("auto", ("auto, true or false", lambda v: v == "auto" or isinstance(v, bool)))
    # pt2e_x86 compiled: AOTInductor for batch 1 (auto), every shape (true) or none (false)


@dataclass
class QuantMeasure:
    latency: bool = True  # false: skip the timing rounds
    threads: int = positive(2)  # fixed CPU thread count for every latency figure
    batch_size: int = positive(32)  # latency at batch 1 and at this batch size
    rounds: int = positive(5)  # interleaved rounds (float, int8, ...); the median is reported
    repeats: int = positive(10)  # timed calls per round
    compiled_float: bool = True  # also time torch.compile'd float (the int8 program's settings)


@dataclass
class QuantizeSchema:
    data: DataSpec | None = None  # null: the checkpoint's own data calibrates and scores
    logger: LoggerConfig = MISSING
    ckpt: str = "latest"
    seed: int = 0
    quant: QuantSettings = field(default_factory=QuantSettings)
    measure: QuantMeasure = field(default_factory=QuantMeasure)
