"""Deletion / insertion curves rank a known-good attribution above random on a constructed model."""

from __future__ import annotations

import torch
from torch import nn

from kta_cli.explain import faithfulness as faith


class CornerModel(nn.Module):
    """Class 0's logit is 8 x the mean of the top-left 4x4 corner; class 1's is fixed at 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        corner = x[:, :, :4, :4].mean(dim=(1, 2, 3))
        return torch.stack([8 * corner - 4, torch.zeros_like(corner)], dim=1)


def setup() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    images = torch.ones(2, 3, 8, 8)
    reference = torch.zeros_like(images)
    corner = torch.zeros(2, 8, 8)
    corner[:, :4, :4] = 1.0  # the pixels the model reads: a perfect attribution
    return images, reference, corner, torch.zeros(2, dtype=torch.long)


def test_area_under_a_known_curve() -> None:
    assert faith.area(torch.tensor([[1.0, 0.5, 0.0]])) == 0.5
    assert faith.area(torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])) == 0.5


def test_curves_start_and_end_at_the_full_and_empty_image() -> None:
    images, reference, corner, targets = setup()
    curves = faith.curves(CornerModel(), images, corner, targets, reference, steps=4)
    full, empty = torch.sigmoid(torch.tensor(4.0)), torch.sigmoid(torch.tensor(-4.0))
    assert torch.allclose(curves.deletion[:, 0], full) and torch.allclose(
        curves.deletion[:, -1], empty
    )
    assert torch.allclose(curves.insertion[:, 0], empty) and torch.allclose(
        curves.insertion[:, -1], full
    )
    # removing the first quarter of pixels (exactly the corner) already empties the evidence
    assert torch.allclose(curves.deletion[:, 1], empty)


def test_good_attribution_beats_random_and_reversed_one_is_flagged() -> None:
    images, reference, corner, targets = setup()
    model = CornerModel()
    good = faith.curves(model, images, corner, targets, reference, steps=16)
    reverse = faith.curves(model, images, 1 - corner, targets, reference, steps=16)
    random = faith.random_curves(model, images, targets, reference, steps=16, repeats=3)
    assert good.deletion_auc < random.deletion_auc < reverse.deletion_auc
    assert good.insertion_auc > random.insertion_auc > reverse.insertion_auc
    assert faith.score_row(good, random)["better_than_random"] is True
    assert faith.score_row(reverse, random)["better_than_random"] is False
