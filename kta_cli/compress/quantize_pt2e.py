"""The maintained int8 path: torch.export, torchao pt2e (X86InductorQuantizer), torch.compile.

prepare_pt2e inserts observers, calibration runs batches through them, convert_pt2e replaces them
with quantize/dequantize pairs around int8 weights; inductor (with freezing) then fuses those into
oneDNN int8 kernels. Without torch.compile the graph still runs, in float arithmetic.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.export import Dim, ExportedProgram
from torch.fx import GraphModule
from torchao.quantization.pt2e import (
    allow_exported_model_train_eval,
    generate_numeric_debug_handle,
    move_exported_model_to_eval,
)
from torchao.quantization.pt2e.observer import MinMaxObserver, PerChannelMinMaxObserver
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e
from torchao.quantization.pt2e.quantizer import QuantizationConfig, QuantizationSpec
from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
    X86InductorQuantizer,
    get_default_x86_inductor_quantization_config,
)

from kta_cli.compress.observers import activation_observer
from kta_cli.errors import KtaError

QUANTIZABLE_OPS = ("conv2d", "linear")


def export_model(model: nn.Module, example: torch.Tensor, name: str = "model") -> ExportedProgram:
    """torch.export with a dynamic batch size; a capture failure names what could not be traced."""
    example = example[:2] if len(example) >= 2 else torch.cat([example, example])  # 1 specialises
    try:
        return torch.export.export(model, (example,), dynamic_shapes=({0: Dim.AUTO},))
    except Exception as error:  # dynamo/export raise many types; all mean "cannot capture"
        first = next((ln for ln in str(error).splitlines() if ln.strip()), type(error).__name__)
        raise KtaError(
            f"torch.export cannot capture {name} for int8 quantization ({first.strip()[:160]}); "
            "quant.mode=fp16 or quant.mode=bf16 casts weights without export"
        ) from error


def static_config(observer: str, percentile: float, per_channel: bool) -> QuantizationConfig:
    """uint8 affine activations (observer of choice), int8 symmetric weights."""
    default = get_default_x86_inductor_quantization_config()
    activation = QuantizationSpec(
        dtype=torch.uint8,
        quant_min=0,
        quant_max=255,
        qscheme=torch.per_tensor_affine,
        observer_or_fake_quant_ctr=activation_observer(observer, percentile),
    )
    weight_observer = PerChannelMinMaxObserver if per_channel else MinMaxObserver
    weight = QuantizationSpec(
        dtype=torch.int8,
        quant_min=-128,
        quant_max=127,
        qscheme=torch.per_channel_symmetric if per_channel else torch.per_tensor_symmetric,
        ch_axis=0,
        observer_or_fake_quant_ctr=weight_observer.with_args(eps=2**-12),
    )
    return QuantizationConfig(activation, activation, weight, default.bias, default.is_qat)


def build_quantizer(
    mode: str,
    *,
    observer: str = "histogram",
    percentile: float = 99.99,
    per_channel: bool = True,
    qat: bool = False,
    keep_float: Iterable[str] = (),
) -> X86InductorQuantizer:
    """The x86 quantizer for `mode` (static | dynamic); layers in `keep_float` stay float."""
    quantizer = X86InductorQuantizer()
    if mode == "dynamic":
        config = get_default_x86_inductor_quantization_config(is_dynamic=True, is_qat=qat)
    elif qat:  # fake-quant training uses torch's moving-average observers; observer= is for PTQ
        config = get_default_x86_inductor_quantization_config(is_qat=True)
    else:
        config = static_config(observer, percentile, per_channel)
    quantizer.set_global(config)
    for name in keep_float:
        quantizer.set_module_name_qconfig(name, None)
    return quantizer


def check_quantizable(prepared: GraphModule, name: str, mode: str) -> None:
    """Refuse a model where the quantizer found nothing to quantize, naming what it has."""
    observed = [n for n in prepared.graph.nodes if "activation_post_process" in str(n.target)]
    if observed:
        return
    ops = sorted(
        {
            str(n.target).split(".")[1]
            for n in prepared.graph.nodes
            if n.op == "call_function" and str(n.target).startswith("aten.")
        }
    )
    hint = "quant.mode=dynamic or quant.mode=fp16" if mode == "static" else "quant.mode=fp16"
    raise KtaError(
        f"{name} has no operation the x86 {mode} int8 quantizer handles "
        f"({', '.join(QUANTIZABLE_OPS)}); it has {', '.join(ops[:8]) or 'none'}; try {hint}"
    )


@torch.no_grad()
def calibrate(model: nn.Module, loader: Any, batches: int) -> int:
    """Run up to `batches` batches through the observers; returns how many images were seen."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(0, 0)
    seen = 0
    for index, (images, _) in enumerate(loader):
        if index >= batches:
            break
        model(images)
        seen += len(images)
    return seen


def prepare(
    model: nn.Module,
    example: torch.Tensor,
    quantizer: X86InductorQuantizer,
    *,
    mode: str,
    qat: bool = False,
    name: str = "model",
) -> tuple[GraphModule, GraphModule | None]:
    """Export (train mode for QAT), insert observers or fake-quant modules.

    Returns (prepared, float reference). The reference is a copy taken before calibration: the
    same graph with batch norm folded, whose observers pass values through unchanged, and whose
    numeric debug handles match the quantized graph's layer by layer (see quantize_sensitivity).
    QAT has no float reference: its weights move during fine-tuning.
    """
    model = copy.deepcopy(model).train(qat)
    if qat:
        nudge_zero_bn_weights(model)
    program = export_model(model, example, name)
    generate_numeric_debug_handle(program)
    graph = program.module()
    prepared = prepare_qat_pt2e(graph, quantizer) if qat else prepare_pt2e(graph, quantizer)
    check_quantizable(prepared, name, mode)
    if qat:  # the training loop calls .train()/.eval(), which exported graphs refuse by default
        allow_exported_model_train_eval(prepared)
        return prepared, None
    return prepared, copy.deepcopy(prepared)


@torch.no_grad()
def nudge_zero_bn_weights(model: nn.Module, floor: float = 1e-5) -> None:
    """pt2e QAT simulates conv+BN as conv(x, w * g / std) / (g / std): g == 0 gives NaN.

    Zero BN scales exist (timm zero-initialises the last BN of residual blocks); a tiny floor
    changes the model's outputs by a negligible amount and keeps the fake-quant graph finite.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None:
            weight = module.weight
            weight.copy_(torch.where(weight.abs() < floor, torch.full_like(weight, floor), weight))


def convert(prepared: GraphModule, qat: bool = False) -> GraphModule:
    """Observers out, quantize/dequantize with int8 weights in; float copies of weights dropped."""
    if qat:  # batch norm back to running statistics before it is folded
        move_exported_model_to_eval(prepared)
    converted = convert_pt2e(prepared)
    used = {node.target for node in converted.graph.nodes if node.op == "get_attr"}
    # convert_pt2e keeps the float weights it replaced with int8 constants; they would be saved
    for name, _ in list(converted.named_parameters()):
        if name not in used:
            owner, _, leaf = name.rpartition(".")
            delattr(converted.get_submodule(owner) if owner else converted, leaf)
    return converted


def to_program(converted: GraphModule, example: torch.Tensor) -> ExportedProgram:
    """Re-export the quantized graph so it can be saved with torch.export.save."""
    return export_model(converted, example, "the quantized model")
