"""Static int8 QDQ ONNX through onnxruntime.quantization (QuantizeLinear/DequantizeLinear pairs
around every quantized op, which onnxruntime fuses into int8 kernels on CPU).

Calibration methods as onnxruntime names them: minmax (the observed range, no saturation),
entropy (the KL-optimal clipping threshold, TensorRT's method) and percentile (saturate the
values above a percentile of the histogram).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from onnxruntime.quantization import CalibrationDataReader

from kta_cli.errors import KtaError, first_line
from kta_cli.export.onnx import INPUT_NAME, quiet, written_atomically


class TensorReader(CalibrationDataReader):
    """onnxruntime's CalibrationDataReader over [0, 1] image batches."""

    def __init__(self, batches: Iterable[torch.Tensor]) -> None:
        self.batches: Iterator[torch.Tensor] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {INPUT_NAME: batch.float().numpy()}


def quantize_onnx_int8(
    float_path: Path,
    int8_path: Path,
    calibration_batches: list[torch.Tensor],
    *,
    method: str,
    per_channel: bool,
    percentile: float = 99.999,
) -> Path:
    """The float ONNX model at `float_path` as static int8 QDQ at `int8_path`."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    reader = TensorReader(calibration_batches)
    prepared = int8_path.with_name(f".{int8_path.stem}.prepared.onnx")
    try:
        with quiet(), written_atomically(int8_path) as temporary:
            quant_pre_process(str(float_path), str(prepared))  # shapes and fused ops, as advised
            quantize_static(
                str(prepared),
                str(temporary),
                reader,
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
                calibrate_method=methods[method],
                extra_options={
                    "ActivationSymmetric": False,
                    "WeightSymmetric": True,
                    "CalibPercentile": percentile,  # read by the percentile method only
                },
            )
    except Exception as error:  # onnxruntime raises plain exceptions for ops it cannot handle
        raise KtaError(
            f"onnxruntime could not quantize {float_path.name} to int8 ({first_line(error)}); "
            "the float model was exported; export.int8=false skips this step"
        ) from error
    finally:
        prepared.unlink(missing_ok=True)
    return int8_path
