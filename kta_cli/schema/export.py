"""`kta export`'s schema: ONNX (float, static int8 QDQ) or TensorRT, parity and latency."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from kta_cli.data.spec import DataSpec
from kta_cli.schema.checks import non_negative, one_of, positive, ruled
from kta_cli.schema.groups import LoggerConfig

FORMATS = ("onnx", "tensorrt")
CALIBRATIONS = ("minmax", "entropy", "percentile")


@dataclass
class ExportSettings:
    int8: bool = False  # also a static int8 QDQ model (onnxruntime.quantization)
    calibration: str = one_of(*CALIBRATIONS)  # minmax: no saturation; entropy/percentile: clip
    calib_batches: int = positive(8)  # training batches the calibrator sees
    percentile: float = ruled(99.999, ("in (0, 100]", lambda v: 0 < v <= 100))  # percentile's
    per_channel: bool = True  # one weight scale per output channel
    opset: int | None = positive(None)  # ONNX opset; null: the exporter's default
    threads: int = positive(2)  # fixed CPU thread count for parity and every latency figure
    latency: bool = True  # the latency table (false: parity and sizes only)
    compile: bool = True  # a torch.compile'd float row in the table (n/a with the reason)
    kta_int8: bool = True  # a row for kta quantize's int8 program of this checkpoint, if any
    batch_sizes: list[int] = ruled([1, 32], ("> 0", lambda v: v > 0), each=True)
    rounds: int = positive(3)  # interleaved rounds; the median is reported
    repeats: int = positive(5)  # timed calls per round
    parity_images: int | None = positive(None)  # at most this many test images; null: all
    tolerance: float = non_negative(1e-3)  # max abs logit difference the float model may show


@dataclass
class ExportSchema:
    data: DataSpec | None = None  # null: the checkpoint's own data set and preprocessing
    logger: LoggerConfig = MISSING
    ckpt: str = "latest"  # a .ckpt file, a run folder, or latest (the newest float model)
    format: str = one_of(*FORMATS)
    seed: int = 0
    export: ExportSettings = field(default_factory=ExportSettings)
