"""Benchmark for `kta quantize`: int8 vs float latency, size and accuracy, measured side by side.

    python scripts/bench_quantize.py                   # resnet18 @224 + resnet18 trained on digits
    python scripts/bench_quantize.py --ckpt outputs/train/latest/best.ckpt   # your own model
    python scripts/bench_quantize.py --skip-trained --cpp-wrapper --aoti   # + the two levers
    python scripts/bench_quantize.py --skip-trained --kernels   # + oneDNN's kernels alone

Candidates per model: fp32 eager, fp32 torch.compile (inductor, freezing), int8 pt2e_x86
(torch.export + torchao X86InductorQuantizer + torch.compile) and int8 fx_x86 (torch.ao,
deprecated); with --cpp-wrapper / --aoti also fp32 and int8 pt2e built with inductor's C++
wrapper / compiled ahead of time by AOTInductor (kta's quant.aoti=true). The pt2e_x86 row is
torch.compile at every batch size (quant.aoti=false); kta's default, quant.aoti=auto, runs batch 1
as the AOTInductor row and batch N as the pt2e_x86 row. --kernels: the milliseconds inside
oneDNN's kernels alone (torch.profiler), the floor under any runtime lever. Latency at batch 1
and at --batch-size (trained) / --batch-size-224 (resnet18 @224):
interleaved rounds, median, torch.set_num_threads(--threads); compile time is reported apart.
Targets from issue 5: int8/fp32 latency <= 0.30, accuracy drop <= 0.5 points, file size ratio
<= 0.27; issue 14: resnet18@224 int8/fp32 compiled <= 0.30 at batch 1 and 32.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kta_cli.compress.quantize import QuantSettings, quantize
from kta_cli.compress.quantize_report import example_batch
from kta_cli.compress.quantized import FrozenCompiled, compiled_float
from kta_cli.data.datasets import DataSpec, build_data
from kta_cli.engine.checkpoint import load_checkpoint, save_checkpoint
from kta_cli.engine.finetune import fine_tune
from kta_cli.loading import model_from_checkpoint
from kta_cli.models.factory import create_model
from kta_cli.report.measure import (
    accuracy,
    file_bytes,
    interleaved_kernel_ms,
    interleaved_latency_ms,
)


class Batches:
    """A list of (images, labels) batches that looks like a kta loader."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.batches = batches

    def __iter__(self) -> Any:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        pass


def compiled(
    model: nn.Module, examples: list[torch.Tensor], dynamic: bool | None = False, **inductor: Any
) -> tuple[Any, float]:
    """kta's FrozenCompiled (inductor with freezing, one static graph per batch size; or
    torch.compile's default shapes with dynamic=None) and `inductor` options, warmed up at each
    batch size; returns (fn, seconds)."""
    started = time.perf_counter()
    run = FrozenCompiled(copy.deepcopy(model), dynamic=dynamic, **inductor)  # own cache entry
    with torch.inference_mode():
        for images in examples:
            run(images)
    return run, time.perf_counter() - started


def ahead_of_time(model: nn.Module, examples: list[torch.Tensor]) -> tuple[Any, float]:
    """AOTInductor with freezing for every batch size (kta's quant.aoti=true), built at each;
    (fn, seconds). A build failure stops the benchmark (kta itself reports n/a and why)."""
    runner, took = compiled_float(model, examples, aoti=True)
    if runner is None:
        raise RuntimeError(f"AOTInductor could not build {type(model).__name__}: {took}")
    return runner, took


def int8_file_bytes(result: Any, folder: Path, backend: str) -> int:
    """Size of the kta checkpoint file the command would write (payload only, no metadata)."""
    path = folder / f"{backend}.ckpt"
    save_checkpoint(path, {"model_kind": "quantized", **result.payload})
    return file_bytes(path)


def bench(
    name: str,
    model: nn.Module,
    train: Any,
    val: Any,
    test: Any | None,
    args: argparse.Namespace,
    batch_size: int = 1,
) -> dict[str, Any]:
    """Every candidate on `model`: latency at batch 1 (and `batch_size`), size, accuracy."""
    model = model.eval()
    examples = [example_batch(train, size) for size in dict.fromkeys([1, batch_size])]
    folder = Path(tempfile.mkdtemp(prefix="kta-bench-"))
    save_checkpoint(folder / "float.ckpt", {"model": model.state_dict()})
    row: dict[str, Any] = {"model": name, "float_bytes": file_bytes(folder / "float.ckpt")}
    runs: dict[str, Any] = {"fp32": model}
    runs["fp32_compiled"], row["fp32_compile_s"] = compiled(model, examples)
    if args.cpp_wrapper:  # the lever side by side: inductor's C++ wrapper instead of Python
        runs["fp32_compiled_cppw"], row["fp32_cppw_compile_s"] = compiled(
            model, examples, cpp_wrapper=True
        )
    if args.aoti:  # AOTInductor, one library per batch size (as kta's quant.aoti=true runs)
        runs["fp32_compiled_aoti"], row["fp32_aoti_compile_s"] = ahead_of_time(model, examples)
    for backend in ("pt2e_x86", "fx_x86"):
        settings = QuantSettings(
            backend=backend,
            observer=args.observer,
            calib_batches=args.calib_batches,
            sensitivity=False,
        )
        started = time.perf_counter()
        result = quantize(model, settings, train_loader=train, val_loader=val, name=name)
        row[f"{backend}_quantize_s"] = time.perf_counter() - started
        started = time.perf_counter()
        with torch.inference_mode():
            for images in examples:
                result.model(images)
        row[f"{backend}_first_calls_s"] = time.perf_counter() - started
        row[f"{backend}_bytes"] = int8_file_bytes(result, folder, backend)
        runs[backend] = result.model
        if backend == "pt2e_x86" and args.cpp_wrapper:
            runs["pt2e_x86_cppw"], row["pt2e_x86_cppw_first_calls_s"] = compiled(
                result.model.graph, examples, cpp_wrapper=True
            )
        if backend == "pt2e_x86" and args.dynamic_int8:  # torch.compile's default, dynamic=None
            runs["pt2e_x86_dyn"], row["pt2e_x86_dyn_first_calls_s"] = compiled(
                result.model.graph, examples, dynamic=None
            )
        if backend == "pt2e_x86" and args.aoti:
            runs["pt2e_x86_aoti"], row["pt2e_x86_aoti_first_calls_s"] = ahead_of_time(
                result.model.graph, examples
            )
        if test is not None:
            row[f"{backend}_acc"] = accuracy(result.model, test)
    if test is not None:
        row["fp32_acc"] = accuracy(model, test)
    for images in examples:  # interleaved rounds per batch size, medians
        with torch.inference_mode():
            latency = interleaved_latency_ms(runs, images, rounds=args.rounds, repeats=args.repeats)
        suffix = "" if len(images) == 1 else f"_batch{len(images)}"
        row.update({f"{k}_ms{suffix}": v for k, v in latency.items()})
        if args.kernels:  # the time inside oneDNN's kernels alone: what no runtime lever removes
            pair = {name: runs[name] for name in ("fp32_compiled", "pt2e_x86")}
            with torch.inference_mode():
                inside = interleaved_kernel_ms(pair, images, rounds=args.rounds)
            row.update({f"{k}_kernel_ms{suffix}": v for k, v in inside.items()})
    return row


def print_row(row: dict[str, Any]) -> None:
    print(f"\n== {row['model']}")
    for key, value in row.items():
        print(f"  {key:<26} {value:.4f}" if isinstance(value, float) else f"  {key:<26} {value}")
    for backend in ("pt2e_x86", "fx_x86"):
        ratio = row[f"{backend}_ms"] / row["fp32_ms"]
        ratio_compiled = row[f"{backend}_ms"] / row["fp32_compiled_ms"]
        size = row[f"{backend}_bytes"] / row["float_bytes"]
        line = (
            f"  {backend}: latency int8/fp32 eager {ratio:.3f} (target <= 0.30: "
            f"{'met' if ratio <= 0.30 else 'MISSED'}), int8/fp32 compiled {ratio_compiled:.3f}, "
            f"file ratio {size:.3f} ({'met' if size <= 0.27 else 'MISSED'} <= 0.27)"
        )
        batched = [k for k in row if k.startswith(f"{backend}_ms_batch")]
        for key in batched:
            suffix = key.removeprefix(f"{backend}_ms_")
            line += f", {suffix} int8/fp32 eager {row[key] / row[f'fp32_ms_{suffix}']:.3f}"
            line += f" (compiled {row[key] / row[f'fp32_compiled_ms_{suffix}']:.3f})"
        if f"{backend}_acc" in row:
            drop = 100 * (row["fp32_acc"] - row[f"{backend}_acc"])
            line += f", accuracy drop {drop:.2f} points ({'met' if drop <= 0.5 else 'MISSED'})"
        print(line)
    for key in [k for k in row if k.startswith("pt2e_x86_dyn_ms")]:
        plain = key.removeprefix("pt2e_x86_dyn_ms")
        print(f"  int8 static / int8 automatic-dynamic {plain.strip('_') or 'batch1'}: "
              f"{row['pt2e_x86_ms' + plain]:.3f} / {row[key]:.3f} ms")  # fmt: skip
    for key in [k for k in row if k.startswith("pt2e_x86_kernel_ms")]:
        plain = key.removeprefix("pt2e_x86_kernel_ms")
        fp32 = row["fp32_compiled_kernel_ms" + plain]
        print(f"  kernels only {plain.strip('_') or 'batch1'}: int8 {row[key]:.3f} ms, fp32 "
              f"compiled {fp32:.3f} ms, int8/fp32 {row[key] / fp32:.3f} (whole calls: "
              f"{row['pt2e_x86_ms' + plain] / row['fp32_compiled_ms' + plain]:.3f})")  # fmt: skip
    for lever, what in (("cppw", "C++ wrapper"), ("aoti", "AOTInductor")):
        for key in [k for k in row if k.startswith(f"pt2e_x86_{lever}_ms")]:
            plain = key.removeprefix(f"pt2e_x86_{lever}_ms")
            fp32, eager = row[f"fp32_compiled_{lever}_ms{plain}"], row["fp32_ms" + plain]
            print(
                f"  {what} {plain.strip('_') or 'batch1'}: int8 {row[key]:.3f} ms (torch.compile "
                f"{row['pt2e_x86_ms' + plain]:.3f}), fp32 {fp32:.3f} ms (torch.compile "
                f"{row['fp32_compiled_ms' + plain]:.3f}); int8/fp32 both {what} "
                f"{row[key] / fp32:.3f}, int8 {what} / fp32 eager {row[key] / eager:.3f}"
            )


def imagenet_like(args: argparse.Namespace) -> dict[str, Any]:
    """timm resnet18 at 224x224 (random weights: no download); calibrated on random images."""
    model = create_model(args.model, num_classes=1000)
    generator = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(4, 3, 224, 224, generator=generator), torch.zeros(4).long())
        for _ in range(args.calib_batches)
    ]
    train, val = Batches(batches), Batches(batches[:1])
    return bench(f"{args.model} @224", model, train, val, None, args, args.batch_size_224)


def trained_on_digits(args: argparse.Namespace) -> dict[str, Any]:
    """A model trained on the embedded digits (or --ckpt), scored on its test split."""
    if args.ckpt:
        checkpoint = load_checkpoint(args.ckpt)
        model = model_from_checkpoint(checkpoint)
        spec = DataSpec(**checkpoint["config"]["data"])
        data = build_data(spec)
        name = checkpoint["model_args"]["name"]
        return bench(name, model, data.train, data.val, data.test, args, args.batch_size)
    data = build_data(DataSpec(img_size=args.digits_size))
    model = create_model(args.model, num_classes=10)
    fine_tune(model, data.train, data.val, epochs=args.epochs, lr=0.05)
    name = f"{args.model} @{args.digits_size} digits ({args.epochs} epochs)"
    return bench(name, model, data.train, data.val, data.test, args, args.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--ckpt", default=None, help="a kta checkpoint instead of training one")
    parser.add_argument("--digits-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--observer", default="histogram")
    parser.add_argument("--calib-batches", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="second latency batch size of the trained model (1: batch 1 only)",
    )
    parser.add_argument(
        "--batch-size-224", type=int, default=32, help="second batch size at 224 (1: batch 1 only)"
    )
    parser.add_argument(
        "--aoti",
        action="store_true",
        help="add fp32 and int8 pt2e candidates compiled by AOTInductor (kta quant.aoti=true)",
    )
    parser.add_argument(
        "--cpp-wrapper",
        action="store_true",
        help="add fp32 compiled and int8 pt2e candidates built with inductor's cpp_wrapper=True",
    )
    parser.add_argument(
        "--dynamic-int8",
        action="store_true",
        help="add the int8 pt2e graph under torch.compile's default shapes (dynamic after a 2nd)",
    )
    parser.add_argument(
        "--kernels",
        action="store_true",
        help="also time oneDNN's kernels alone (torch.profiler) in fp32 compiled and int8 pt2e",
    )
    parser.add_argument("--skip-224", action="store_true")
    parser.add_argument("--skip-trained", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {args.threads}, {time.strftime('%Y-%m-%d %H:%M')}")
    rows = [] if args.skip_trained else [trained_on_digits(args)]
    if not args.skip_224:
        rows.append(imagenet_like(args))
    for row in rows:
        print_row(row)


if __name__ == "__main__":
    main()
