"""Which layer a CAM method looks at: found automatically, or named by the user, and made 2-D.

CNN stages give (B, C, H, W) maps. ViT-style timm models give (B, prefix + h*w, C) tokens; those
are reshaped to their (B, C, h, w) grid by a thin wrapper, so captum's layer attribution sees a
map it can average over space.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from kta_cli.errors import KtaError, did_you_mean
from kta_cli.models.features import FeatureCapture

# Activation modules whose backward pass guided backprop / deconvnet override.
RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Hardswish)


class TokenGrid(nn.Module):
    """Runs a token-producing module and exposes its patch tokens as a (B, C, h, w) grid.

    `grid` is an identity whose output is the grid: hooking it gives CAM methods a spatial map.
    """

    def __init__(self, inner: nn.Module, prefix_tokens: int, grid_size: tuple[int, int]) -> None:
        super().__init__()
        self.inner, self.prefix_tokens, self.grid_size = inner, prefix_tokens, grid_size
        self.grid = nn.Identity()

    def forward(self, *args: torch.Tensor, **kwargs: object) -> torch.Tensor:
        tokens = self.inner(*args, **kwargs)
        prefix, patches = tokens[:, : self.prefix_tokens], tokens[:, self.prefix_tokens :]
        b, n, c = patches.shape
        h, w = self.grid_size
        grid = self.grid(patches.transpose(1, 2).reshape(b, c, h, w))
        return torch.cat([prefix, grid.flatten(2).transpose(1, 2)], dim=1)


@dataclass
class TargetLayer:
    name: str  # the module name the user sees (e.g. layer4, blocks.5.norm1)
    module: nn.Module  # the module whose output is a (B, C, h, w) map
    tokens: bool  # True when reshaped from ViT tokens
    grid: tuple[int, int] = (0, 0)  # the map's (h, w) at the model's input size


def prepare_model(model: nn.Module) -> nn.Module:
    """A private eval-mode copy without in-place activations (backward hooks need the inputs).

    The caller's model (possibly shared with other work) is never modified.
    """
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False
    for parameter in model.parameters():
        parameter.requires_grad_(False)  # attributions need input gradients only
    return model


def output_shapes(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Output shape of every named module with a tensor output, in the order they first ran."""
    names = [name for name, _ in model.named_modules() if name]
    with FeatureCapture(model, names, strict=False) as features, torch.no_grad():
        model(example)
    return {name: tuple(feature.shape) for name, feature in features.items()}


def token_layout(model: nn.Module) -> tuple[int, tuple[int, int]] | None:
    """(prefix tokens, patch grid) of a timm ViT-style model, None for other models."""
    patch_embed = getattr(model, "patch_embed", None)
    grid = getattr(patch_embed, "grid_size", None)
    if grid is None:
        return None
    return int(getattr(model, "num_prefix_tokens", 1)), (int(grid[0]), int(grid[1]))


def default_layer_name(model: nn.Module, shapes: dict[str, tuple[int, ...]]) -> str:
    """The last convolutional stage of a CNN wider than 1x1; for ViTs, the last block's norm1.

    A ViT classifies from its class token, so patch tokens at the last block's *output* get no
    gradient; the input of its attention (norm1) is where they still matter.
    """
    layout = token_layout(model)
    if layout is not None:
        blocks = [n for n in shapes if n.startswith("blocks.") and n.count(".") == 1]
        if blocks:
            last = blocks[-1]
            return f"{last}.norm1" if f"{last}.norm1" in shapes else last
    info = getattr(model, "feature_info", None)
    if info:
        stages = [i["module"] for i in info] if isinstance(info, list) else info.module_name()
        maps = [n for n in stages if len(shapes.get(n, ())) == 4]
        # at small inputs the last stage can be 1x1, where a CAM is one constant value
        wide = [n for n in maps if shapes[n][-1] > 1]
        if wide or maps:
            return (wide or maps)[-1]
    spatial = [n for n, s in shapes.items() if len(s) == 4 and s[-1] > 1]
    if not spatial:
        raise KtaError(
            f"{type(model).__name__} has no layer with a spatial output; CAM methods need one "
            "(use saliency, integrated_gradients or occlusion)"
        )
    return spatial[-1]


def spatial_layer_names(model: nn.Module, shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """Names a user may give as layer=: 4-D maps, or token sequences on a ViT."""
    layout = token_layout(model)
    if layout is None:
        return [n for n, s in shapes.items() if len(s) == 4]
    tokens, grid = layout[0] + layout[1][0] * layout[1][1], layout[1]
    # on a ViT, 4-D outputs count only as (B, C, h, w) on the patch grid (not NHWC, not heads)
    return [
        n
        for n, s in shapes.items()
        if (len(s) == 4 and s[-2:] == grid) or (len(s) == 3 and s[1] == tokens)
    ]


def main_layers(valid: list[str]) -> list[str]:
    """The top-level names among `valid` (stages, blocks): short enough to print in one line."""
    for depth in (0, 1):
        names = [n for n in valid if n.count(".") <= depth]
        if len(names) >= 2:
            return names[-12:]
    return valid[-12:]


def find_layer(model: nn.Module, name: str | None, example: torch.Tensor) -> TargetLayer:
    """The target layer of a prepared model (wrapping ViT token outputs in a TokenGrid)."""
    shapes = output_shapes(model, example)
    name = name or default_layer_name(model, shapes)
    valid = spatial_layer_names(model, shapes)
    if name not in shapes:
        hint = did_you_mean(name, shapes if len(shapes) <= 30 else valid, what="layer")
        if len(shapes) > 30:
            hint += f" (spatial layers include: {', '.join(main_layers(valid))})"
        raise KtaError(hint)
    if name not in valid:
        raise KtaError(
            f"layer {name} outputs shape {shapes[name]}, not a spatial map; pick one of: "
            + ", ".join(main_layers(valid))
        )
    module = model.get_submodule(name)
    if len(shapes[name]) == 4:
        return TargetLayer(name, module, tokens=False, grid=tuple(shapes[name][-2:]))
    prefix, grid = token_layout(model)  # type: ignore[misc]
    wrapper = TokenGrid(module, prefix, grid)
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, wrapper)
    return TargetLayer(name, wrapper.grid, tokens=True, grid=grid)


def has_rectifiers(model: nn.Module) -> bool:
    return any(isinstance(m, RECTIFIERS) for m in model.modules())
