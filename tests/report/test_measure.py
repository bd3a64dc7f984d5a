"""The measurements compression reports show: bytes by hand, latency rounds interleaved."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from kta_cli.report import measure


def test_parameter_bytes_count_parameters_and_buffers() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    # linear 3*2 + 2, batch norm weight, bias, mean, var (2 each) as float32, one int64 counter
    assert measure.parameter_bytes(model) == (8 + 4 * 2) * 4 + 8
    assert measure.parameter_bytes(model.half()) == (8 + 4 * 2) * 2 + 8


def test_accuracy_over_batches_in_eval_mode() -> None:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))  # predicts the larger coordinate
    batches = [
        (torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])),
        (torch.tensor([[0.0, 2.0]]), torch.tensor([1])),
    ]
    model.train()
    assert measure.accuracy(model, batches) == pytest.approx(2 / 3)
    assert not model.training


def test_interleaved_latency_alternates_candidates_round_by_round(monkeypatch) -> None:
    calls: list[str] = []
    runs = {name: (lambda x, name=name: calls.append(name)) for name in ("float", "int8")}
    clock = SimpleNamespace(perf_counter=iter(range(10_000)).__next__)  # ticks 1 s per reading
    monkeypatch.setattr(measure, "time", clock)
    latencies = measure.interleaved_latency_ms(runs, torch.zeros(1), rounds=3, repeats=2)
    # warm-up: 3 + 1 calls of each; then every round 1 warm-up + 2 timed calls of each in turn,
    # so a slow spell of the machine hits both candidates alike
    assert calls[:8] == ["float"] * 4 + ["int8"] * 4
    assert calls[8:] == (["float"] * 3 + ["int8"] * 3) * 3
    assert latencies == {"float": 1000.0, "int8": 1000.0}  # every timed call: 1 tick, in ms


def test_kernel_time_counts_the_convolution_and_not_the_python_around_it() -> None:
    conv = nn.Conv2d(8, 8, 3, padding=1).eval()
    images = torch.randn(1, 8, 32, 32)

    def slow_python(x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.002)  # 2 ms outside any kernel, as a wrapper's overhead would be
        return conv(x)

    with torch.inference_mode():
        inside = measure.kernel_ms(conv, images, calls=5)
        around = measure.kernel_ms(slow_python, images, calls=5)
    assert 0 < inside < 2 and 0 < around < 2  # the sleep is not counted as kernel time
    assert measure.kernel_ms(torch.relu, images, calls=5) == 0  # no library kernel in a ReLU
