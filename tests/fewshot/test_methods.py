"""Few-shot maths on tiny hand-made feature sets, each value worked out by hand in a comment."""

import math

import pytest
import torch

from kta_cli.fewshot.episodes import Episodes
from kta_cli.fewshot.methods import (
    MethodOptions,
    confidence,
    episode_accuracies,
    knn,
    nearest_centroid,
    transform,
)


def test_nearest_centroid_picks_the_closest_class_mean():
    # class 0 support (0,0),(2,0): mean (1,0); class 1 support (0,4),(0,6): mean (0,5).
    support = torch.tensor([[[[0.0, 0], [2, 0]], [[0, 4], [0, 6]]]])
    # query (1,2): |(0,2)| = 2 to class 0, |(1,-3)| = sqrt(10) to class 1 -> 0.
    # query (0,3): |(-1,3)| = sqrt(10) to class 0, |(0,-2)| = 2 to class 1 -> 1.
    query = torch.tensor([[[1.0, 2], [0, 3]]])
    assert nearest_centroid(support, query).tolist() == [[0, 1]]


def test_cl2n_centres_on_the_base_mean_then_normalises():
    base_mean = torch.tensor([1.0, 1.0])
    # (4,5) - (1,1) = (3,4), length 5 -> (0.6, 0.8); (1,-1) - (1,1) = (0,-2) -> (0,-1).
    out = transform(torch.tensor([[4.0, 5], [1, -1]]), "cl2n", base_mean)
    assert torch.allclose(out, torch.tensor([[0.6, 0.8], [0.0, -1.0]]))
    # L2N alone: (4,5)/sqrt(41).
    l2n = transform(torch.tensor([[4.0, 5]]), "l2n", None)
    assert torch.allclose(l2n, torch.tensor([[4, 5]]) / math.sqrt(41))


def test_cl2n_changes_the_decision_where_l2n_is_misled_by_the_shared_offset():
    # Base mean (10, 0). Class 0 support (11, 0), class 1 support (10, 1); query (12, 1.5).
    # L2N: angles from the x axis 0.0 deg (class 0), 5.7 deg (class 1), query 7.1 deg -> class 1.
    # CL2N: centred (1,0), (0,1), query (2,1.5) -> (0.8,0.6): cos 0.8 to class 0, 0.6 to 1 -> 0.
    support = torch.tensor([[[[11.0, 0]], [[10, 1]]]])
    query = torch.tensor([[[12.0, 1.5]]])
    mean = torch.tensor([10.0, 0.0])
    l2n = nearest_centroid(transform(support, "l2n", None), transform(query, "l2n", None))
    cl2n = nearest_centroid(transform(support, "cl2n", mean), transform(query, "cl2n", mean))
    assert l2n.tolist() == [[1]] and cl2n.tolist() == [[0]]


def test_knn_votes_and_breaks_ties_by_the_nearer_neighbour():
    # class 0: (0,0),(0,1); class 1: (5,0),(5,1). Query (1,0), k=3, euclidean: neighbours
    # (0,0) d=1, (0,1) d=1.41, (5,0) d=4 -> votes 2:1 -> class 0.
    support = torch.tensor([[[[0.0, 0], [0, 1]], [[5, 0], [5, 1]]]])
    query = torch.tensor([[[1.0, 0], [3.0, 0]]])
    # query (3,0), k=2: (5,0) d=2 then (0,0) d=3 -> one vote each, the nearer is class 1.
    assert knn(support, query, k=3, metric="euclidean")[0, 0].item() == 0
    assert knn(support, query, k=2, metric="euclidean")[0, 1].item() == 1


def test_confidence_interval_is_1_96_std_over_root_episodes():
    # accuracies 0.2, 0.4, 0.6, 0.8: mean 0.5; deviations +-0.1, +-0.3 -> variance
    # (0.09+0.01+0.01+0.09)/4 = 0.05, std 0.2236; ci = 1.96 * 0.2236 / 2 = 0.2191.
    summary = confidence(torch.tensor([0.2, 0.4, 0.6, 0.8]))
    assert summary["mean"] == pytest.approx(0.5)
    assert summary["std"] == pytest.approx(math.sqrt(0.05))
    assert summary["ci95"] == pytest.approx(0.21913, abs=1e-4)
    assert summary["episodes"] == 4


def test_episode_accuracies_score_every_method_on_the_same_episodes():
    # Two perfectly separated classes: every method is right on every query.
    features = torch.tensor([[0.0, 1], [0, 1.1], [0, 0.9], [1, 0], [1.1, 0], [0.9, 0]])
    episodes = Episodes(
        support=torch.tensor([[[0], [3]], [[1], [4]]]),
        query=torch.tensor([[[1, 2], [4, 5]], [[0, 2], [3, 5]]]),
        classes=torch.tensor([[0, 1], [0, 1]]),
    )
    methods = ["nc_un", "nc_l2n", "nc_cl2n", "knn", "logreg"]
    accuracies = episode_accuracies(
        features, episodes, methods, base_mean=torch.zeros(2), options=MethodOptions(),
        chunk_floats=8,  # one episode per chunk: the chunked path joins them in order
    )  # fmt: skip
    for method in methods:
        assert accuracies[method].tolist() == [1.0, 1.0], method
