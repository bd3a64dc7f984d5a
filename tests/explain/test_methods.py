"""Grad-CAM, Grad-CAM++ and saliency on a fixed-weight network, against values worked by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kta_cli.errors import KtaError
from kta_cli.explain.methods import Explainer, method_names

# x: three 2x2 channels. conv (1x1, no bias) W = [[1, 0, 1], [0, 1, -1]] then ReLU gives
#   A0 = x0 + x2 = [[2, 1], [2, 3]],  A1 = relu(x1 - x2) = relu([[-1, 0], [1, -2]])
#      = [[0, 0], [1, 0]]
# average pool, then linear V = [[1, 2], [0.5, -1]]: logit_t = sum_k V[t, k] * mean(A_k).
X = torch.tensor(
    [[[1.0, 0.0], [2.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]], [[1.0, 1.0], [0.0, 2.0]]]
).unsqueeze(0)


def fixed_net() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(3, 2, 1, bias=False),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2, 2, bias=False),
    )
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, -1.0]]).view(2, 3, 1, 1))
        net[4].weight.copy_(torch.tensor([[1.0, 2.0], [0.5, -1.0]]))
    return net


@pytest.fixture
def explainer() -> Explainer:
    # layer "1" is the ReLU: its output is A. mean 0 / std 1 keep the input as written.
    return Explainer(fixed_net(), mean=[0.0] * 3, std=[1.0] * 3, img_size=2, layer="1")


def test_gradcam_matches_hand_computation(explainer: Explainer) -> None:
    # Channel weights are the mean gradients dlogit_t/dA_k = V[t, k] / 4.
    # t = 0: 0.25 * A0 + 0.5 * A1;  t = 1: relu(0.125 * A0 - 0.25 * A1).
    cam0 = explainer.explain("gradcam", X, torch.tensor([0]))
    cam1 = explainer.explain("gradcam", X, torch.tensor([1]))
    assert torch.allclose(cam0[0], torch.tensor([[0.5, 0.25], [1.0, 0.75]]))
    assert torch.allclose(cam1[0], torch.tensor([[0.25, 0.125], [0.0, 0.375]]))


def test_gradcam_pp_matches_hand_computation(explainer: Explainer) -> None:
    # g = (0.25, 0.5), sum(A) = (8, 1): alpha = g^2 / (2 g^2 + sum(A) g^3) = (0.25, 0.4),
    # weights = sum_ij alpha * g = (0.25, 0.8): cam = 0.25 * A0 + 0.8 * A1.
    cam = explainer.explain("gradcam_pp", X, torch.tensor([0]))
    assert torch.allclose(cam[0], torch.tensor([[0.5, 0.25], [1.3, 0.75]]))


def test_saliency_matches_hand_computation(explainer: Explainer) -> None:
    # dlogit_0/dx_c = 0.25 * (W0c [A0 active] + 2 * W1c [A1 active]); A1 is active only at (1, 0)
    # where the channel gradients are (0.25, 0.5, -0.25); elsewhere (0.25, 0, 0.25). Max |.|:
    saliency = explainer.explain("saliency", X, torch.tensor([0]))
    assert torch.allclose(saliency[0], torch.tensor([[0.25, 0.25], [0.5, 0.25]]))


def test_explaining_leaves_the_input_untouched(explainer: Explainer) -> None:
    before = X.clone()
    for method in ("saliency", "guided_backprop", "integrated_gradients", "occlusion"):
        explainer.explain(method, X, torch.tensor([0]))
    assert torch.equal(X, before)


def test_method_names_expand_all_and_reject_typos() -> None:
    assert "gradcam_pp" in method_names("all") and len(method_names("all")) == 11
    assert method_names("gradcam, saliency") == ["gradcam", "saliency"]
    with pytest.raises(KtaError, match="did you mean 'gradcam'"):
        method_names("gradcma")


def test_gradient_methods_refuse_a_model_without_gradients() -> None:
    class Detached(nn.Module):  # like a quantized program: no gradient reaches the input
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3)).detach()

    ex = Explainer(Detached(), mean=[0.0] * 3, std=[1.0] * 3, img_size=2)
    with pytest.raises(KtaError, match="needs gradients"):
        ex.explain("saliency", X, torch.tensor([0]))
    assert ex.explain("occlusion", X, torch.tensor([0])).shape == (1, 2, 2)


def test_guided_backprop_refuses_a_model_without_activation_modules() -> None:
    linear = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    ex = Explainer(linear, mean=[0.0] * 3, std=[1.0] * 3, img_size=2)
    with pytest.raises(KtaError, match="has none; use saliency"):
        ex.explain("guided_backprop", X, torch.tensor([0]))


def test_method_all_skips_what_a_model_cannot_run_and_names_it(capsys) -> None:
    from kta_cli.explain.report import explain_all

    class Detached(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3)).detach()

    ex = Explainer(Detached(), mean=[0.0] * 3, std=[1.0] * 3, img_size=2)
    heatmaps = explain_all(ex, ["saliency", "occlusion"], X, torch.tensor([0]), True)
    assert list(heatmaps) == ["occlusion"]
    assert "skipped saliency" in capsys.readouterr().out
    with pytest.raises(KtaError, match="needs gradients"):
        explain_all(ex, ["saliency", "occlusion"], X, torch.tensor([0]))


class SizeRecorder(nn.Module):
    """Doubles its input and records every batch size it is called with."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(images))
        return images.flatten(1) * 2


def test_fixed_batch_calls_one_size_and_returns_each_input_once() -> None:
    """A compiled int8 program recompiles for every new batch size; FixedBatch pads short
    batches and cuts long ones, so it is only ever called at one size."""
    from kta_cli.explain.methods import FixedBatch

    recorder = SizeRecorder()
    fixed = FixedBatch(recorder, 4)
    for n in (1, 4, 5, 9):
        images = torch.arange(n * 2.0).reshape(n, 2, 1, 1)
        assert torch.equal(fixed(images), images.flatten(1) * 2)
    assert set(recorder.sizes) == {4}
