"""Checkpoints as attack victims: pixel-space models, and the float parent of an int8 program."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from kta_cli.engine.checkpoint import load_checkpoint, resolve_checkpoint
from kta_cli.errors import KtaError
from kta_cli.loading import checkpoint_kind, model_from_checkpoint
from kta_cli.robustness.attacks import PixelModel
from kta_cli.robustness.evaluate import Victim

NO_GRADIENTS = ("quantized",)  # int8 programs: converted graphs that autograd cannot go through


def pixel_model(checkpoint: dict[str, Any], device: torch.device) -> PixelModel:
    data = checkpoint["data"]
    model = PixelModel(model_from_checkpoint(checkpoint), data["mean"], data["std"])
    return model.to(device).eval()


def float_parent(path: Path, checkpoint: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The nearest checkpoint up the `parent` chain that gradients can go through."""
    current_path, current, seen = path, checkpoint, {path.resolve()}
    while checkpoint_kind(current) in NO_GRADIENTS:
        parent = current.get("parent")
        if not parent:
            raise KtaError(
                f"{path} is an int8 program without gradients and records no float parent; "
                "attack its float checkpoint and put the int8 one in compare="
            )
        parent_path = Path(parent)
        if not parent_path.is_file():
            raise KtaError(
                f"{path} is an int8 program without gradients, and its float parent "
                f"{parent_path} is missing; pass a float checkpoint instead"
            )
        if parent_path.resolve() in seen:
            raise KtaError(f"the parent chain of {path} loops at {parent_path}")
        seen.add(parent_path.resolve())
        current_path, current = parent_path, load_checkpoint(parent_path)
    return current_path, current


def display_name(checkpoint: dict[str, Any]) -> str:
    name = checkpoint.get("model_args", {}).get("name", "model")
    kind = checkpoint_kind(checkpoint)
    return name if kind == "plain" else f"{name} ({'int8' if kind == 'quantized' else kind})"


def load_victim(spec: str, device: torch.device) -> tuple[Victim, dict[str, Any]]:
    """The checkpoint at `spec` as a Victim (its checkpoint too, for class names and data)."""
    path = resolve_checkpoint(spec)
    checkpoint = load_checkpoint(path)
    num_classes = (
        len(checkpoint.get("class_names") or []) or checkpoint["model_args"]["num_classes"]
    )
    if checkpoint_kind(checkpoint) not in NO_GRADIENTS:
        model = pixel_model(checkpoint, device)
        victim = Victim(display_name(checkpoint), model, model, device, num_classes)
        return victim, checkpoint
    parent_path, parent = float_parent(path, checkpoint)
    cpu = torch.device("cpu")  # int8 kernels run on the CPU
    victim = Victim(
        display_name(checkpoint),
        pixel_model(checkpoint, cpu),
        pixel_model(parent, device),
        cpu,
        num_classes,
        transfer_from=str(parent_path),
    )
    return victim, checkpoint


def unique_labels(victims: list[Victim]) -> None:
    """'test_resnet', 'test_resnet #2', ... so every line of a plot has its own name."""
    seen: dict[str, int] = {}
    for victim in victims:
        seen[victim.label] = seen.get(victim.label, 0) + 1
        if seen[victim.label] > 1:
            victim.label = f"{victim.label} #{seen[victim.label]}"
