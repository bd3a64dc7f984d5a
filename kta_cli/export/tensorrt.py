"""format=tensorrt: a TensorRT engine on a CUDA machine, through torch-tensorrt when it is
importable, else NVIDIA's trtexec on the exported ONNX file; elsewhere one clear refusal."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kta_cli.errors import KtaError, first_line
from kta_cli.export.onnx import INPUT_NAME, written_atomically

NEEDS = "format=tensorrt needs a CUDA machine with torch-tensorrt or trtexec"


def tensorrt_tool() -> str:
    """ "torch_tensorrt" or "trtexec"; KtaError (before anything is written) when neither runs."""
    if not torch.cuda.is_available():
        raise KtaError(f"{NEEDS}; torch sees no CUDA device here (format=onnx runs on this one)")
    if importlib.util.find_spec("torch_tensorrt") is not None:
        return "torch_tensorrt"
    if shutil.which("trtexec"):
        return "trtexec"
    raise KtaError(
        f"{NEEDS}; CUDA is here but neither is installed (pip install torch-tensorrt, or put "
        "TensorRT's trtexec on PATH)"
    )


def shape_text(shape: torch.Size | tuple[int, ...]) -> str:
    return "x".join(str(size) for size in shape)


def with_trtexec(
    onnx_path: Path, engine_path: Path, example: torch.Tensor, max_batch: int
) -> dict[str, Any]:
    """trtexec builds an fp16-capable engine for batch 1..max_batch and times it itself."""
    one, most = (1, *example.shape[1:]), (max_batch, *example.shape[1:])
    with written_atomically(engine_path) as temporary:
        command = [
            "trtexec",
            f"--onnx={onnx_path}",
            f"--saveEngine={temporary}",
            f"--minShapes={INPUT_NAME}:{shape_text(one)}",
            f"--optShapes={INPUT_NAME}:{shape_text(most)}",
            f"--maxShapes={INPUT_NAME}:{shape_text(most)}",
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-1:]
            raise KtaError(f"trtexec could not build an engine from {onnx_path.name}: {tail}")
    summary = [
        line for line in done.stdout.splitlines() if "Latency:" in line or "Throughput" in line
    ]
    return {"tool": "trtexec", "engine": str(engine_path), "trtexec_summary": summary[-3:]}


def with_torch_tensorrt(
    model: nn.Module, engine_path: Path, example: torch.Tensor, max_batch: int
) -> dict[str, Any]:
    """torch-tensorrt's dynamo path; the saved program is checked against torch on CUDA."""
    import torch_tensorrt

    device = torch.device("cuda")
    model = model.to(device).eval()
    spec = torch_tensorrt.Input(
        min_shape=(1, *example.shape[1:]),
        opt_shape=(max_batch, *example.shape[1:]),
        max_shape=(max_batch, *example.shape[1:]),
        dtype=torch.float32,
    )
    images = example.to(device)
    try:
        compiled = torch_tensorrt.compile(model, ir="dynamo", inputs=[spec])
        with torch.no_grad():
            difference = (compiled(images) - model(images)).abs().max().item()
        with written_atomically(engine_path) as temporary:
            torch_tensorrt.save(
                compiled, str(temporary), inputs=[images], output_format="exported_program"
            )
    except Exception as error:  # torch-tensorrt raises its own and torch's errors
        raise KtaError(
            f"torch-tensorrt could not compile this model ({first_line(error)})"
        ) from error
    return {"tool": "torch_tensorrt", "engine": str(engine_path), "max_abs_diff_cuda": difference}


def build_tensorrt(
    tool: str, model: nn.Module, onnx_path: Path, example: torch.Tensor, settings: dict[str, Any]
) -> dict[str, Any]:
    """The engine beside the ONNX file, for batch 1 up to the largest of export.batch_sizes."""
    max_batch = max(settings["batch_sizes"])
    if tool == "torch_tensorrt":
        return with_torch_tensorrt(model, onnx_path.with_name("model.trt.ep"), example, max_batch)
    return with_trtexec(onnx_path, onnx_path.with_name("model.engine"), example, max_batch)
