"""Measurements every compression report shows side by side: size, latency, accuracy."""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn


def parameter_bytes(model: nn.Module) -> int:
    """Bytes held by parameters and buffers (quantized packed weights count via state_dict)."""
    total = 0
    for value in model.state_dict().values():
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
    return total


def serialized_bytes(obj: Any) -> int:
    """Size of torch.save(obj) in memory (a state_dict, a model's weights)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getbuffer().nbytes


def file_bytes(path: str | Path) -> int:
    return Path(path).stat().st_size


@torch.inference_mode()
def latency_ms(
    run: Callable[[torch.Tensor], Any], example: torch.Tensor, *, repeats: int = 20, warmup: int = 5
) -> float:
    """Median wall-clock milliseconds of run(example) after warm-up (set threads beforehand)."""
    for _ in range(warmup):
        run(example)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(example)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


Runs = dict[str, Callable[[torch.Tensor], Any]]


def interleaved(runs: Runs, measure: Callable[[Any], float], rounds: int) -> dict[str, float]:
    """Median of measure(run) for each candidate, taken in alternating rounds (one measurement of
    each candidate in turn per round) so a slow spell of the machine hits all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            samples[name].append(measure(run))
    return {name: statistics.median(values) for name, values in samples.items()}


def interleaved_latency_ms(
    runs: Runs, example: torch.Tensor, *, rounds: int = 5, repeats: int = 10
) -> dict[str, float]:
    """Median latency of each candidate, measured in alternating rounds so drift hits all alike."""
    for run in runs.values():
        latency_ms(run, example, repeats=1, warmup=3)
    return interleaved(
        runs, lambda run: latency_ms(run, example, repeats=repeats, warmup=1), rounds
    )


# the math libraries' compute ops as torch.profiler names them: oneDNN (fp32 and int8
# convolutions, matmuls), MKL, quantized pooling, and ATen's own convolution and matmul kernels
LIBRARY_KERNELS = (
    "onednn::", "mkldnn::", "mkl::", "quantized::",
    "aten::mkldnn_convolution", "aten::_slow_conv2d_forward", "aten::addmm", "aten::mm",
)  # fmt: skip


def kernel_ms(run: Callable[[torch.Tensor], Any], example: torch.Tensor, calls: int = 20) -> float:
    """Milliseconds per call of run(example) spent inside LIBRARY_KERNELS (their self time
    under torch.profiler): the part of a compiled model's latency that no change to the runtime
    around the kernels (wrapper, guards, ahead-of-time compiling) takes away. Profiling adds a
    few microseconds to each op, which pulls a ratio of two such times towards 1 when the kernels
    are short: trust it where a call's kernels take milliseconds, not a small model's
    microseconds."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        run(example)
    with profile(activities=[ProfilerActivity.CPU]) as trace:
        for _ in range(calls):
            run(example)
    events = trace.key_averages()
    inside = sum(e.self_cpu_time_total for e in events if e.key.startswith(LIBRARY_KERNELS))
    return inside / calls / 1000


def interleaved_kernel_ms(
    runs: Runs, example: torch.Tensor, *, rounds: int = 5, calls: int = 10
) -> dict[str, float]:
    """Median kernel_ms of each candidate over alternating rounds, as interleaved_latency_ms."""
    return interleaved(runs, lambda run: kernel_ms(run, example, calls), rounds)


@torch.no_grad()
def accuracy(model: Callable[[torch.Tensor], torch.Tensor], loader: Any) -> float:
    """Top-1 accuracy of `model` over (images, labels) batches."""
    if isinstance(model, nn.Module):
        model.eval()
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(0, 0)
    correct = total = 0
    for images, labels in loader:
        predicted = model(images).argmax(dim=1)
        correct += int((predicted == labels).sum())
        total += len(labels)
    return correct / max(total, 1)
