"""Feature hints: layers found by name through hooks, adapters shaped to the teacher's features."""

import pytest
import timm
import torch

from kta_cli.errors import KtaError
from kta_cli.losses.hints import HintAdapter, hint_loss
from kta_cli.models.features import FeatureCapture, resolve_layer


@pytest.fixture(scope="module")
def resnet():
    return timm.create_model("test_resnet", num_classes=10).eval()


def test_named_layers_and_auto_resolve(resnet):
    assert resolve_layer(resnet, "layer2", role="student") == "layer2"
    assert resolve_layer(resnet, "layer1.0.conv1", role="student") == "layer1.0.conv1"
    assert resolve_layer(resnet, "auto", role="teacher") == "layer4"


def test_unknown_layer_lists_the_valid_ones(resnet):
    with pytest.raises(KtaError) as error:
        resolve_layer(resnet, "layer9", role="student")
    message = str(error.value)
    assert "unknown student layer 'layer9'" in message
    assert "act1, layer1, layer2, layer3, layer4" in message
    assert "\n" not in message


def test_tap_keeps_the_output_of_each_named_layer(resnet):
    tap = FeatureCapture(resnet, ["layer2", "layer4"])
    resnet(torch.randn(2, 3, 32, 32))
    features = tap.pop()
    assert set(features) == {"layer2", "layer4"}
    assert features["layer2"].shape[0] == 2 and features["layer2"].dim() == 4
    assert tap.pop() == {}  # forgotten after reading, so no graph is kept alive
    tap.remove()
    resnet(torch.randn(1, 3, 32, 32))
    assert tap.features == {}


def test_conv_adapter_maps_channels_and_space_onto_the_teacher():
    adapter = HintAdapter(torch.Size([2, 16, 8, 8]), torch.Size([2, 48, 4, 4]))
    assert adapter(torch.randn(2, 16, 8, 8)).shape == (2, 48, 4, 4)
    upsample = HintAdapter(torch.Size([2, 16, 2, 2]), torch.Size([2, 48, 4, 4]))
    assert upsample(torch.randn(2, 16, 2, 2)).shape == (2, 48, 4, 4)


def test_token_features_meet_a_feature_map_through_pooled_vectors():
    adapter = HintAdapter(torch.Size([2, 17, 64]), torch.Size([2, 48, 4, 4]))
    teacher = torch.randn(2, 48, 4, 4)
    assert adapter(torch.randn(2, 17, 64)).shape == adapter.target(teacher).shape == (2, 48)


def test_hint_loss_is_the_mean_squared_error_and_trains_only_the_student_side():
    adapted = torch.tensor([[1.0, 3.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, 1.0]], requires_grad=True)
    loss = hint_loss(adapted, teacher)
    assert loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    assert adapted.grad is not None and teacher.grad is None
