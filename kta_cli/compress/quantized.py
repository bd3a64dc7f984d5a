"""Quantized models as data: how they are saved in a kta checkpoint and rebuilt to run.

model_kind "quantized" checkpoints carry `quant` = {backend, mode, ...} and, by backend:
    pt2e_x86   `program`: the bytes of a torch.export archive (.pt2) as a uint8 tensor. The graph
               is JSON, weights raw bytes; we refuse archives that would make torch.export.load
               unpickle anything (see check_program_is_data).
    fx_x86     `model`: the state_dict of a torch.ao FX int8 model (quantized tensors), rebuilt
               from the timm architecture (kta_cli/compress/quantize_fx.py).
    cast       `model`: the state_dict in fp16 or bf16; computes in that dtype.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kta_cli.compress.quantize_fx import fx_model_from_checkpoint
from kta_cli.errors import KtaError, first_line
from kta_cli.models.factory import create_model

CAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}

# inductor's int8 lowering warns about its own tensor copy on every compile; nothing to act on
warnings.filterwarnings(
    "ignore", message="To copy construct from a tensor", module="torch._inductor.mkldnn_lowerings"
)


class FrozenCompiled:
    """`module` through torch.compile with inductor's freezing (constant weights folded:
    BatchNorm into convolutions, quantize/dequantize pairs into oneDNN int8 kernels), one static
    graph per input shape. torch.compile's default recompiles with a symbolic batch size at the
    second shape, and that graph ran a pruned resnet10t's int8 program 3.8x slower at batch 32
    (docs/benchmarks.md). How kta runs its int8 program and times every compiled float baseline.

    The inductor options are patched in only for a call that may compile (an input kind not seen
    yet): patching them around every call cost about 0.1 ms, a tenth of a small model's batch-1
    call (docs/benchmarks.md).
    """

    def __init__(self, module: nn.Module, dynamic: bool | None = False, **inductor: Any) -> None:
        self.function = torch.compile(module, dynamic=dynamic)  # None: torch's default, to compare
        self.options = {"freezing": True, **inductor}
        self.seen: set[tuple[Any, ...]] = set()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        kind = (  # what dynamo's guards tell apart: a new kind compiles again
            images.shape, images.stride(), images.dtype, images.device, images.requires_grad,
            torch.is_grad_enabled(), torch.is_inference_mode_enabled(),
            torch.is_autocast_enabled(images.device.type),
        )  # fmt: skip
        if kind in self.seen:
            return self.function(images)
        with torch._inductor.config.patch(**self.options):  # dynamo compiles inside this call
            output = self.function(images)
        self.seen.add(kind)
        return output


class AotiRunner:
    """`module` compiled ahead of time by AOTInductor (freezing on), one library per input shape.

    The call runs in C++ from input to output: no dynamo guard check and no Python wrapper
    between kernels, the per-call overhead that dominates a small model at batch 1. The
    libraries are machine code built here into a temporary folder, never saved in a checkpoint.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.folder = tempfile.TemporaryDirectory(prefix="kta-aoti-")
        self.runners: dict[tuple[Any, ...], Any] = {}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images.contiguous()  # each library is built for a contiguous input
        key = (*images.shape, images.dtype)
        if key not in self.runners:
            self.runners[key] = self.build(tuple(images.shape), images.dtype)
        return self.runners[key](images)

    def build(self, shape: tuple[int, ...], dtype: torch.dtype) -> Any:
        with torch.inference_mode(False), torch.no_grad():  # export refuses inference tensors
            example = torch.zeros(shape, dtype=dtype)
            program = torch.export.export(self.module, (example,))  # static: this shape only
            path = Path(self.folder.name) / f"{'x'.join(map(str, shape))}.pt2"
            package = torch._inductor.aoti_compile_and_package(
                program, package_path=str(path), inductor_configs={"freezing": True}
            )
        return torch._inductor.aoti_load_package(package)


class InductorRunner:
    """`module` through inductor with freezing, each input shape built the way `aoti` says:
    True, every shape by AOTInductor; "auto", batch 1 only (where the per-call overhead is half
    of a small model's time) and the other shapes by torch.compile; False, none."""

    def __init__(self, module: nn.Module, aoti: bool | str = False) -> None:
        self.module = module
        self.aoti = aoti
        self.compiled: FrozenCompiled | None = None
        self.ahead: AotiRunner | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.aoti is True or (self.aoti == "auto" and len(images) == 1):
            self.ahead = self.ahead or AotiRunner(self.module)
            return self.ahead(images)
        self.compiled = self.compiled or FrozenCompiled(self.module)
        return self.compiled(images)


def compiled_float(
    model: torch.nn.Module, examples: list[torch.Tensor], *, aoti: bool | str
) -> tuple[Any, float | str]:
    """The float model as a user after speed runs it, warmed up at every batch size: compiled
    as the int8 program is (an InductorRunner with the int8 program's `aoti`).
    (runner, seconds the warm-up took), or (None, why) when it does not compile here."""
    started = time.perf_counter()
    try:
        runner = InductorRunner(model, aoti)
        with torch.inference_mode():
            for images in examples:
                runner(images)
    except Exception as error:  # inductor raises many kinds; the caller reports n/a and why
        return None, first_line(error)
    return runner, time.perf_counter() - started


class QuantizedProgram(nn.Module):
    """Runs an int8 exported graph on CPU, compiled on first use (that is where it gets fast).

    Inductor's freezing pass is what turns quantize/dequantize pairs into oneDNN int8 kernels.
    `aoti` picks which input shapes are compiled ahead of time by AOTInductor, which takes longer
    to build (about 10 s a shape) and less per call (InductorRunner). The library's default is
    False (nothing built ahead of time unless asked); `kta quantize` sets quant.aoti, whose
    default is "auto", and the checkpoint keeps it.
    """

    def __init__(self, graph: nn.Module, *, compile: bool = True, aoti: bool | str = False) -> None:
        super().__init__()
        self.graph = graph
        self.use_compile = compile
        self.use_aoti = aoti
        self._runner: InductorRunner | None = None

    @property
    def aoti(self) -> bool | str:
        """How the program is compiled ahead of time in effect: False when it is not compiled."""
        return self.use_aoti if self.use_compile else False

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.use_compile:
            return self.graph(images)
        if self._runner is None or self._runner.aoti != self.use_aoti:
            self._runner = InductorRunner(self.graph, self.use_aoti)
        return self._runner(images)

    def train(self, mode: bool = True) -> QuantizedProgram:
        # an exported graph refuses .train()/.eval(); it is always in inference form anyway
        self.training = mode
        return self

    def to(self, *args: Any, **kwargs: Any) -> QuantizedProgram:
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is not None and torch.device(device).type != "cpu":
            raise KtaError(
                f"this int8 model runs on CPU (x86) only, not {device}; pass trainer.device=cpu"
            )
        return self


class CastModel(nn.Module):
    """A float model whose weights are fp16/bf16: inputs cast in, logits cast back to float32."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model.to(dtype)
        self.dtype = dtype

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.to(self.dtype)).float()


def program_to_tensor(program: torch.export.ExportedProgram) -> torch.Tensor:
    """torch.export.save into memory, as a uint8 tensor a weights_only checkpoint can hold."""
    program.example_inputs = None  # the archive would carry a batch of images otherwise
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)


def check_program_is_data(data: bytes) -> None:
    """Refuse a .pt2 archive whose loading would unpickle Python objects.

    torch.export.load unpickles tensor subclasses and custom objects, and retries a failed
    weights_only load without it; a hand check is the only way to be sure it never does.
    """
    from torch.export.pt2_archive.constants import TENSOR_CONSTANT_FILENAME_PREFIX

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise KtaError("the quantized program in this checkpoint is not a .pt2 archive") from error
    with archive:
        for name in archive.namelist():
            if name.endswith(("weights_config.json", "constants_config.json")):
                for fqn, meta in json.loads(archive.read(name))["config"].items():
                    plain = meta["path_name"].startswith(
                        ("weight", TENSOR_CONSTANT_FILENAME_PREFIX)
                    )
                    if meta.get("use_pickle") or not plain:
                        raise KtaError(f"refusing the quantized program: {fqn} is a pickled object")
            elif name.endswith((".pt", ".pkl")) and archive.getinfo(name).file_size:
                try:
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)
                except Exception as error:
                    raise KtaError(
                        f"refusing the quantized program: {name} is not plain data"
                    ) from error


def load_program(program: torch.Tensor) -> nn.Module:
    """The graph module of a saved int8 program, after checking it holds only data."""
    data = program.numpy().tobytes()
    check_program_is_data(data)
    import torchao.quantization.pt2e  # noqa: F401  registers the quantized_decomposed ops

    return torch.export.load(io.BytesIO(data)).module()


def quantized_model_from_checkpoint(
    checkpoint: dict[str, Any], compile: bool | None = None
) -> nn.Module:
    """Rebuild a runnable int8 model (backend pt2e_x86 or fx_x86, see module docstring).

    `compile` (pt2e_x86): None follows quant.compile as it was when the model was quantized;
    quant.aoti says how it is compiled.
    """
    quant = checkpoint.get("quant") or {}
    backend = quant.get("backend")
    if backend == "pt2e_x86":
        compile = quant.get("compile", True) if compile is None else compile
        program = load_program(checkpoint["program"])
        return QuantizedProgram(program, compile=compile, aoti=quant.get("aoti", False))
    if backend == "fx_x86":
        return fx_model_from_checkpoint(checkpoint)
    raise KtaError(f"unknown quantization backend {backend!r} in checkpoint (made by a newer kta?)")


def cast_model_from_checkpoint(checkpoint: dict[str, Any]) -> CastModel:
    """Rebuild a backend "cast" checkpoint: the timm model with fp16/bf16 weights."""
    args, quant = checkpoint["model_args"], checkpoint["quant"]
    model = create_model(
        args["name"], num_classes=args["num_classes"], img_size=args.get("img_size")
    )
    dtype = CAST_DTYPES[quant["mode"]]
    model.to(dtype).load_state_dict(checkpoint["model"])
    return CastModel(model, dtype).eval()
