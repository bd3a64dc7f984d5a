"""One way from a checkpoint to a model, above models/ and compress/.

A kta checkpoint (engine/checkpoint.py) says how its model was made; `checkpoint_kind` reads that
as one of KINDS and `model_from_checkpoint` hands it to that kind's rebuild:
    plain      model_kind "timm" (or absent): timm architecture (+ a strategy's head), state_dict
    pruned     model_kind "pruned": layer shapes differ from timm's default (compress/pruned.py)
    quantized  model_kind "quantized", int8 backend pt2e_x86 or fx_x86 (compress/quantized.py)
    cast       model_kind "quantized", backend "cast": fp16/bf16 weights (compress/quantized.py)
Local weight files (a kta checkpoint, a .pt/.pth state_dict, .safetensors) that start a new run
are read here too (`build_model`, `load_weights`), so models/ itself never reads a file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kta_cli.compress.pruned import pruned_model_from_checkpoint
from kta_cli.compress.quantized import cast_model_from_checkpoint, quantized_model_from_checkpoint
from kta_cli.engine.checkpoint import FORMAT, load_checkpoint, load_file
from kta_cli.errors import KtaError
from kta_cli.models.factory import create_model, init_weights, load_matching_weights
from kta_cli.models.heads import attach_head

KINDS = ("plain", "pruned", "quantized", "cast")


def checkpoint_kind(checkpoint: dict[str, Any]) -> str:
    """Which of KINDS a checkpoint holds; KtaError for a kind this kta does not know."""
    model_kind = checkpoint.get("model_kind", "timm")
    if model_kind == "timm":
        return "plain"
    if model_kind == "quantized" and (checkpoint.get("quant") or {}).get("backend") == "cast":
        return "cast"
    if model_kind in KINDS:
        return model_kind
    raise KtaError(
        f"unknown model_kind {model_kind!r} in checkpoint (made by a newer kta?); "
        "this kta reads timm, pruned and quantized checkpoints"
    )


def plain_model_from_checkpoint(checkpoint: dict[str, Any]) -> nn.Module:
    """The timm model of a plain checkpoint, with the head a training strategy put on."""
    args = checkpoint["model_args"]
    model = create_model(
        args["name"], num_classes=args["num_classes"], img_size=args.get("img_size")
    )
    if args.get("head"):  # a head put on by a training strategy (strategy.head=mlp)
        attach_head(model, **args["head"])
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise KtaError(
            f"checkpoint weights do not fit {args['name']} ({str(error).splitlines()[0]})"
        ) from error
    return model


def model_from_checkpoint(checkpoint: dict[str, Any], *, compile: bool | None = None) -> nn.Module:
    """Rebuild the exact model a kta checkpoint was saved from, with its weights.

    `compile` reaches int8 pt2e programs only (None: as the checkpoint's quant.compile says).
    """
    loaders: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
        "plain": plain_model_from_checkpoint,
        "pruned": pruned_model_from_checkpoint,
        "quantized": lambda ckpt: quantized_model_from_checkpoint(ckpt, compile=compile),
        "cast": cast_model_from_checkpoint,
    }
    return loaders[checkpoint_kind(checkpoint)](checkpoint)


def load_model(path: str | Path, *, compile: bool | None = None) -> nn.Module:
    """The model saved in the kta checkpoint at `path` (loaded as data, weights_only)."""
    return model_from_checkpoint(load_checkpoint(path), compile=compile)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a kta checkpoint, a plain state_dict (.pt/.pth) or a .safetensors file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise KtaError(f"weights file not found: {path}")
        from safetensors.torch import load_file as load_safetensors

        try:
            return load_safetensors(str(path))
        except Exception as error:  # safetensors raises its own SafetensorError
            raise KtaError(f"{path} is not a readable .safetensors file ({error})") from error
    loaded = load_file(path)
    if isinstance(loaded, dict) and loaded.get("format") == FORMAT:
        return loaded["model"]
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise KtaError(f"{path} holds no state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in loaded.items()}


def source_architecture(path: str | Path) -> str:
    """The architecture a kta checkpoint names, for error messages."""
    try:
        loaded = load_file(Path(path)) if Path(path).suffix != ".safetensors" else {}
    except KtaError:
        loaded = {}
    if isinstance(loaded, dict) and loaded.get("format") == FORMAT:
        return str(loaded.get("model_args", {}).get("name", "another architecture"))
    return "another architecture"


def load_weights(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load the matching weights of a local file; a head of another class count is left new.

    Returns the key report; KtaError when the weights are for another architecture.
    """
    return load_matching_weights(
        model,
        read_state_dict(path),
        origin=str(path),
        origin_architecture=lambda: source_architecture(path),
    )


def build_model(
    name: str,
    *,
    num_classes: int,
    img_size: int | None = None,
    pretrained: bool = False,
    checkpoint: str | None = None,
    drop_rate: float = 0.0,
    init: str = "default",
) -> nn.Module:
    """The model a run trains: timm architecture, then init scheme or local weights."""
    model = create_model(
        name, num_classes=num_classes, pretrained=pretrained, drop_rate=drop_rate, img_size=img_size
    )
    if checkpoint:
        load_weights(model, checkpoint)
    elif not pretrained:
        init_weights(model, init)
    return model
