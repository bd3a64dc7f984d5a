"""The structure strategies act on: the head, the stages and blocks of the body, frozen parts.

timm knows the stages of its models (`model.group_matcher`), so the grouping here is timm's;
what is written by hand is only naming the groups and keeping frozen parts truly frozen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from kta_cli.errors import KtaError, did_you_mean
from kta_cli.models.factory import head_names


@dataclass
class Layer:
    """A named part of the body (a stage or a block), input side first."""

    name: str
    params: list[tuple[str, nn.Parameter]]


def architecture(model: nn.Module) -> str:
    return getattr(model, "pretrained_cfg", {}).get("architecture") or type(model).__name__


def head_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    prefixes = head_names(model)
    return [(n, p) for n, p in model.named_parameters() if n.startswith(prefixes)]


def _group_name(names: list[str]) -> str:
    """'layer3' for layer3.*, 'conv1+bn1' for a stem spread over several top-level modules."""
    parts = [n.split(".")[:-1] for n in names]
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    if common:
        return ".".join(common)
    return "+".join(dict.fromkeys(n.split(".")[0] for n in names))


def body_layers(model: nn.Module, coarse: bool = True) -> list[Layer]:
    """The body's parameter groups in forward order: stages (coarse) or blocks (fine)."""
    from timm.models import group_parameters

    head = {n for n, _ in head_parameters(model)}
    params = dict(model.named_parameters())
    if hasattr(model, "group_matcher"):
        grouped = group_parameters(model, model.group_matcher(coarse=coarse))
        ordered = [names for _, names in sorted(grouped.items())]
    else:  # not a timm model: each top-level child with parameters is a stage
        ordered = [
            [f"{child}.{n}" for n, _ in module.named_parameters()]
            for child, module in model.named_children()
        ]
    layers = []
    for names in ordered:
        body = [n for n in names if n not in head]
        if body:
            layers.append(Layer(_group_name(body), [(n, params[n]) for n in body]))
    return layers


def set_trainable(params: list[tuple[str, nn.Parameter]], trainable: bool) -> None:
    for _, param in params:
        param.requires_grad_(trainable)


def count_parameters(model: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def frozen_norms_to_eval(model: nn.Module) -> int:
    """BatchNorm layers with no trainable parameter go to eval mode, so their running statistics
    stay exactly as loaded. Returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, _BatchNorm) and not any(p.requires_grad for p in module.parameters()):
            module.eval()
            count += 1
    return count


def keep_frozen_norms(model: nn.Module) -> Callable[[int, Any], None]:
    """An epoch hook (the loop calls train() first, then the hooks)."""

    def hook(epoch: int, trainer: Any) -> None:
        frozen_norms_to_eval(model)

    return hook


def module_names(model: nn.Module) -> list[str]:
    """Every sub-module that owns parameters, in registration (forward) order."""
    return [n for n, m in model.named_modules() if n and any(True for _ in m.parameters())]


def parameters_before(model: nn.Module, module: str) -> list[tuple[str, nn.Parameter]]:
    """The parameters registered before sub-module `module` (the early layers)."""
    names = module_names(model)
    if module not in names:
        top = [n for n in names if "." not in n]
        message = did_you_mean(module, names, what="module for strategy.trainable_from")
        if len(names) > 30:
            message += f" (top-level modules: {', '.join(top)}; or a dotted sub-module)"
        raise KtaError(message)
    before = []
    for name, param in model.named_parameters():
        if name.startswith(module + "."):
            break
        before.append((name, param))
    return before
