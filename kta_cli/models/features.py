"""Feature capture: the output of any named module during an ordinary forward pass, and pooled
feature vectors (what a linear probe, few-shot or embedding method works on).

Pooled features before the head come from timm itself (`forward_head(forward_features(x),
pre_logits=True)`). Named layers go through forward hooks rather than timm's FeatureGetterNet or
torchvision's create_feature_extractor: those build a second model (indexed stages only, or an FX
trace that many timm models refuse), while hints and CAM methods need the tensors, and their
gradients, of the very forward pass that produces the logits.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from kta_cli.errors import KtaError, did_you_mean

POOLS = ("avg", "max", "flatten")


def feature_layers(model: nn.Module) -> list[str]:
    """The stage outputs timm names for this model (a short list worth showing to a user)."""
    info = getattr(model, "feature_info", None) or []
    names = [entry["module"] for entry in info if isinstance(entry, dict) and "module" in entry]
    return names or [name for name, _ in model.named_children()]


def resolve_layer(model: nn.Module, name: str, *, role: str = "feature") -> str:
    """A module name that exists in `model`; `auto` is the last feature stage."""
    modules = dict(model.named_modules())
    stages = feature_layers(model)
    if name == "auto":
        return stages[-1]
    if name in modules and name:
        return name
    message = did_you_mean(name, [n for n in modules if n], what=f"{role} layer")
    message = message.split(" (options:")[0]
    raise KtaError(
        f"{message} in {type(model).__name__}; feature layers: {', '.join(stages)} "
        f"(any name from named_modules() works, e.g. {stages[0]}.0)"
    )


def module_name(model: nn.Module, module: nn.Module) -> str:
    """The name under which `module` sits in `model` (for callers that hold the module)."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise ValueError(f"{type(module).__name__} is not a submodule of {type(model).__name__}")


def as_tensor(output: Any) -> torch.Tensor:
    """The tensor a module returned (some return tuples or lists)."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise KtaError(f"layer output is {type(output).__name__}, not a tensor; pick another layer")
    return output


class FeatureCapture:
    """Keeps the latest output of each named module, through forward hooks.

    `with FeatureCapture(model, ["layer4"]) as features: model(x)` leaves {"layer4": tensor} in
    `features` and removes the hooks on exit; a long-lived capture (a distillation task) calls
    `pop()` after each forward and `remove()` at the end. Tensors are kept as the forward made
    them (not detached), so gradients can flow to or from them. `strict=False` skips outputs
    that are not tensors instead of refusing them (for a survey of every module).
    """

    def __init__(self, model: nn.Module, names: Iterable[str], *, strict: bool = True) -> None:
        modules = dict(model.named_modules())
        self.strict = strict
        self.features: dict[str, torch.Tensor] = {}
        self.handles: list[RemovableHandle] = [
            modules[name].register_forward_hook(self._keeper(name)) for name in dict.fromkeys(names)
        ]

    def _keeper(self, name: str) -> Any:
        def keep(module: nn.Module, inputs: Any, output: Any) -> None:
            if self.strict:
                self.features[name] = as_tensor(output)
            elif isinstance(output, torch.Tensor):
                self.features[name] = output

        return keep

    def pop(self) -> dict[str, torch.Tensor]:
        """The features of the last forward pass; forgets them so no graph is kept alive."""
        features = dict(self.features)
        self.features.clear()  # in place: the dict handed out by __enter__ stays the live one
        return features

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def __enter__(self) -> dict[str, torch.Tensor]:
        return self.features

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.remove()


def pool_feature(feature: torch.Tensor, pool: str = "avg") -> torch.Tensor:
    """A vector per example: mean or max over space (B, C, H, W) or tokens (B, N, D)."""
    if pool not in POOLS:
        raise KtaError(did_you_mean(pool, POOLS, what="pooling"))
    if pool == "flatten" or feature.dim() < 3:
        return feature.flatten(1)
    dims = (2, 3) if feature.dim() == 4 else (1,)
    return feature.mean(dim=dims) if pool == "avg" else feature.amax(dim=dims)


def pre_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Pooled features just before the classifier, as timm defines them."""
    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        raise KtaError(
            f"{type(model).__name__} is not a timm model (no forward_features/forward_head); "
            "name a layer to take features from"
        )
    return model.forward_head(model.forward_features(images), pre_logits=True)


@torch.no_grad()
def pooled_features(
    model: nn.Module,
    images: torch.Tensor,
    *,
    layer: str | None = None,
    pool: str = "avg",
    batch_size: int | None = None,
) -> torch.Tensor:
    """(N, D) features of `images`: before the head by default, else `layer`'s output pooled.

    Runs in the model's current mode, in chunks of `batch_size` on the model's device; the
    result is on the CPU. An unknown layer is a KtaError naming the valid ones.
    """
    if pool not in POOLS:
        raise KtaError(did_you_mean(pool, POOLS, what="pooling"))
    if layer is not None:
        layer = resolve_layer(model, layer)
    device = next(iter(model.parameters()), torch.empty(0)).device
    vectors = []
    for chunk in images.split(batch_size or len(images) or 1):
        chunk = chunk.to(device)
        if layer is None:
            vectors.append(pre_logits(model, chunk).float().cpu())
            continue
        with FeatureCapture(model, [layer]) as features:
            model(chunk)
        vectors.append(pool_feature(features[layer], pool).float().cpu())
    return torch.cat(vectors)
