"""onnxruntime against torch on the same images: the check an exported model must pass."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kta_cli.export.onnx import INPUT_NAME

Runner = Callable[[torch.Tensor], torch.Tensor]  # [0, 1] images -> logits


def onnx_runner(path: Path, threads: int) -> Runner:
    """An onnxruntime CPU session at a fixed thread count, called like a model.

    Spinning is off: its idle threads would keep the cores busy while torch runs between
    onnxruntime calls, slowing both sides of an interleaved measurement.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # no warnings about ops it leaves unfused
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(images: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(images.detach().float().numpy())
        return torch.from_numpy(session.run(None, {INPUT_NAME: array})[0])

    return run


@torch.no_grad()
def logits_of(run: Runner, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    return torch.cat(
        [run(images[i : i + batch_size]).float() for i in range(0, len(images), batch_size)]
    )


def agreement(reference: torch.Tensor, other: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Max abs logit difference, top-1 agreement, and each side's accuracy."""
    return {
        "max_abs_diff": float((reference - other).abs().max()) if len(labels) else 0.0,
        "agreement": float((reference.argmax(1) == other.argmax(1)).float().mean()),
        "reference_acc": float((reference.argmax(1) == labels).float().mean()),
        "acc": float((other.argmax(1) == labels).float().mean()),
    }
