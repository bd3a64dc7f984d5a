"""EWC's penalty and diagonal Fisher on models small enough to work out by hand."""

import pytest
import torch
from torch import nn

from kta_cli.continual.methods import ContinualTask, EWCTask, diagonal_fisher
from kta_cli.losses.continual import ewc_penalty


def test_penalty_on_a_two_parameter_model_by_hand():
    a = torch.tensor(1.0, requires_grad=True)
    b = torch.tensor(2.0, requires_grad=True)
    anchors = {"a": torch.tensor(0.5), "b": torch.tensor(2.5)}
    fisher = {"a": torch.tensor(2.0), "b": torch.tensor(4.0)}
    # 2 * (1 - 0.5)^2 + 4 * (2 - 2.5)^2 = 0.5 + 1.0
    penalty = ewc_penalty({"a": a, "b": b}, anchors, fisher)
    assert penalty.item() == pytest.approx(1.5)
    penalty.backward()  # d/da = 2 F_a (a - a*) = 2; d/db = 2 * 4 * (-0.5) = -4
    assert a.grad.item() == pytest.approx(2.0) and b.grad.item() == pytest.approx(-4.0)


def test_parameters_the_fisher_does_not_name_are_free():
    moved = {"a": torch.tensor(9.0), "b": torch.tensor(2.0)}
    assert ewc_penalty(moved, {"b": torch.tensor(2.0)}, {"b": torch.tensor(5.0)}).item() == 0.0


def test_diagonal_fisher_of_a_linear_model_by_hand_and_the_task_adds_half_lambda():
    model = nn.Linear(1, 2, bias=False)
    nn.init.zeros_(model.weight)  # logits (0, 0): p = (0.5, 0.5)
    batch = (torch.ones(1, 1), torch.tensor([0]))
    # d CE / d w_c = (p_c - y_c) x: (-0.5, 0.5); squared: 0.25 each
    fisher = diagonal_fisher(model, [batch], torch.device("cpu"))
    assert fisher["weight"].flatten().tolist() == pytest.approx([0.25, 0.25])
    task = EWCTask(model, ewc_lambda=10.0, fisher_batches=None)
    task.after_task([batch], [0, 1], torch.device("cpu"))
    with torch.no_grad():
        model.weight.fill_(1.0)  # (1 - 0)^2 * 0.25 * 2 weights = 0.5; lambda/2 * 0.5 = 2.5
    task.train()
    out = task(batch)
    assert out["ewc"].item() == pytest.approx(2.5)
    assert out["loss"].item() == pytest.approx(out["ce"].item() + 2.5)


def test_task_incremental_scoring_masks_the_logits_to_the_task_classes():
    model = nn.Linear(1, 4, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[4.0], [1.0], [2.0], [3.0]]))  # class 0 always wins
    task = ContinualTask(model).eval()
    batch = (torch.ones(2, 1), torch.tensor([3, 2]))
    assert task(batch)["acc"].item() == 0.0
    task.eval_classes = [2, 3]  # among 2 and 3, class 3 wins: one of two right
    assert task(batch)["acc"].item() == pytest.approx(0.5)


def test_lwf_distils_only_old_classes_and_keeps_its_teacher_frozen_in_eval_mode():
    from kta_cli.continual.methods import LwFTask
    from kta_cli.losses.distillation import soft_target_loss

    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4))
    task = LwFTask(model, alpha=0.5, temperature=2.0)
    batch = (torch.randn(8, 2), torch.tensor([2, 3] * 4))
    task.train()
    assert "lwf" not in task(batch)  # nothing learned before: plain cross-entropy
    task.after_task([], [0, 1], torch.device("cpu"))
    task.train()
    assert not task.teacher.training and not any(p.requires_grad for p in task.teacher.parameters())
    running = task.teacher[1].running_mean.clone()
    with torch.no_grad():
        model[0].weight.add_(0.3)  # the student moves away from the teacher
    out = task(batch)
    assert torch.equal(task.teacher[1].running_mean, running)  # its BatchNorm did not move
    with torch.no_grad():
        expected = soft_target_loss(model(batch[0])[:, :2], task.teacher(batch[0])[:, :2], 2.0)
    assert out["lwf"].item() == pytest.approx(0.5 * expected.item(), rel=1e-4)
