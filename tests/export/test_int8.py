"""Static int8 QDQ on a small float ONNX model: every calibration method gives a model that
mostly predicts what the float one does; percentile saturates where minmax stretches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from kta_cli.export.int8 import quantize_onnx_int8
from kta_cli.export.onnx import export_onnx
from kta_cli.export.parity import agreement, logits_of, onnx_runner


@pytest.fixture(scope="module")
def float_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()
    path = tmp_path_factory.mktemp("int8") / "model.onnx"
    export_onnx(model, torch.rand(2, 3, 8, 8), path, name="small", fallback="")
    return path, model


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_each_calibration_method_keeps_most_predictions(float_onnx, method):
    path, model = float_onnx
    images = torch.rand(64, 3, 8, 8)
    int8 = quantize_onnx_int8(
        path,
        path.with_name(f"{method}.onnx"),
        list(images.split(16)),
        method=method,
        per_channel=True,
    )
    graph = int8.read_bytes()
    assert b"QuantizeLinear" in graph and b"DequantizeLinear" in graph
    measured = agreement(
        logits_of(model, images), logits_of(onnx_runner(int8, 1), images), torch.zeros(64)
    )
    assert measured["agreement"] >= 0.8 and measured["max_abs_diff"] < 0.1


def input_scale(path: Path) -> float:
    """The scale of the QuantizeLinear that reads the model's input."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    node = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "images")
    scale = next(i for i in graph.initializer if i.name == node.input[1])
    return float(numpy_helper.to_array(scale))


def test_percentile_saturates_an_outlier_that_minmax_keeps(float_onnx):
    path, _ = float_onnx
    images = torch.rand(64, 3, 8, 8)
    images[0, 0, 0, 0] = 100.0  # one pixel far outside the rest: minmax's range must hold it
    scales = {}
    for method in ("minmax", "percentile"):
        out = path.with_name(f"outlier_{method}.onnx")
        batches = list(images.split(16))
        quantize_onnx_int8(path, out, batches, method=method, per_channel=True, percentile=99.9)
        scales[method] = input_scale(out)
    # minmax over [0, 100] in 255 steps: 100 / 255; percentile clips near the uniform pixels' 1
    assert abs(scales["minmax"] - 100 / 255) < 1e-3
    assert scales["percentile"] < 0.05 * scales["minmax"]
