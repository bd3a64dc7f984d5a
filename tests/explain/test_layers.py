"""Target layers: ViT tokens land on the right cell of their patch grid; names are checked."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from kta_cli.errors import KtaError
from kta_cli.explain.layers import TokenGrid, find_layer, prepare_model


def test_token_grid_puts_patch_tokens_row_major_and_passes_tokens_through() -> None:
    grid = TokenGrid(nn.Identity(), prefix_tokens=1, grid_size=(2, 3))
    seen = []
    grid.grid.register_forward_hook(lambda _m, _i, out: seen.append(out))
    tokens = torch.zeros(1, 7, 2)
    tokens[0, 1:, 0] = torch.arange(6.0)  # patch k has value k in channel 0
    tokens[0, 0] = -1.0  # the class token stays out of the grid
    assert torch.equal(grid(tokens), tokens)
    assert torch.equal(seen[0][0, 0], torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]))


def test_vit_layer_is_wrapped_and_cnn_layer_is_not() -> None:
    vit = prepare_model(timm.create_model("test_vit", num_classes=3, img_size=32))
    found = find_layer(vit, None, torch.zeros(1, 3, 32, 32))
    assert (found.name, found.tokens, found.grid) == ("blocks.5.norm1", True, (2, 2))
    cnn = prepare_model(timm.create_model("test_resnet", num_classes=3))
    found = find_layer(cnn, None, torch.zeros(1, 3, 64, 64))
    assert (found.name, found.tokens, found.grid) == ("layer4", False, (2, 2))


def test_prepare_model_copies_and_turns_off_inplace() -> None:
    model = timm.create_model("test_resnet", num_classes=3)
    prepared = prepare_model(model)
    assert model.act1.inplace and not prepared.act1.inplace
    assert prepared is not model and model.training


def test_unknown_layer_is_named_with_suggestions() -> None:
    cnn = prepare_model(timm.create_model("test_resnet", num_classes=3))
    with pytest.raises(KtaError, match="did you mean 'layer4'"):
        find_layer(cnn, "layer5", torch.zeros(1, 3, 32, 32))
