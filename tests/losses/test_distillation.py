"""Distillation losses against values worked out by hand."""

import math

import pytest
import torch

from kta_cli.losses.distillation import (
    combined_distillation_loss,
    logit_mse_loss,
    soft_target_loss,
)

# Student logits [0, 0] give p_S = [1/2, 1/2]. Teacher logits [ln 3, 0]:
#   T = 1: p_T = [3/4, 1/4]; KL(p_T || p_S) = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.1308120
#   T = 2: p_T = [sqrt3, 1] / (sqrt3 + 1) = [0.6339746, 0.3660254];
#          KL = 0.6339746 ln(1.2679492) + 0.3660254 ln(0.7320508) = 0.0363408; T^2 * KL = 0.1453631
STUDENT = torch.tensor([[0.0, 0.0]])
TEACHER = torch.tensor([[math.log(3.0), 0.0]])


def test_soft_targets_at_temperature_one_is_the_kl_divergence():
    assert soft_target_loss(STUDENT, TEACHER, 1.0).item() == pytest.approx(0.1308120, abs=1e-6)


def test_soft_targets_are_scaled_by_temperature_squared():
    assert soft_target_loss(STUDENT, TEACHER, 2.0).item() == pytest.approx(0.1453631, abs=1e-6)


def test_soft_targets_average_over_the_batch_and_vanish_on_agreement():
    student = torch.cat([STUDENT, TEACHER])
    teacher = torch.cat([TEACHER, TEACHER])  # second example agrees exactly: KL 0
    assert soft_target_loss(student, teacher, 1.0).item() == pytest.approx(0.1308120 / 2, abs=1e-6)


def test_soft_targets_direction_is_teacher_to_student():
    # KL(p_S || p_T) would be 1/2 ln(2/3) + 1/2 ln(2) = 0.1438410, not 0.1308120
    assert soft_target_loss(STUDENT, TEACHER, 1.0).item() != pytest.approx(0.1438410, abs=1e-4)


def test_logit_mse_sums_over_classes_and_averages_over_the_batch():
    student = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    teacher = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    # (0 + 4 + 9 + 0) / 2 examples
    assert logit_mse_loss(student, teacher).item() == pytest.approx(6.5)


def test_combined_loss_weights_each_part():
    loss = combined_distillation_loss(
        ce=torch.tensor(2.0),
        kd=torch.tensor(4.0),
        mse=torch.tensor(1.0),
        feature=torch.tensor(3.0),
        alpha=0.25,
        kd_weight=1.0,
        mse_weight=0.5,
        hint_weight=2.0,
    )
    # 0.25 * 2 + 0.75 * (4 + 0.5 * 1) + 2 * 3 = 0.5 + 3.375 + 6
    assert loss.item() == pytest.approx(9.875)


def test_combined_loss_with_alpha_one_is_plain_cross_entropy():
    loss = combined_distillation_loss(
        ce=torch.tensor(2.0),
        kd=torch.tensor(4.0),
        mse=None,
        feature=None,
        alpha=1.0,
        kd_weight=1.0,
        mse_weight=0.0,
        hint_weight=1.0,
    )
    assert loss.item() == pytest.approx(2.0)
