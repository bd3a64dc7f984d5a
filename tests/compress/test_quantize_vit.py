"""int8 on a ViT (issue 16): the SQNR table skips shape values; library failures are one line."""

from __future__ import annotations

import pytest
import timm
import torch

from kta_cli.compress import quantize_sensitivity
from kta_cli.compress.quantize import QuantSettings, quantize
from kta_cli.errors import KtaError
from tests.compress.test_quantize_library import Batches

torch.manual_seed(0)
VIT_BATCHES = Batches(
    [(torch.randn(4, 3, 16, 16), torch.zeros(4, dtype=torch.long)) for _ in range(2)]
)


def tiny_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("test_vit", num_classes=10, img_size=16).eval()


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_vit_int8_has_a_per_layer_sqnr_table_and_keeps_outputs(mode: str):
    model = tiny_vit()
    settings = QuantSettings(mode=mode, calib_batches=2)
    result = quantize(model, settings, train_loader=VIT_BATCHES, val_loader=VIT_BATCHES)
    result.model.use_compile = False
    layers = [row["layer"] for row in result.sensitivity]
    # the graph's sym_size nodes (ints) are skipped, the attention and MLP linears are measured
    assert "blocks.0.attn.qkv" in layers and "blocks.0.mlp.fc1" in layers
    assert all(row["sqnr_db"] > 10 for row in result.sensitivity)
    images = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        similarity = torch.nn.functional.cosine_similarity(model(images), result.model(images))
    assert similarity.min() > 0.95


def test_a_library_failure_in_the_sqnr_step_is_one_line_naming_the_way_around(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("For debug_info=NodeSourceDebugInfo(name='sym_size_int_1')\nmore")

    monkeypatch.setattr(quantize_sensitivity, "layer_sqnr", broken)
    with pytest.raises(KtaError) as info:
        quantize(
            tiny_vit(),
            QuantSettings(calib_batches=1),
            train_loader=VIT_BATCHES,
            val_loader=VIT_BATCHES,
        )
    message = str(info.value)
    assert "\n" not in message and "per-layer SQNR" in message
    assert "quant.sensitivity=false" in message and "ValueError" in message
