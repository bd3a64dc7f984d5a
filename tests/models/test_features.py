"""One feature capture: hooks that give each named layer's output and go away afterwards, and
pooled features that are timm's own pre-logits by default."""

from __future__ import annotations

import pytest
import torch

from kta_cli.errors import KtaError
from kta_cli.models.factory import create_model
from kta_cli.models.features import FeatureCapture, pooled_features


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return create_model("test_resnet", num_classes=5).eval()


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return create_model("test_vit", num_classes=5, img_size=32).eval()


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_capture_gives_stage_maps_of_a_cnn_and_removes_its_hooks(resnet):
    # test_resnet's feature_info: layer1 32 channels at stride 4, layer4 96 at stride 32; 32 px in
    with FeatureCapture(resnet, ["layer1", "layer4"]) as features:
        logits = resnet(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 5)
    assert {k: tuple(v.shape) for k, v in features.items()} == {
        "layer1": (2, 32, 8, 8),
        "layer4": (2, 96, 1, 1),
    }
    assert hook_count(resnet) == 0
    resnet(torch.randn(1, 3, 32, 32))
    assert features["layer1"].shape[0] == 2  # nothing captured any more


def test_capture_gives_a_vits_tokens(vit):
    # 32 px in 16 px patches: 2x2 = 4 patch tokens + 1 class token, width 64
    with FeatureCapture(vit, ["blocks.1", "norm"]) as features:
        vit(torch.randn(2, 3, 32, 32))
    assert tuple(features["blocks.1"].shape) == tuple(features["norm"].shape) == (2, 5, 64)
    assert hook_count(vit) == 0


def test_captured_features_keep_their_graph_for_gradients(resnet):
    images = torch.randn(2, 3, 32, 32)
    with FeatureCapture(resnet, ["layer3"]) as features:
        score = resnet(images).sum()
    (gradient,) = torch.autograd.grad(score, features["layer3"])
    assert gradient.shape == features["layer3"].shape and gradient.abs().sum() > 0


@pytest.mark.parametrize("name", ["resnet", "vit"])
def test_default_pooled_features_are_timms_pre_logits(name, request):
    model = request.getfixturevalue(name)
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(images), pre_logits=True)
    got = pooled_features(model, images, batch_size=2)  # chunks of 2, 2, 1
    assert got.shape == (5, model.num_features)
    torch.testing.assert_close(got, expected)


def test_a_named_layer_is_pooled_over_space(resnet):
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad(), FeatureCapture(resnet, ["layer2"]) as features:
        resnet(images)
    layer2 = features["layer2"]  # (3, 48, 4, 4): 48 channels at stride 8
    torch.testing.assert_close(
        pooled_features(resnet, images, layer="layer2"), layer2.mean(dim=(2, 3))
    )
    torch.testing.assert_close(
        pooled_features(resnet, images, layer="layer2", pool="max"), layer2.amax(dim=(2, 3))
    )
    assert pooled_features(resnet, images, layer="layer2", pool="flatten").shape == (3, 48 * 16)
    assert hook_count(resnet) == 0


def test_an_unknown_layer_names_the_valid_ones(resnet):
    with pytest.raises(KtaError) as error:
        pooled_features(resnet, torch.randn(1, 3, 32, 32), layer="layer5")
    message = str(error.value)
    assert "unknown feature layer 'layer5'; did you mean" in message
    assert "feature layers: act1, layer1, layer2, layer3, layer4" in message
    assert "\n" not in message


def test_an_unknown_pooling_is_refused(resnet):
    with pytest.raises(KtaError, match="unknown pooling 'mean'"):
        pooled_features(resnet, torch.randn(1, 3, 32, 32), layer="layer2", pool="mean")
