"""Rebuild a structurally pruned model from its checkpoint, without Torch-Pruning or pickled code.

The checkpoint holds the timm build arguments and a state_dict whose tensors are smaller than the
timm default. We build the default architecture, give every parameter and buffer the saved shape,
update the attributes forward() reads (channel counts, groups, normalized_shape; a ViT's head
counts, saved as `pruning.num_heads`), then load the weights strictly. Written by hand because
no library rebuilds a pruned timm model from shapes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kta_cli.errors import KtaError
from kta_cli.models.factory import create_model


def _resize_tensors(module: nn.Module, prefix: str, state: dict[str, torch.Tensor]) -> None:
    """Give the module's own parameters and buffers the shapes saved in `state`."""
    for name, param in list(module._parameters.items()):
        saved = state.get(prefix + name)
        if param is not None and saved is not None and saved.shape != param.shape:
            module._parameters[name] = nn.Parameter(
                torch.empty(saved.shape, dtype=param.dtype), requires_grad=param.requires_grad
            )
    for name, buffer in list(module._buffers.items()):
        saved = state.get(prefix + name)
        if buffer is not None and saved is not None and saved.shape != buffer.shape:
            module._buffers[name] = torch.empty(saved.shape, dtype=buffer.dtype)


def _update_attributes(module: nn.Module, name: str, conv_groups: dict[str, int]) -> None:
    """Channel counts that forward() or repr() read, from the (already resized) tensors."""
    if isinstance(module, nn.modules.conv._ConvNd):
        out_channels, in_per_group = module.weight.shape[:2]
        if name in conv_groups:
            groups = conv_groups[name]
        elif module.groups == 1:
            groups = 1
        else:  # depthwise: one input channel per group, as Torch-Pruning keeps it
            groups = out_channels * module.groups // module.out_channels
        module.out_channels, module.groups = out_channels, groups
        module.in_channels = in_per_group * groups
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = module.weight.shape
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        tensor = module.weight if module.weight is not None else module.running_mean
        if tensor is not None:
            module.num_features = tensor.shape[0]
    elif isinstance(module, nn.LayerNorm) and module.weight is not None:
        module.normalized_shape = tuple(module.weight.shape)
    elif isinstance(module, nn.GroupNorm) and module.weight is not None:
        module.num_channels = module.weight.shape[0]


def reshape_to_state_dict(
    model: nn.Module, state: dict[str, torch.Tensor], conv_groups: dict[str, int] | None = None
) -> nn.Module:
    """Resize `model` in place so that `state` loads into it strictly."""
    conv_groups = conv_groups or {}
    for name, module in model.named_modules():
        _resize_tensors(module, f"{name}." if name else "", state)
        _update_attributes(module, name, conv_groups)
    return model


def conv_groups_of(model: nn.Module) -> dict[str, int]:
    """Groups of every grouped conv: saved so the rebuild never has to guess them."""
    return {
        name: module.groups
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.conv._ConvNd) and module.groups != 1
    }


def is_attention(module: nn.Module) -> bool:
    """A timm ViT attention block: heads read from qkv's output, split into num_heads."""
    return isinstance(getattr(module, "qkv", None), nn.Linear) and hasattr(module, "num_heads")


def attention_heads_of(model: nn.Module) -> dict[str, int]:
    """num_heads of every attention block: the one pruned shape no tensor shows."""
    return {name: int(m.num_heads) for name, m in model.named_modules() if is_attention(m)}


def set_attention_heads(model: nn.Module, num_heads: dict[str, int]) -> None:
    """Head counts as given, head sizes from the (pruned) qkv layer, and the model's width.

    The scale follows the new head size, as scaled_dot_product_attention (timm's fused path)
    does on its own, so the fused and the plain attention paths agree.
    """
    for name, module in model.named_modules():
        if name in num_heads and is_attention(module):
            heads = int(num_heads[name])
            module.num_heads = heads
            module.head_dim = module.qkv.out_features // (3 * heads)
            if hasattr(module, "attn_dim"):
                module.attn_dim = heads * module.head_dim
            module.scale = module.head_dim**-0.5
    projection = getattr(getattr(model, "patch_embed", None), "proj", None)
    if num_heads and isinstance(projection, nn.Conv2d):  # the residual width may have shrunk
        for attribute in ("embed_dim", "num_features", "head_hidden_size"):
            if hasattr(model, attribute):
                setattr(model, attribute, projection.out_channels)


def pruned_model_from_checkpoint(checkpoint: dict[str, Any]) -> nn.Module:
    """The pruned model a `kta prune` checkpoint was saved from, with its weights."""
    args = checkpoint["model_args"]
    state = checkpoint["model"]
    model = create_model(
        args["name"], num_classes=args["num_classes"], img_size=args.get("img_size")
    )
    pruning = checkpoint.get("pruning", {})
    reshape_to_state_dict(model, state, pruning.get("conv_groups"))
    set_attention_heads(model, pruning.get("num_heads") or {})
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise KtaError(
            f"pruned checkpoint does not fit {args['name']} ({str(error).splitlines()[0]})"
        ) from error
    return model
