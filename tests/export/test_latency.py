"""Latency-table helpers: batches of real images, ratios against a baseline."""

from __future__ import annotations

import torch
from torch import nn

from kta_cli.export.latency import batch_of, compiled_runner, ratios


def test_batch_of_repeats_the_images_it_has():
    images = torch.arange(3.0).view(3, 1, 1, 1)
    assert batch_of(images, 7).flatten().tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert batch_of(images, 2).flatten().tolist() == [0, 1]


def test_ratios_divide_by_the_baseline_per_batch():
    table = {"eager": {"batch1": 2.0, "batch8": 10.0}, "onnx": {"batch1": 0.5, "batch8": 4.0}}
    assert ratios(table, "eager") == {
        "eager": {"batch1": 1.0, "batch8": 1.0},
        "onnx": {"batch1": 0.25, "batch8": 0.4},
    }
    assert ratios(table, "compiled") == {"eager": {}, "onnx": {}}  # no baseline row: no ratios


def test_a_model_that_does_not_compile_is_reported_not_raised(monkeypatch):
    def broken(model, **kwargs):
        raise RuntimeError("no C compiler found")

    monkeypatch.setattr(torch, "compile", broken)
    runner, why = compiled_runner(nn.Identity(), [torch.zeros(1, 3, 4, 4)])
    assert runner is None and why == "RuntimeError: no C compiler found"
