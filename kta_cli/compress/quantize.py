"""One entry point for every quantization kind: settings in, a runnable model and its payload out.

    static   int8 weights and activations; activation ranges calibrated on training batches
    dynamic  int8 weights, activation ranges computed per batch at run time (Linear layers)
    fp16/bf16  weights cast; no calibration, no export
QAT (qat_epochs > 0) fine-tunes with fake quantization, then converts as static does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from kta_cli.compress.observers import OBSERVERS
from kta_cli.compress.quantized import CAST_DTYPES, CastModel, QuantizedProgram, program_to_tensor
from kta_cli.compress.steps import compression_step
from kta_cli.errors import KtaError, did_you_mean

MODES = ("static", "dynamic", "fp16", "bf16")
BACKENDS = ("pt2e_x86", "fx_x86")


@dataclass
class QuantSettings:
    mode: str = "static"
    backend: str = "pt2e_x86"
    observer: str = "histogram"
    percentile: float = 99.99
    per_channel: bool = True
    calib_batches: int = 8
    qat_epochs: int = 0
    qat_lr: float = 1e-3
    keep_float: int | list[str] = 0
    sensitivity: bool = True

    def check(self) -> None:
        """Refuse impossible combinations with one line that says what would work."""
        for key, value, options in (
            ("quant.mode", self.mode, MODES),
            ("quant.backend", self.backend, BACKENDS),
            ("quant.observer", self.observer, tuple(OBSERVERS)),
        ):
            if value not in options:
                raise KtaError(did_you_mean(str(value), options, what=f"{key} value"))
        if self.mode == "static" and self.qat_epochs == 0 and self.calib_batches < 1:
            raise KtaError(
                f"quant.calib_batches must be >= 1 for static int8 (got {self.calib_batches}): "
                "activation ranges come from calibration batches"
            )
        if self.qat_epochs < 0:
            raise KtaError(f"quant.qat_epochs must be >= 0, got {self.qat_epochs}")
        if self.qat_epochs and self.mode != "static":
            raise KtaError(f"quant.qat_epochs needs quant.mode=static, not {self.mode}")
        if self.backend == "fx_x86" and self.observer == "percentile":
            raise KtaError(
                "quant.observer=percentile needs quant.backend=pt2e_x86 (fx_x86 observers: "
                "minmax, moving_average, histogram)"
            )
        if self.backend == "fx_x86" and self.mode == "dynamic":
            raise KtaError("quant.mode=dynamic is built on quant.backend=pt2e_x86")
        if self.keep_float and (
            self.backend != "pt2e_x86" or self.mode != "static" or self.qat_epochs
        ):
            raise KtaError(
                "quant.keep_float needs post-training static int8 on quant.backend=pt2e_x86 "
                "(the layers are chosen by their SQNR against the float model)"
            )


@dataclass
class Quantized:
    """The runnable model, what its checkpoint stores, and what was learnt on the way."""

    model: nn.Module
    payload: dict[str, Any]
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    kept_float: list[str] = field(default_factory=list)
    qat_history: list[dict[str, Any]] = field(default_factory=list)


def quantize(
    model: nn.Module,
    settings: QuantSettings,
    *,
    train_loader: Any,
    val_loader: Any,
    name: str = "model",
) -> Quantized:
    """Quantize a float model (left untouched) as `settings` say."""
    settings.check()
    model = model.eval()
    if settings.mode in CAST_DTYPES:
        dtype = CAST_DTYPES[settings.mode]
        state = {
            k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()
        }
        return Quantized(CastModel(copy.deepcopy(model), dtype).eval(), {"model": state})
    example = next(iter(train_loader))[0]
    if settings.backend == "fx_x86":
        with compression_step(
            "int8 quantization (quant.backend=fx_x86)",
            "try quant.backend=pt2e_x86, or quant.mode=fp16",
        ):
            return _quantize_fx(model, settings, train_loader, val_loader, example)
    return _quantize_pt2e(model, settings, train_loader, val_loader, example, name)


def _run_qat(
    prepared: nn.Module, settings: QuantSettings, train_loader: Any, val_loader: Any
) -> list:
    from kta_cli.engine.finetune import fine_tune

    state = fine_tune(
        prepared, train_loader, val_loader, epochs=settings.qat_epochs, lr=settings.qat_lr
    )
    return list(state.history)


def _quantize_fx(
    model: nn.Module, settings: QuantSettings, train_loader: Any, val_loader: Any, example: Any
) -> Quantized:
    from kta_cli.compress.quantize_fx import convert_fx_model, prepare_fx_model
    from kta_cli.compress.quantize_pt2e import calibrate

    qat = settings.qat_epochs > 0
    prepared = prepare_fx_model(
        model, example, observer=settings.observer, per_channel=settings.per_channel, qat=qat
    )
    history = _run_qat(prepared, settings, train_loader, val_loader) if qat else []
    if not qat:
        calibrate(prepared.eval(), train_loader, settings.calib_batches)
    converted = convert_fx_model(prepared)
    return Quantized(converted, {"model": converted.state_dict()}, qat_history=history)


def _quantize_pt2e(
    model: nn.Module,
    settings: QuantSettings,
    train_loader: Any,
    val_loader: Any,
    example: torch.Tensor,
    name: str,
) -> Quantized:
    from kta_cli.compress import quantize_pt2e as pt2e
    from kta_cli.compress.quantize_sensitivity import layer_sqnr

    def run(keep_float: list[str]) -> tuple[nn.Module, nn.Module, list]:
        qat = settings.qat_epochs > 0
        quantizer = pt2e.build_quantizer(
            settings.mode,
            observer=settings.observer,
            percentile=settings.percentile,
            per_channel=settings.per_channel,
            qat=qat,
            keep_float=keep_float,
        )
        prepared, reference = pt2e.prepare(
            model, example, quantizer, mode=settings.mode, qat=qat, name=name
        )
        history = _run_qat(prepared, settings, train_loader, val_loader) if qat else []
        if not qat:  # dynamic too: weight observers only see the weights in a forward pass
            batches = settings.calib_batches if settings.mode == "static" else 1
            pt2e.calibrate(prepared, train_loader, batches)
        return pt2e.convert(prepared, qat=qat), reference, history

    int8_step = f"{settings.mode} int8 quantization (quant.backend=pt2e_x86)"
    other_way = "try quant.backend=fx_x86, or quant.mode=fp16"
    with compression_step(int8_step, other_way):
        converted, reference, history = run([])
    rows: list[dict[str, Any]] = []
    if reference is not None and (settings.sensitivity or settings.keep_float):
        images = [images for _, (images, _) in zip(range(2), val_loader, strict=False)]
        with compression_step(
            "the per-layer SQNR table", "quant.sensitivity=false and quant.keep_float=0 skip it"
        ):
            rows = layer_sqnr(reference, converted, images)
    kept = _layers_to_keep(settings.keep_float, rows)
    with compression_step(int8_step, other_way):
        if kept:
            converted, _, history = run(kept)
        program = pt2e.to_program(converted, example)
    runnable = QuantizedProgram(program.module())
    return Quantized(runnable, {"program": program_to_tensor(program)}, rows, kept, history)


def _layers_to_keep(keep_float: int | list[str], rows: list[dict[str, Any]]) -> list[str]:
    """`keep_float`: a count of the most sensitive layers, or layer names checked against rows."""
    from kta_cli.compress.quantize_sensitivity import most_sensitive

    if not keep_float:
        return []
    if isinstance(keep_float, int):
        return most_sensitive(rows, keep_float)
    names = [row["layer"] for row in rows]
    for layer in keep_float:
        if layer not in names:
            raise KtaError(did_you_mean(layer, names, what="layer in quant.keep_float"))
    return list(keep_float)
