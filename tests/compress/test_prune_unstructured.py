"""Unstructured pruning against hand-computed masks: which weights go, and exactly how many."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kta_cli.compress.prune_unstructured import (
    layer_sparsity,
    make_permanent,
    overall_sparsity,
    prune_unstructured,
)
from kta_cli.errors import KtaError


def two_layers(small: list[float], large: list[float]) -> dict[str, nn.Linear]:
    """Two 1-output linear layers with the given weights: a small-weight one and a large one."""
    layers = {"a": nn.Linear(len(small), 1), "b": nn.Linear(len(large), 1)}
    with torch.no_grad():
        layers["a"].weight.copy_(torch.tensor([small]))
        layers["b"].weight.copy_(torch.tensor([large]))
    return layers


def kept(layer: nn.Linear) -> list[float]:
    return layer.weight.detach().flatten().tolist()


def test_global_l1_removes_the_smallest_weights_across_layers() -> None:
    layers = two_layers([1.0, -2.0, 3.0, 4.0], [10.0, -20.0, 30.0, 40.0])
    prune_unstructured(layers, 0.5, criterion="l1", scope="global")
    assert kept(layers["a"]) == [0.0, 0.0, 0.0, 0.0]  # the four smallest |w| of all eight
    assert kept(layers["b"]) == [10.0, -20.0, 30.0, 40.0]


def test_mean_std_judges_each_weight_against_its_own_layer() -> None:
    # z-scores of |w| are the same in both layers, so each loses its two smallest
    layers = two_layers([1.0, -2.0, 3.0, 4.0], [10.0, -20.0, 30.0, 40.0])
    prune_unstructured(layers, 0.5, criterion="mean_std", scope="global")
    assert kept(layers["a"]) == [0.0, 0.0, 3.0, 4.0]
    assert kept(layers["b"]) == [0.0, 0.0, 30.0, 40.0]


def test_layer_scope_and_layer_ratios() -> None:
    layers = two_layers([1.0, -2.0, 3.0, 4.0], [10.0, -20.0, 30.0, 40.0])
    prune_unstructured(layers, 0.25, scope="layer", layer_ratios={"b": 0.75})
    assert kept(layers["a"]) == [0.0, -2.0, 3.0, 4.0]
    assert kept(layers["b"]) == [0.0, 0.0, 0.0, 40.0]


def test_taylor_ranks_by_weight_times_gradient() -> None:
    layers = two_layers([1.0, 2.0], [3.0, 4.0])
    for layer, grad in zip(layers.values(), ([[5.0, 0.1]], [[0.1, 1.0]]), strict=True):
        layer.weight.grad = torch.tensor(grad)
    # |w * g| = a: [5.0, 0.2], b: [0.3, 4.0] -> the two smallest are a[1] and b[0]
    prune_unstructured(layers, 0.5, criterion="taylor")
    assert kept(layers["a"]) == [1.0, 0.0] and kept(layers["b"]) == [0.0, 4.0]


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.9])
def test_reaches_the_asked_sparsity_exactly_and_only_grows(ratio: float) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    layers = {"0": net[0], "3": net[3]}
    total = sum(m.weight.numel() for m in layers.values())
    prune_unstructured(layers, ratio / 2)
    first_zeros = {n: m.weight == 0 for n, m in layers.items()}
    make_permanent(net)
    prune_unstructured(layers, ratio, criterion="mean_std")  # a second step, another criterion
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    assert zeros == round(ratio * total)
    assert overall_sparsity(layers) == pytest.approx(round(ratio * total) / total)
    for name, layer in layers.items():  # what step one removed stays removed
        assert bool((layer.weight[first_zeros[name]] == 0).all())
    make_permanent(net)
    assert sorted(net.state_dict()) == ["0.bias", "0.weight", "3.bias", "3.weight"]
    assert set(layer_sparsity(layers)) == {"0", "3"}


def test_masks_keep_pruned_weights_at_zero_while_training() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(6, 3)
    prune_unstructured({"l": layer}, 0.5)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        layer(torch.randn(4, 6)).pow(2).sum().backward()
        optimizer.step()
    make_permanent(layer)
    assert int((layer.weight == 0).sum()) == 9


def test_channel_criteria_are_refused() -> None:
    with pytest.raises(KtaError, match="bn_scale"):
        prune_unstructured(two_layers([1.0], [2.0]), 0.5, criterion="bn_scale")
