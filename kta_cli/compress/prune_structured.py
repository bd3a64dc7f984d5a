"""Structured pruning with Torch-Pruning: whole channels leave, coupled layers shrink together.

Torch-Pruning's dependency graph finds every layer that shares a channel (a residual sum, the
BatchNorm after a conv, the next layer's inputs) and removes the channel from all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import torch
from torch import nn

from kta_cli.compress.prune_schedule import schedule_ratios
from kta_cli.compress.pruned import is_attention, set_attention_heads
from kta_cli.errors import KtaError

log = logging.getLogger(__name__)
TOKEN_PARAMETERS = ("cls_token", "reg_token", "dist_token", "pos_embed")
ROUND_AUTO = "auto"


def auto_kept_channels(kept: int, current: int) -> int:
    """prune.round_to=auto: the channel count a layer keeps, aligned where alignment is cheap.

    x86 int8 convolutions (oneDNN, VNNI) work on blocks of 16 channels: a pruned resnet10t whose
    layers kept counts such as 15, 131 and 254 ran its int8 program at batch 32 at 1.44x float,
    0.37x with multiples of 8 and 0.27x with multiples of 16 (docs/benchmarks.md). A step is a
    cost only where it is large against the layer, so: multiples of 16 from 64 kept channels on
    (at most 8 channels, 12.5 %, away from the pruner's choice), of 8 from 16 (at most 4), none
    below 16. Rounding to the nearest multiple, not down as Torch-Pruning's integer round_to
    does, keeps the overall ratio near the one asked for; it never keeps more than `current`.
    """
    step = 16 if kept >= 64 else 8 if kept >= 16 else 1
    return min(current, max(step, (kept + step // 2) // step * step))


def auto_round(n_pruned: int, current: int, _round_to: Any = None) -> int:
    """Torch-Pruning's `_round_to(n_pruned, current_channels, round_to)` hook, the auto rule."""
    return current - auto_kept_channels(current - n_pruned, current)


def import_torch_pruning() -> Any:
    try:
        import torch_pruning
    except ImportError as error:  # only pruning itself needs it; reloading a result does not
        raise KtaError(
            "structured pruning needs torch-pruning: pip install torch-pruning"
        ) from error
    return torch_pruning


def count_macs_and_params(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """Multiply-accumulates of one forward pass on `example`, and parameters."""
    tp = import_torch_pruning()
    macs, params = tp.utils.count_ops_and_params(model, example)
    return int(macs), int(params)


def check_forward(model: nn.Module, example: torch.Tensor, name: str) -> None:
    """Refuse a pruned model whose forward no longer runs (attention with fixed head sizes)."""
    try:
        with torch.no_grad():
            model.eval()(example)
    except RuntimeError as error:
        raise KtaError(
            f"structured pruning broke {name}'s forward pass ({str(error).splitlines()[0]}); "
            "structured pruning supports CNNs and timm ViTs, use prune.method=unstructured "
            "for this model"
        ) from error


class StructuredPruner:
    """Remove channels in `steps` steps up to `ratio` (of each group's original channels).

    scope "global" ranks channels across all layers (importance normalised per layer), "layer"
    prunes each layer by the same ratio; `layer_ratios` overrides single layers. Attention
    blocks (timm ViTs): attention "head_dims" shrinks every head, "heads" removes whole heads
    (`ratio` of them); Torch-Pruning keeps q, k and v of a head together either way.
    `round_to`: None, a multiple for every pruned layer, or "auto" (auto_kept_channels; models
    with attention blocks get no rounding: a head's width is not a layer's channel count).
    """

    def __init__(
        self,
        model: nn.Module,
        example: torch.Tensor,
        importance: Any,
        *,
        ratio: float,
        steps: int = 1,
        schedule: str = "linear",
        scope: str = "global",
        layer_ratios: dict[str, float] | None = None,
        ignored: list[str] | None = None,
        max_layer_ratio: float = 0.9,
        round_to: int | str | None = None,
        attention: str = "head_dims",
    ) -> None:
        tp = import_torch_pruning()
        modules = dict(model.named_modules())
        self.model, self.example = model, example
        self.attention = {name: m for name, m in modules.items() if is_attention(m)}
        whole_heads = attention == "heads"
        auto = round_to == ROUND_AUTO
        self.pruner = tp.pruner.MetaPruner(
            model,
            example,
            importance=importance,
            global_pruning=scope == "global",
            pruning_ratio=ratio,
            pruning_ratio_dict={modules[n]: r for n, r in (layer_ratios or {}).items()},
            max_pruning_ratio=max_layer_ratio,
            iterative_steps=steps,
            iterative_pruning_ratio_scheduler=partial(schedule_ratios, kind=schedule),
            ignored_layers=[modules[n] for n in ignored or []],
            round_to=None if auto else round_to,
            # a ViT's tokens and position embeddings carry the width in their last dimension
            unwrapped_parameters=[
                (param, param.dim() - 1)
                for name, param in model.named_parameters()
                if name in TOKEN_PARAMETERS
            ],
            num_heads={m.qkv: m.num_heads for m in self.attention.values()},
            prune_num_heads=whole_heads,
            prune_head_dims=not whole_heads,
            head_pruning_ratio=ratio if whole_heads else 0.0,
        )
        if auto and not self.attention:  # Torch-Pruning calls _round_to when round_to is set
            self.pruner.round_to = ROUND_AUTO
            self.pruner._round_to = auto_round

    def step(self) -> None:
        """One pruning step (the next ratio of the schedule); call gradients first for Taylor."""
        self.pruner.step()
        heads = self.pruner.num_heads  # by qkv layer; the blocks still hold the old counts
        set_attention_heads(self.model, {name: heads[m.qkv] for name, m in self.attention.items()})


def accumulate_gradients(
    model: nn.Module, batches: Iterator[Any], count: int, device: torch.device
) -> None:
    """Loss gradients over `count` training batches, for Taylor importance (no weight update).

    Eval mode: BatchNorm running statistics must not move while we only measure.
    """
    model.eval()
    model.zero_grad(set_to_none=True)
    for _, (images, labels) in zip(range(count), batches, strict=False):
        loss = nn.functional.cross_entropy(model(images.to(device)), labels.to(device))
        loss.backward()


def prune_one_layer(
    model: nn.Module,
    layer_name: str,
    ratio: float,
    importance: Any,
    example: torch.Tensor,
    ignored: list[str],
) -> int:
    """Remove `ratio` of one layer's output channels (and its coupled group); returns how many."""
    tp = import_torch_pruning()
    modules = dict(model.named_modules())
    if any(is_attention(m) for m in modules.values()):  # the bare graph does not know heads
        return _prune_one_layer_with_heads(model, layer_name, ratio, importance, example, ignored)
    layer, frozen = modules[layer_name], {modules[n] for n in ignored}
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    prune_fn = graph.get_pruner_of_module(layer).prune_out_channels
    channels = prune_fn.__self__.get_out_channels(layer)
    group = graph.get_pruning_group(layer, prune_fn, idxs=list(range(channels)))
    for dep, _ in group:  # coupled (residual sum) with a layer that must keep its channels
        if dep.target.module in frozen and graph.is_out_channel_pruning_fn(dep.handler):
            log.info("sensitivity: %s shares its channels with an ignored layer", layer_name)
            return 0
    scores = importance(group)
    count = int(ratio * channels)
    if count == 0 or scores is None:
        return 0
    idxs = torch.argsort(scores)[:count].tolist()
    group = graph.get_pruning_group(layer, prune_fn, idxs=idxs)
    if not graph.check_pruning_group(group):
        return 0  # would empty a layer
    group.prune()
    return count


def _prune_one_layer_with_heads(
    model: nn.Module,
    layer_name: str,
    ratio: float,
    importance: Any,
    example: torch.Tensor,
    ignored: list[str],
) -> int:
    """A ViT layer alone: the pruner (which keeps q, k and v of each head aligned) at ratio 0
    everywhere but this layer's group."""
    layer = model.get_submodule(layer_name)
    width = layer.weight.shape[0]
    pruner = StructuredPruner(
        model, example, importance, ratio=0.0, scope="layer",
        layer_ratios={layer_name: ratio}, ignored=ignored,
    )  # fmt: skip
    pruner.step()
    return width - model.get_submodule(layer_name).weight.shape[0]


PruneOne = Callable[[nn.Module, str, float], int]
