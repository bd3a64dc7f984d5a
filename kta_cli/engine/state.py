"""Random-number-generator state as plain data (tensors, ints, lists), for exact resume."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture_torch_rng() -> dict[str, Any]:
    """torch's generators (CPU, and CUDA when in use): what kta's own steps draw from. Cheap
    enough to take after every step (about 1 us; numpy's and Python's states cost 60 us)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def capture_rng() -> dict[str, Any]:
    """Every RNG a run may draw from, in a form torch.load(weights_only=True) reads."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        **capture_torch_rng(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
