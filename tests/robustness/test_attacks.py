"""FGSM and PGD maths: a linear model's sign step worked out by hand, the epsilon ball, [0, 1]."""

from pathlib import Path

import pytest
import torch
from torch import nn

from kta_cli.errors import KtaError
from kta_cli.models.factory import create_model
from kta_cli.robustness.attacks import Attack, PixelModel, perturb, to_pixels
from kta_cli.robustness.evaluate import Victim, attack_curve, clean_accuracy, noisy_accuracy
from kta_cli.robustness.victims import float_parent
from kta_cli.schema.robustness import parse_eps, parse_eps_list


def linear_model() -> nn.Module:
    """logits = W x on a 1x1x2 'image', W = [[1, -1], [-1, 1]], no bias."""
    layer = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    return nn.Sequential(nn.Flatten(), layer)


def test_fgsm_on_a_linear_model_is_the_hand_computed_sign_step():
    # x = [0.5, 0.5]: logits [0, 0], softmax p = [.5, .5]; label 0, y = [1, 0].
    # d CE / dx = W^T (p - y) = W^T [-.5, .5] = [-1, 1]; sign [-1, 1]; eps 0.1 -> [0.4, 0.6]
    images = torch.tensor([0.5, 0.5]).view(1, 1, 1, 2)
    labels = torch.tensor([0])
    attack = Attack("fgsm", 0.1, random_start=False)
    adversarial = perturb(linear_model(), images, labels, attack)
    assert torch.allclose(adversarial.flatten(), torch.tensor([0.4, 0.6]))
    # targeted towards class 1: the loss is -CE(target 1), its gradient -W^T (p - e1)
    # = -W^T [.5, -.5] = -[1, -1] = [-1, 1]: the same step, and class 1 now wins
    targeted = perturb(linear_model(), images, labels, attack, torch.tensor([1]))
    assert torch.allclose(targeted.flatten(), torch.tensor([0.4, 0.6]))
    assert linear_model()(targeted).argmax() == 1


def test_fgsm_clips_to_the_unit_range():
    # x = [0.05, 0.98], label 0: p - y = [-p1, p1], gradient W^T(p - y) = [-2 p1, 2 p1], sign
    # [-1, 1]; eps 0.1 steps to [-0.05, 1.08], clipped to [0, 1]
    images = torch.tensor([0.05, 0.98]).view(1, 1, 1, 2)
    adversarial = perturb(
        linear_model(), images, torch.tensor([0]), Attack("fgsm", 0.1, random_start=False)
    )
    assert adversarial.flatten().tolist() == [0.0, 1.0]


@pytest.fixture(scope="module")
def small_model() -> PixelModel:
    torch.manual_seed(0)
    model = create_model("test_resnet", num_classes=10, img_size=16)
    return PixelModel(model, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).eval()


@pytest.mark.parametrize("method,eps", [("pgd", 8 / 255), ("pgd_l2", 0.5), ("fgsm", 8 / 255)])
def test_attacks_stay_in_the_ball_and_in_the_unit_range(small_model, method, eps):
    torch.manual_seed(1)
    images = torch.rand(6, 3, 16, 16)
    images[:, :, :4] = 0.0  # pixels at the edges of [0, 1]: clipping must keep them inside
    images[:, :, -4:] = 1.0
    labels = torch.randint(0, 10, (6,))
    attack = Attack(method, eps, steps=5, step_size=0.1)  # a big step: projection must act
    adversarial = perturb(small_model, images, labels, attack)
    delta = (adversarial - images).flatten(1)
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    if method == "pgd_l2":
        assert (delta.norm(dim=1) <= eps + 1e-5).all()
    else:
        assert delta.abs().max() <= eps + 1e-6
    loss = nn.functional.cross_entropy
    with torch.no_grad():  # the attack raises the loss it ascends
        assert loss(small_model(adversarial), labels) > loss(small_model(images), labels)


def test_attack_leaves_model_weights_without_gradients(small_model):
    perturb(small_model, torch.rand(2, 3, 16, 16), torch.tensor([0, 1]), Attack("pgd", 0.03, 2))
    assert all(p.grad is None for p in small_model.parameters())


def test_pixel_model_undoes_the_data_normalisation(small_model):
    normalized = torch.randn(4, 3, 16, 16) * 0.5
    mean, std = small_model.mean.flatten().tolist(), small_model.std.flatten().tolist()
    pixels = to_pixels(normalized, mean, std)
    inside = ((pixels > 0) & (pixels < 1)).all()
    assert inside, "test images chosen inside [0, 1] after undoing the normalisation"
    with torch.no_grad():
        assert torch.allclose(small_model(pixels), small_model.model(normalized), atol=1e-4)


def test_accuracy_at_eps_zero_equals_clean_accuracy(small_model):
    torch.manual_seed(2)
    images, labels = torch.rand(20, 3, 16, 16), torch.randint(0, 10, (20,))
    victim = Victim("m", small_model, small_model, torch.device("cpu"), 10)
    clean = clean_accuracy(victim, images, labels, batch_size=8)
    curve = attack_curve(victim, images, labels, [Attack("pgd", 0.0, 3)], batch_size=8)
    assert curve[0]["acc"] == clean
    noise = noisy_accuracy(victim, images, labels, [0.0], batch_size=8)
    assert noise[0]["acc"] == clean


def test_bad_attack_settings_are_refused():
    with pytest.raises(KtaError, match=">= 0"):
        Attack("pgd", -0.1)
    with pytest.raises(KtaError, match="1 step"):
        Attack("pgd", 0.1, steps=0)
    with pytest.raises(KtaError, match=">= 0"):
        parse_eps("-1/255", "attack.eps[0]")
    with pytest.raises(KtaError, match="fraction"):
        parse_eps("eight", "task.eps")
    assert parse_eps_list([0, "8/255", 0.5], "attack.eps") == [0.0, 8 / 255, 0.5]


def test_int8_program_walks_to_its_float_parent(tmp_path: Path):
    int8 = {"model_kind": "quantized", "quant": {"backend": "pt2e_x86"}, "parent": None}
    with pytest.raises(KtaError, match="no float parent"):
        float_parent(tmp_path / "int8.ckpt", int8)
    with pytest.raises(KtaError, match="is missing"):
        float_parent(tmp_path / "int8.ckpt", {**int8, "parent": str(tmp_path / "gone.ckpt")})
    plain = {"model_kind": "timm"}
    assert float_parent(tmp_path / "float.ckpt", plain) == (tmp_path / "float.ckpt", plain)
