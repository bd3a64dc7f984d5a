"""Calibration scores and temperature scaling against values worked out by hand."""

import math

import pytest
import torch

from kta_cli.robustness.calibration import (
    brier_score,
    calibration_scores,
    expected_calibration_error,
    fit_temperature,
    has_temperature_optimum,
    negative_log_likelihood,
    reliability_bins,
)

# Four images, three classes (rows sum to 1, so logits = log p give softmax = p):
#   p1 = [.9, .05, .05] y=0: right, confidence .9
#   p2 = [.6, .3, .1]   y=1: wrong (says 0), confidence .6
#   p3 = [.2, .7, .1]   y=1: right, confidence .7
#   p4 = [.3, .3, .4]   y=0: wrong (says 2), confidence .4
PROBS = torch.tensor(
    [[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]], dtype=torch.float64
)
LABELS = torch.tensor([0, 1, 1, 0])


def test_ece_with_two_bins_by_hand():
    # bin (0, .5]: p4 alone, accuracy 0, confidence .4 -> weight 1/4 * gap .4 = .1
    # bin (.5, 1]: p1 p2 p3, accuracy 2/3, confidence 2.2/3 -> 3/4 * .2/3 = .05;  ECE = .15
    binned = reliability_bins(PROBS, LABELS, bins=2)
    assert binned.counts == [1, 3]
    assert binned.accuracy == pytest.approx([0.0, 2 / 3])
    assert binned.confidence == pytest.approx([0.4, 2.2 / 3])
    assert expected_calibration_error(PROBS, LABELS, bins=2) == pytest.approx(0.15)


def test_bins_are_closed_on_the_right_and_empty_bins_weigh_nothing():
    # confidence exactly .5 lies in (0, .5], bin 0; a perfectly calibrated bin adds nothing
    probs = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.float64)
    binned = reliability_bins(probs, torch.tensor([0, 1]), bins=4)
    assert binned.counts == [0, 2, 0, 0]  # (.25, .5]: both; accuracy 1/2 = confidence 1/2
    assert expected_calibration_error(probs, torch.tensor([0, 1]), bins=4) == pytest.approx(0.0)


def test_nll_by_hand():
    # -(ln .9 + ln .3 + ln .7 + ln .3) / 4 = (0.1053605 + 1.2039728 + 0.3566749 + 1.2039728) / 4
    expected = (0.1053605 + 1.2039728 + 0.3566749 + 1.2039728) / 4  # 0.7174953
    assert negative_log_likelihood(PROBS.log(), LABELS) == pytest.approx(expected, abs=1e-6)


def test_brier_by_hand():
    # p1: .1^2 + .05^2 + .05^2 = .015    p2: .6^2 + .7^2 + .1^2 = .86
    # p3: .2^2 + .3^2 + .1^2 = .14       p4: .7^2 + .3^2 + .4^2 = .74     mean = 1.755 / 4
    assert brier_score(PROBS, LABELS) == pytest.approx(1.755 / 4)


def test_calibration_scores_read_logits():
    scores = calibration_scores(PROBS.log().float(), LABELS, bins=2)
    assert scores["ece"] == pytest.approx(0.15, abs=1e-6)
    assert scores["brier"] == pytest.approx(1.755 / 4, abs=1e-6)


def test_temperature_recovers_the_hand_computed_optimum():
    # Two classes, logits [4, 0] on every image, 3 of 4 right: the best NLL has p = 3/4, so
    # sigmoid(4 / T) = 3/4, 4 / T = ln 3, T = 4 / ln 3 = 3.6409
    logits = torch.tensor([[4.0, 0.0]] * 4)
    labels = torch.tensor([0, 0, 0, 1])
    assert fit_temperature(logits, labels) == pytest.approx(4 / math.log(3), rel=1e-4)


def test_no_temperature_is_fitted_when_every_held_out_image_is_right():
    # Logits [4, 0], all four right: NLL = log(1 + e^(-4 / T)) falls towards 0 as T -> 0, so
    # there is no optimum; a fit would hand back T ~ 0 and make every test error certain.
    logits, labels = torch.tensor([[4.0, 0.0]] * 4), torch.zeros(4, dtype=torch.long)
    assert not has_temperature_optimum(logits, labels)
    with pytest.raises(ValueError, match="no temperature optimum"):
        fit_temperature(logits, labels)
    assert has_temperature_optimum(logits, torch.tensor([0, 0, 0, 1]))


def test_temperature_scaling_keeps_argmax_and_lowers_nll_and_ece_when_over_confident():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(5, (400,), generator=g)
    clean = torch.randn(400, 5, generator=g)
    clean[torch.arange(400), labels] += 1.5  # right about two thirds of the time
    logits = 6.0 * clean  # the same decisions, far too sure of them
    temperature = fit_temperature(logits, labels)
    scaled = logits / temperature
    assert temperature > 2.0  # cools the over-confident logits down
    assert torch.equal(scaled.argmax(dim=1), logits.argmax(dim=1))
    before, after = calibration_scores(logits, labels, 10), calibration_scores(scaled, labels, 10)
    assert after["nll"] < before["nll"] and after["ece"] < before["ece"]
    assert after["brier"] < before["brier"]
