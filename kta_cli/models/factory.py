"""Building models with timm, loading local weights, and weight initialisation for scratch runs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kta_cli.errors import KtaError, did_you_mean

log = logging.getLogger(__name__)
INIT_SCHEMES = ("default", "kaiming", "xavier", "orthogonal")


def create_model(
    name: str,
    *,
    num_classes: int,
    pretrained: bool = False,
    drop_rate: float = 0.0,
    img_size: int | None = None,
) -> nn.Module:
    """timm.create_model with a did-you-mean for typos and a clear offline error.

    `img_size` reaches models whose shape depends on it (ViTs); CNNs do not take it.
    """
    import timm

    if not timm.is_model(name):
        raise KtaError(did_you_mean(name, timm.list_models(), what="model"))
    kwargs: dict[str, Any] = {
        "pretrained": pretrained,
        "num_classes": num_classes,
        "drop_rate": drop_rate,
    }
    try:
        try:
            return (
                timm.create_model(name, img_size=img_size, **kwargs)
                if img_size
                else timm.create_model(name, **kwargs)
            )
        except TypeError as error:
            if "img_size" not in str(error):
                raise
            return timm.create_model(name, **kwargs)
    except (OSError, RuntimeError) as error:
        if not pretrained:
            raise
        raise KtaError(
            f"could not fetch pretrained weights for {name} ({type(error).__name__}); "
            "offline? start from a local file with model.checkpoint=<path> and "
            "model.pretrained=false"
        ) from error


def init_weights(model: nn.Module, scheme: str) -> None:
    """Re-initialise conv and linear weights (biases to zero); BatchNorm to identity."""
    if scheme not in INIT_SCHEMES:
        raise KtaError(did_you_mean(scheme, INIT_SCHEMES, what="init scheme"))
    if scheme == "default":
        return
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            else:
                nn.init.orthogonal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
            if module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a kta checkpoint, a plain state_dict (.pt/.pth) or a .safetensors file."""
    from kta_cli.engine.checkpoint import FORMAT, load_file

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


def head_names(model: nn.Module) -> tuple[str, ...]:
    """Parameter-name prefixes of the classifier head (timm's pretrained_cfg names it)."""
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier", "fc")
    names = classifier if isinstance(classifier, (list, tuple)) else [classifier]
    return tuple(f"{n}." for n in names)


def source_architecture(path: str | Path) -> str:
    """The architecture a kta checkpoint names, for error messages."""
    from kta_cli.engine.checkpoint import FORMAT, load_file

    try:
        loaded = load_file(Path(path)) if Path(path).suffix != ".safetensors" else {}
    except KtaError:
        loaded = {}
    if isinstance(loaded, dict) and loaded.get("format") == FORMAT:
        return str(loaded.get("model_args", {}).get("name", "another architecture"))
    return "another architecture"


def load_weights(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load matching weights; a head of another class count is left new. Returns the key report.

    Raises KtaError when the weights are for another architecture (body keys do not fit).
    """
    state = read_state_dict(path)

    def mismatch() -> str:  # read the source's name only when there is something to say
        here = getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
        return f"weights in {path} are for {source_architecture(path)}, this model is {here}"

    own = model.state_dict()
    heads = head_names(model)
    report: dict[str, list[str]] = {"loaded": [], "replaced": [], "missing": [], "unexpected": []}
    usable = {}
    for key, tensor in state.items():
        if key not in own:
            report["unexpected"].append(key)
        elif own[key].shape != tensor.shape:
            if not key.startswith(heads):
                raise KtaError(
                    f"{mismatch()}: {key} has shape {tuple(tensor.shape)} there, "
                    f"{tuple(own[key].shape)} here"
                )
            report["replaced"].append(key)
        else:
            usable[key] = tensor
            report["loaded"].append(key)
    report["missing"] = [k for k in own if k not in state and not k.startswith(heads)]
    if not usable or len(report["missing"]) > len(own) // 2:
        raise KtaError(
            f"{mismatch()}: {len(report['missing'])} of {len(own)} tensors missing there"
        )
    model.load_state_dict(usable, strict=False)
    log.info(
        "weights from %s: %d loaded, %d replaced (head), %d missing, %d unexpected",
        path,
        len(report["loaded"]),
        len(report["replaced"]),
        len(report["missing"]),
        len(report["unexpected"]),
    )
    for kind in ("replaced", "missing", "unexpected"):
        if report[kind]:
            log.info("  %s: %s", kind, ", ".join(report[kind][:10]))
    return report


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


def model_from_checkpoint(checkpoint: dict[str, Any]) -> nn.Module:
    """Rebuild the exact model a kta checkpoint was saved from and load its weights.

    `model_kind` says how: "timm" (default: timm architecture + state_dict), "pruned" (layer
    shapes differ from the timm default) or "quantized" (a quantized program).
    """
    kind = checkpoint.get("model_kind", "timm")
    if kind == "pruned":
        from kta_cli.compress.pruned import pruned_model_from_checkpoint

        return pruned_model_from_checkpoint(checkpoint)
    if kind == "quantized":
        from kta_cli.compress.quantized import quantized_model_from_checkpoint

        return quantized_model_from_checkpoint(checkpoint)
    if kind != "timm":
        raise KtaError(f"unknown model_kind {kind!r} in checkpoint (made by a newer kta?)")
    args = checkpoint["model_args"]
    model = create_model(
        args["name"], num_classes=args["num_classes"], img_size=args.get("img_size")
    )
    if args.get("head"):  # a head put on by a training strategy (strategy.head=mlp)
        from kta_cli.strategies.heads import attach_head

        attach_head(model, **args["head"])
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise KtaError(
            f"checkpoint weights do not fit {args['name']} ({str(error).splitlines()[0]})"
        ) from error
    return model
