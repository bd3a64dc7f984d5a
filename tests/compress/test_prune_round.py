"""prune.round_to=auto (issue 14): aligned channel counts where alignment is cheap, small layers
keep their pruning."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kta_cli.compress.prune_layers import head_layers
from kta_cli.compress.prune_structured import (
    StructuredPruner,
    auto_kept_channels,
    count_macs_and_params,
)
from kta_cli.models.factory import create_model


def pruned(name: str, round_to: int | str | None, size: int = 32) -> tuple[nn.Module, float]:
    """`name` with 50 % of its channels removed (global L1, the command's defaults); MACs ratio."""
    import torch_pruning as tp

    torch.manual_seed(0)
    model = create_model(name, num_classes=10, img_size=size).eval()
    example = torch.randn(1, 3, size, size)
    before, _ = count_macs_and_params(model, example)
    StructuredPruner(
        model, example, tp.importance.MagnitudeImportance(p=1), ratio=0.5,
        ignored=head_layers(model), round_to=round_to,
    ).step()  # fmt: skip
    return model, count_macs_and_params(model, example)[0] / before


@pytest.mark.parametrize(
    ("kept", "current", "expected"),
    [
        (131, 256, 128),  # >= 64 kept: the nearest multiple of 16
        (254, 512, 256),
        (72, 128, 80),  # halfway rounds up
        (63, 128, 64),  # 16..63 kept: the nearest multiple of 8
        (20, 32, 24),
        (15, 24, 15),  # under 16: left as the pruner chose
        (250, 250, 250),  # never more channels than the layer has
    ],
)
def test_auto_rule_by_hand(kept: int, current: int, expected: int) -> None:
    assert auto_kept_channels(kept, current) == expected


def test_auto_keeps_a_small_models_pruning() -> None:
    """timm test_resnet (16-192 channels): measured MACs ratio 0.319 unrounded, 0.296 auto,
    0.430 with round_to=16 (2026-12-01); auto stays within 0.05 of no rounding."""
    _, none = pruned("test_resnet", None)
    _, auto = pruned("test_resnet", "auto")
    _, sixteen = pruned("test_resnet", 16)
    assert abs(auto - none) <= 0.05 and sixteen > none + 0.05


def test_auto_aligns_a_wide_models_channels() -> None:
    """resnet18 (64-512 channels): every pruned conv is a multiple of 16 from 64 channels on,
    of 8 from 16, and the MACs ratio stays that of no rounding (0.270 against 0.271)."""
    counts, ratio = {}, {}
    for round_to in ("auto", None):
        model, ratio[round_to] = pruned("resnet18", round_to)
        counts[round_to] = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c % 16 == 0 for c in counts["auto"] if c >= 64), counts["auto"]
    assert all(c % 8 == 0 for c in counts["auto"] if c >= 16), counts["auto"]
    assert any(c % 8 for c in counts[None])  # unrounded, the pruner leaves counts such as 131
    assert abs(ratio["auto"] - ratio[None]) <= 0.02


def test_auto_leaves_attention_models_unrounded() -> None:
    import torch_pruning as tp

    model = create_model("test_vit", num_classes=5, img_size=16)
    pruner = StructuredPruner(
        model, torch.randn(1, 3, 16, 16), tp.importance.MagnitudeImportance(p=1), ratio=0.5,
        scope="layer", ignored=head_layers(model), round_to="auto",
    )  # fmt: skip
    assert pruner.pruner.round_to is None  # a head's width is not a layer's channel count
