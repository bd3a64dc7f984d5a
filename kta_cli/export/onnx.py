"""A torch model to a float ONNX file with a dynamic batch dimension.

torch.onnx's dynamo exporter (torch.export + onnxscript) first; the TorchScript exporter when
that fails, since older graphs (data-dependent control flow it traces through) still export
there. Files are written under a temporary name and renamed, so no half-written model is left.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from kta_cli.errors import KtaError, first_line

INPUT_NAME, OUTPUT_NAME = "images", "logits"


@dataclass
class OnnxExport:
    path: Path
    exporter: str  # "dynamo" or "torchscript"
    dynamo_error: str | None  # why the dynamo exporter was passed over, if it was
    opset: int


@contextlib.contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed onto it when the block succeeds, else removed."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
        temporary.with_name(temporary.name + ".data").unlink(missing_ok=True)


CHATTY_LOGGERS = ("onnxscript", "onnx_ir", "onnxruntime", "torch.onnx")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The exporters print progress lines, log every optimisation pass at INFO (which Hydra's
    log handler would show) and warn about every traced constant."""
    loggers = [logging.getLogger(name) for name in CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            for logger in loggers:
                logger.setLevel(logging.WARNING)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_dynamo(model: nn.Module, example: torch.Tensor, path: Path, opset: int | None) -> None:
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        external_data=False,  # one self-contained file: renamed atomically, copied as one
        dynamic_shapes=({0: batch},),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        verbose=False,
    )


def export_torchscript(
    model: nn.Module, example: torch.Tensor, path: Path, opset: int | None
) -> None:
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=False,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=opset or 17,
    )


EXPORTERS: dict[str, Callable[[nn.Module, torch.Tensor, Path, int | None], None]] = {
    "dynamo": export_dynamo,
    "torchscript": export_torchscript,
}


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    *,
    opset: int | None = None,
    name: str,
    fallback: str,
) -> OnnxExport:
    """`model` (eval mode, float) as ONNX at `path`; KtaError naming both exporters' reasons
    and `fallback` (what to export instead)."""
    import onnx

    errors: dict[str, str] = {}
    model = model.eval()
    for exporter, write in EXPORTERS.items():
        try:
            with torch.no_grad(), quiet(), written_atomically(path) as temporary:
                write(model, example, temporary, opset)
                onnx.checker.check_model(str(temporary))
        except Exception as error:  # any exporter failure: try the next, report all
            errors[exporter] = first_line(error)
            continue
        imports = onnx.load(str(path), load_external_data=False).opset_import
        version = next(o.version for o in imports if o.domain in ("", "ai.onnx"))
        return OnnxExport(path, exporter, errors.get("dynamo"), int(version))
    raise KtaError(
        f"torch could not export {name} to ONNX (dynamo exporter: {errors['dynamo']}; "
        f"TorchScript fallback: {errors['torchscript']}); {fallback}"
    )
