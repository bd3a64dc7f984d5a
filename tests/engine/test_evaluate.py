"""Scoring a classifier: predictions, mean cross-entropy and the confusion matrix, by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kta_cli.engine.evaluate import checkpoint_data, confusion_matrix, predict
from kta_cli.errors import KtaError


class FixedLogits(nn.Module):
    """Returns the logits stored for each input id (the image is just its id)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.logits[ids.long()]


def test_predict_returns_argmax_true_classes_and_mean_cross_entropy() -> None:
    # three examples, two classes: logits (ln 3, 0) -> p = 3/4 for class 0
    logits = torch.tensor([[math.log(3), 0.0], [0.0, math.log(3)], [math.log(3), 0.0]])
    model = FixedLogits(logits)
    batches = [(torch.tensor([0, 1]), torch.tensor([0, 1])), (torch.tensor([2]), torch.tensor([1]))]
    predicted, true, loss = predict(model, batches, torch.device("cpu"))
    assert predicted.tolist() == [0, 1, 0] and true.tolist() == [0, 1, 1]
    # two right at p = 3/4, one wrong at p = 1/4
    assert loss == pytest.approx((2 * -math.log(0.75) - math.log(0.25)) / 3)
    assert not model.training  # scored in eval mode


def test_confusion_matrix_counts_rows_true_columns_predicted() -> None:
    true = torch.tensor([0, 0, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 1, 2, 0, 2])
    assert confusion_matrix(predicted, true, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert confusion_matrix(torch.tensor([1]), torch.tensor([1]), 4).shape == (4, 4)


def test_checkpoint_data_keeps_the_models_size_and_statistics() -> None:
    checkpoint = {
        "data": {"img_size": 16, "mean": [0.5], "std": [0.2]},
        "config": {"data": {"name": "digits", "img_size": 16}},
    }
    other = checkpoint_data(checkpoint, {"name": "shapes", "img_size": 64, "mean": [0.0]})
    assert other == {"name": "shapes", "img_size": 16, "mean": [0.5], "std": [0.2]}
    assert checkpoint_data(checkpoint, None) == {"name": "digits", "img_size": 16}
    with pytest.raises(KtaError, match="does not record its data set; pass data="):
        checkpoint_data({"data": {}}, None)
