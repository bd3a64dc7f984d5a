"""The ONNX writer: a file appears whole or not at all; the batch dimension stays free."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from kta_cli.export.onnx import export_onnx, written_atomically


def test_a_failed_write_leaves_no_file(tmp_path: Path):
    target = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError), written_atomically(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("exporter died")
    assert list(tmp_path.iterdir()) == []


def test_small_model_exports_with_a_dynamic_batch(tmp_path: Path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 6, 6))
    exported = export_onnx(
        model, torch.rand(2, 3, 6, 6), tmp_path / "m.onnx", name="m", fallback=""
    )
    assert exported.exporter == "dynamo" and exported.opset >= 17
    graph = onnx.load(str(exported.path)).graph
    first = graph.input[0].type.tensor_type.shape.dim[0]
    assert first.dim_param and not first.dim_value  # a symbol, not a fixed size
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
