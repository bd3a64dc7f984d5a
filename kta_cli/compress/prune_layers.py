"""Which layers pruning touches: names a user writes (`head`, `layer1.0.conv1`) to modules.

Every name is checked here, so a typo or a layer that cannot be pruned is one clear line.
"""

from __future__ import annotations

from torch import nn

from kta_cli.errors import KtaError, did_you_mean
from kta_cli.models.factory import head_names

PRUNABLE_TYPES = (nn.modules.conv._ConvNd, nn.Linear)


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Conv and linear layers by module name, in model order: the units pruning removes from."""
    return {
        name: module
        for name, module in model.named_modules()
        if name and isinstance(module, PRUNABLE_TYPES)
    }


def head_layers(model: nn.Module) -> list[str]:
    """Names of the classifier's conv/linear layers (their outputs are the classes)."""
    prefixes = tuple(p.rstrip(".") for p in head_names(model))
    return [
        name
        for name in prunable_layers(model)
        if name in prefixes or name.startswith(tuple(p + "." for p in prefixes))
    ]


def expand_layer_name(model: nn.Module, name: str, where: str) -> list[str]:
    """`head`, an exact conv/linear name, or a block name (all conv/linear layers inside it)."""
    layers = prunable_layers(model)
    if name == "head":
        return head_layers(model)
    if name in layers:
        return [name]
    inside = [n for n in layers if n.startswith(name + ".")]
    if inside:
        return inside
    modules = dict(model.named_modules())
    if name in modules:
        raise KtaError(
            f"layer '{name}' in {where} is a {type(modules[name]).__name__}, which pruning does "
            "not remove channels from; name a conv or linear layer (its BatchNorm follows it)"
        )
    parts = [n.split(".") for n in layers]
    blocks = {".".join(p[:i]) for p in parts for i in range(1, len(p))}
    options = sorted({*layers, *blocks, "head"})
    message = did_you_mean(name, options, what=f"layer in {where}")
    if len(options) > 30:  # did_you_mean lists no options then; the layers themselves help most
        shown = ", ".join(list(layers)[:12])
        message += f" (prunable layers: {shown}{', ...' if len(layers) > 12 else ''})"
    raise KtaError(message)


def resolve_ignored(model: nn.Module, names: list[str]) -> list[str]:
    """prune.ignore as conv/linear layer names; the classifier head is always among them."""
    ignored = set(head_layers(model))
    for name in names:
        ignored.update(expand_layer_name(model, name, "prune.ignore"))
    return [n for n in prunable_layers(model) if n in ignored]


def resolve_layer_ratios(
    model: nn.Module, ratios: dict[str, float], ignored: list[str]
) -> dict[str, float]:
    """prune.layer_ratios as {conv/linear name: ratio}; refuses the head and ignored layers."""
    heads = set(head_layers(model))
    resolved: dict[str, float] = {}
    for name, ratio in ratios.items():
        if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 <= ratio < 1:
            raise KtaError(f"prune.layer_ratios.{name} must be a number in [0, 1), got {ratio!r}")
        for layer in expand_layer_name(model, name, "prune.layer_ratios"):
            if layer in heads:
                raise KtaError(
                    f"layer '{layer}' cannot be pruned: it is the classifier head (its outputs "
                    "are the classes); remove it from prune.layer_ratios"
                )
            if layer in ignored:
                raise KtaError(
                    f"layer '{layer}' is both in prune.ignore and in prune.layer_ratios; "
                    "keep it in one of them"
                )
            resolved[layer] = float(ratio)
    return resolved


def layers_to_prune(model: nn.Module, ignored: list[str]) -> dict[str, nn.Module]:
    layers = {n: m for n, m in prunable_layers(model).items() if n not in ignored}
    if not layers:
        raise KtaError("prune.ignore leaves no conv or linear layer to prune")
    return layers
