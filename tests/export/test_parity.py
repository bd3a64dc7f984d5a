"""The parity figures against values worked out by hand."""

from __future__ import annotations

import torch

from kta_cli.export.parity import agreement


def test_agreement_diff_and_accuracies_by_hand():
    reference = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5], [0.2, 0.1]])
    other = torch.tensor([[2.0, 1.5], [0.0, 2.9], [0.4, 0.5], [0.2, 0.1]])
    labels = torch.tensor([0, 1, 1, 1])
    measured = agreement(reference, other, labels)
    # row 2 flips (1.0 > 0.5 becomes 0.4 < 0.5); the largest change is 1.0 - 0.4 = 0.6
    assert abs(measured["max_abs_diff"] - 0.6) < 1e-6
    assert measured["agreement"] == 0.75
    # labels 0, 1, 1, 1; reference predicts 0, 1, 0, 0 -> 2 of 4 right; other 0, 1, 1, 0 -> 3
    assert measured["reference_acc"] == 0.5 and measured["acc"] == 0.75
