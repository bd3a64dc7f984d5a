"""The deprecated int8 path, kept selectable (quant.backend=fx_x86) and isolated here.

torch.ao.quantization FX graph mode with the x86 (fbgemm + oneDNN) backend: real quantized
modules that are fast without torch.compile, but torch says this API will be removed; the
maintained path is kta_cli/compress/quantize_pt2e.py.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from kta_cli.errors import KtaError, did_you_mean
from kta_cli.models.factory import create_model

log = logging.getLogger(__name__)
FX_OBSERVERS = ("minmax", "moving_average", "histogram")


def qconfig_mapping(observer: str, per_channel: bool, qat: bool = False) -> Any:
    """x86 defaults with the activation observer of choice (uint8 full range: VNNI is assumed)."""
    from torch.ao.quantization import (
        QConfig,
        get_default_qat_qconfig_mapping,
        get_default_qconfig_mapping,
    )
    from torch.ao.quantization import observer as obs

    if qat:
        return get_default_qat_qconfig_mapping("x86")
    if observer not in FX_OBSERVERS:
        raise KtaError(
            did_you_mean(observer, FX_OBSERVERS, what="observer for quant.backend=fx_x86")
            + "; percentile needs quant.backend=pt2e_x86"
        )
    activation = {
        "minmax": obs.MinMaxObserver,
        "moving_average": obs.MovingAverageMinMaxObserver,
        "histogram": obs.HistogramObserver,
    }[observer].with_args(reduce_range=False)
    weight = obs.default_per_channel_weight_observer if per_channel else obs.default_weight_observer
    return get_default_qconfig_mapping("x86").set_global(QConfig(activation, weight))


def _quiet(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # torch.ao warns on every call that it is deprecated; kta says so once, in the log
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def prepare_fx_model(
    model: nn.Module, example: torch.Tensor, *, observer: str, per_channel: bool, qat: bool = False
) -> nn.Module:
    """Traced copy of `model` with observers (or fake-quant modules for QAT) inserted."""
    from torch.ao.quantization.quantize_fx import prepare_fx, prepare_qat_fx

    log.info("quant.backend=fx_x86 uses torch.ao.quantization, deprecated by PyTorch")
    torch.backends.quantized.engine = "x86"
    mapping = qconfig_mapping(observer, per_channel, qat)
    model = copy.deepcopy(model).train(qat)
    try:
        return _quiet(prepare_qat_fx if qat else prepare_fx, model, mapping, (example,))
    except Exception as error:  # symbolic tracing fails on data-dependent Python control flow
        first = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise KtaError(
            f"torch.fx cannot trace this model for fx_x86 ({type(error).__name__}: {first}); "
            "try quant.backend=pt2e_x86 or quant.mode=fp16"
        ) from error


def convert_fx_model(prepared: nn.Module) -> nn.Module:
    from torch.ao.quantization.quantize_fx import convert_fx

    return _quiet(convert_fx, prepared.eval())


def fx_model_from_checkpoint(checkpoint: dict[str, Any]) -> nn.Module:
    """Rebuild the int8 FX model: same architecture and qconfig, then load the int8 state_dict."""
    args, quant = checkpoint["model_args"], checkpoint["quant"]
    model = create_model(
        args["name"], num_classes=args["num_classes"], img_size=args.get("img_size")
    )
    example = torch.zeros(
        2, checkpoint["data"].get("in_chans", 3), args["img_size"], args["img_size"]
    )
    prepared = prepare_fx_model(
        model.eval(),
        example,
        observer="minmax",  # ranges come from the state_dict
        per_channel=quant.get("per_channel", True),
    )
    converted = convert_fx_model(prepared)
    try:
        converted.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise KtaError(
            f"int8 weights do not fit {args['name']} ({str(error).splitlines()[0]})"
        ) from error
    return converted
