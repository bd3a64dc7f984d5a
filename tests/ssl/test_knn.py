"""The kNN monitor's weighted vote, checked by hand."""

import math

import torch
import torch.nn.functional as F

from kta_cli.ssl.knn import knn_predict


def test_weighted_vote_by_hand():
    # Bank: two images of class 0 near (1, 0), one of class 1 exactly at the query's direction.
    bank = F.normalize(torch.tensor([[1.0, 0.1], [1.0, -0.1], [0.8, 0.6]]), dim=1)
    labels = torch.tensor([0, 0, 1])
    query = F.normalize(torch.tensor([[0.8, 0.6]]), dim=1)
    cosines = (query @ bank.T)[0]  # 0.8554, 0.7362, 1.0
    # k = 1: the nearest neighbour alone, class 1.
    assert knn_predict(query, bank, labels, num_classes=2, k=1).item() == 1
    # k = 3, T = 1: class 0 gets e^0.8554 + e^0.7362 = 2.352 + 2.088 = 4.440 > e^1 = 2.718.
    votes0 = math.exp(cosines[0]) + math.exp(cosines[1])
    assert votes0 > math.e
    assert knn_predict(query, bank, labels, num_classes=2, k=3, temperature=1.0).item() == 0
    # k = 3, T = 0.07: e^(1/0.07) outweighs the two farther ones (e^12.2 + e^10.5 < e^14.3).
    assert knn_predict(query, bank, labels, num_classes=2, k=3, temperature=0.07).item() == 1
    # k above the bank's size is clipped to it.
    assert knn_predict(query, bank, labels, num_classes=2, k=50, temperature=1.0).item() == 0
