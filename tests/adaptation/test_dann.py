"""DANN: the gradient-reversal layer, the lambda schedule (by hand), the task and its loader."""

import math

import pytest
import timm
import torch

from kta_cli.adaptation.dann import DannTask, dann_lambda, reverse_gradient
from kta_cli.adaptation.data import PairedLoader
from kta_cli.data.loaders import InMemoryLoader


def test_gradient_reversal_is_identity_forward_and_negated_scaled_backward():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x)
    # d/dx sum(w * y) = w forward; reversed and scaled by 0.5: -0.5 * w = [-1, -1.5, 2]
    (y * torch.tensor([2.0, 3.0, -4.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-1.0, -1.5, 2.0]))


def test_gradient_reversal_reaches_only_what_lies_before_it():
    # f = 3 * head(x) with head(z) = 2 z behind the reversal layer (scale 1):
    # d f / d head_weight = 3 * x (untouched), d f / d x = -(3 * 2) = -6
    x = torch.tensor([1.5], requires_grad=True)
    head = torch.tensor([2.0], requires_grad=True)
    (3 * head * reverse_gradient(x, 1.0)).sum().backward()
    assert head.grad.item() == pytest.approx(4.5) and x.grad.item() == pytest.approx(-6.0)


def test_lambda_schedule_by_hand():
    assert dann_lambda(0.0) == 0.0
    # p = 0.1, gamma 10: 2 / (1 + e^-1) - 1 = 2 / 1.367879 - 1 = 0.462117
    assert dann_lambda(0.1) == pytest.approx(0.462117, abs=1e-6)
    # p = 1: 2 / (1 + e^-10) - 1 = 0.999909
    assert dann_lambda(1.0) == pytest.approx(0.999909, abs=1e-6)
    assert dann_lambda(0.5, gamma=2.0) == pytest.approx(2 / (1 + math.exp(-1)) - 1)


def test_dann_task_trains_source_labels_only_and_counts_its_progress():
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=3)
    task = DannTask(model, img_size=16, total_steps=10)
    source, target = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
    labels = torch.tensor([0, 1, 2, 0])
    out = task((source, labels, target, torch.tensor([2, 2, 2, 2])))
    out_other = task((source, labels, target, torch.tensor([0, 1, 1, 0])))
    assert int(task.steps_done) == 2 and out["lambda"] == 0.0  # p = 0 on the first step
    assert out_other["lambda"] == pytest.approx(dann_lambda(0.1))
    # target labels are scored, never learned from: same loss whatever they say
    task.eval()
    a = task((source, labels, target, torch.tensor([2, 2, 2, 2])))
    b = task((source, labels, target, torch.tensor([0, 1, 1, 0])))
    assert torch.equal(a["loss"], b["loss"])
    assert "steps_done" in task.state_dict() and task.loss_parameters()


def test_paired_loader_is_seeded_and_resumes_at_a_batch():
    images = torch.arange(10.0)[:, None, None, None].expand(10, 3, 2, 2)

    def loader():
        source = InMemoryLoader(images, torch.arange(10), batch_size=4, shuffle=True, seed=1)
        target = InMemoryLoader(images[:6] + 100, torch.arange(6), batch_size=4, shuffle=True)
        return PairedLoader(source, target, shuffle=True)

    full = loader()
    full.set_epoch(2)
    batches = list(full)
    assert len(batches) == 3 and [len(b[2]) for b in batches] == [4, 4, 2]  # target wraps
    resumed = loader()
    resumed.set_epoch(2, start_batch=1)
    later = list(resumed)
    for mine, theirs in zip(later, batches[1:], strict=True):
        assert all(torch.equal(m, t) for m, t in zip(mine, theirs, strict=True))
