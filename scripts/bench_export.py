"""Benchmark for `kta export`: ONNX fp32 and int8 QDQ against torch eager and compiled float,
measured side by side, with parity and file sizes.

    python scripts/bench_export.py                       # resnet18 @224 + the README chain's model
    python scripts/bench_export.py --ckpt outputs/prune/latest/model.ckpt   # your own model
    python scripts/bench_export.py --quick               # tiny models, seconds: checks the script

Models: timm resnet18 at 224x224 with untrained weights (no download; calibrated and checked on
random images, so only agreement is meaningful), and the README chain's model (kta train, kta
distill, kta prune ckpt=latest prune.ratio=0.5: a pruned resnet10t at 32 px on the digits, built
in a temporary folder unless --ckpt names one), scored on its test split. Everything goes through
kta_cli/export (the code `kta export` runs): interleaved rounds, medians, --threads threads,
onnxruntime with spinning off; compile time is not latency.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from kta_cli.cli import main as kta
from kta_cli.data.datasets import build_data, spec_from_dict
from kta_cli.data.loaders import collect
from kta_cli.data.spec import IMAGENET_MEAN, IMAGENET_STD
from kta_cli.engine.checkpoint import load_checkpoint
from kta_cli.engine.evaluate import checkpoint_data
from kta_cli.export.int8 import quantize_onnx_int8
from kta_cli.export.latency import measure_latency, rich_table
from kta_cli.export.onnx import export_onnx
from kta_cli.export.parity import agreement, logits_of, onnx_runner
from kta_cli.loading import model_from_checkpoint
from kta_cli.models.factory import create_model
from kta_cli.report.measure import file_bytes, serialized_bytes
from kta_cli.report.reporter import console
from kta_cli.robustness.attacks import PixelModel, to_pixels


def bench(
    label: str,
    model: nn.Module,
    calibration: torch.Tensor,
    images: torch.Tensor,
    labels: torch.Tensor,
    args: argparse.Namespace,
    batch_sizes: list[int],
) -> None:
    """Export, int8, parity, then the latency table with every ratio a user would ask for."""
    folder = Path(tempfile.mkdtemp(prefix="kta-bench-export-"))
    started = time.perf_counter()
    exported = export_onnx(model, images[:2], folder / "model.onnx", name=label, fallback="")
    export_s = time.perf_counter() - started
    started = time.perf_counter()
    int8 = quantize_onnx_int8(
        exported.path,
        folder / "model.int8.onnx",
        list(calibration.split(args.calib_batch)),
        method=args.calibration,
        per_channel=True,
    )
    int8_s = time.perf_counter() - started
    reference = logits_of(model, images)
    files = {"fp32": exported.path, "int8": int8}
    parity = {
        k: agreement(reference, logits_of(onnx_runner(p, args.threads), images), labels)
        for k, p in files.items()
    }
    settings = {
        "batch_sizes": batch_sizes,
        "threads": args.threads,
        "compile": True,
        "rounds": args.rounds,
        "repeats": args.repeats,
    }
    measured, skipped = measure_latency(model, files, images, settings)
    console.print(
        f"\n== {label} ({exported.exporter} exporter, export {export_s:.1f} s, int8 {int8_s:.1f} s)"
    )
    for kind, row in parity.items():
        print(
            f"  parity {kind}: max abs diff {row['max_abs_diff']:.2e}, "
            f"agreement {row['agreement']:.4f}, "
            f"acc torch {row['reference_acc']:.4f} / onnx {row['acc']:.4f}"
        )
    sizes = {"torch state_dict": serialized_bytes(model.state_dict())} | {
        f"onnx {k}": file_bytes(p) for k, p in files.items()
    }
    print("  file bytes: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    table = measured["latency_ms"]
    console.print(
        rich_table(f"{label}: median ms, {args.threads} threads", table, skipped, "torch_eager")
    )
    for column in table["torch_eager"]:
        line = [f"  {column}:"]
        for name in ("onnxruntime_fp32", "onnxruntime_int8"):
            line.append(f"{name}/eager {table[name][column] / table['torch_eager'][column]:.3f}")
            if "torch_compiled" in table:
                line.append(
                    f"/compiled {table[name][column] / table['torch_compiled'][column]:.3f}"
                )
        int8_over_fp32 = table["onnxruntime_int8"][column] / table["onnxruntime_fp32"][column]
        line.append(f"int8/onnx fp32 {int8_over_fp32:.3f}")
        print(" ".join(line))
    if skipped:
        print(f"  left out: {skipped}")


def untrained_224(args: argparse.Namespace) -> None:
    size = 64 if args.quick else 224
    model = PixelModel(
        create_model(args.model, num_classes=1000), IMAGENET_MEAN, IMAGENET_STD
    ).eval()
    generator = torch.Generator().manual_seed(0)
    calibration = torch.rand(
        args.calib_batches * args.calib_batch, 3, size, size, generator=generator
    )
    images = torch.rand(args.images, 3, size, size, generator=generator)
    labels = torch.zeros(len(images), dtype=torch.long)  # no labels: only agreement means anything
    bench(
        f"{args.model} @{size} (untrained)",
        model,
        calibration,
        images,
        labels,
        args,
        args.batch_sizes_224,
    )


def chain_checkpoint(args: argparse.Namespace) -> Path:
    """The README chain in a temporary folder: train, distill, prune 50 %."""
    folder = Path(tempfile.mkdtemp(prefix="kta-bench-chain-"))
    quiet = ["trainer.progress=false", "logger=none"]
    teacher = ["model=test_resnet", "data.img_size=16"] if args.quick else []
    student = ["student=test_resnet"] if args.quick else []
    previous = Path.cwd()
    os.chdir(folder)
    try:
        for line in (
            ["train", *teacher, f"trainer.epochs={args.epochs}", *quiet],
            ["distill", *student, f"trainer.epochs={args.epochs}", *quiet],
            [
                "prune",
                "ckpt=latest",
                "prune.ratio=0.5",
                "finetune.epochs=1",
                "measure.latency=false",
                *quiet,
            ],
        ):
            print(f"kta {' '.join(line)}", flush=True)
            kta(line)
    finally:
        os.chdir(previous)
    return next((folder / "outputs" / "prune").glob("*/model.ckpt"))


def chain_model(args: argparse.Namespace) -> None:
    path = Path(args.ckpt) if args.ckpt else chain_checkpoint(args)
    checkpoint = load_checkpoint(path)
    recorded = checkpoint["data"]
    model = PixelModel(model_from_checkpoint(checkpoint), recorded["mean"], recorded["std"]).eval()
    data = build_data(spec_from_dict(checkpoint_data(checkpoint, None)))
    test, labels = collect(data.test)
    train, _ = collect(data.train, args.calib_batches * args.calib_batch)
    images = to_pixels(test, recorded["mean"], recorded["std"])
    calibration = to_pixels(train, recorded["mean"], recorded["std"])
    made_by = checkpoint.get("command", "kta")
    name = f"{checkpoint['model_args']['name']} ({made_by}, {recorded['img_size']} px)"
    bench(name, model, calibration, images, labels, args, args.batch_sizes)


def sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--ckpt", default=None, help="a kta checkpoint instead of the README chain")
    parser.add_argument(
        "--epochs", type=int, default=2, help="train and distill epochs of the chain"
    )
    parser.add_argument("--calibration", default="minmax", help="minmax | entropy | percentile")
    parser.add_argument("--calib-batches", type=int, default=8)
    parser.add_argument("--calib-batch", type=int, default=8, help="images per calibration batch")
    parser.add_argument("--images", type=int, default=64, help="random images for parity at 224")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch-sizes", type=sizes, default=[1, 32], help="chain model")
    parser.add_argument("--batch-sizes-224", type=sizes, default=[1, 8])
    parser.add_argument("--skip-224", action="store_true")
    parser.add_argument("--skip-chain", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny models and rounds: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.model, args.rounds, args.repeats, args.epochs, args.images = "test_resnet", 1, 2, 1, 8
        args.calib_batches, args.batch_sizes, args.batch_sizes_224 = 2, [1, 4], [1, 4]
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load = os.getloadavg()[0]
    when = time.strftime("%Y-%m-%d %H:%M")
    print(f"torch {torch.__version__}, threads {args.threads}, load {load:.2f}, {when}")
    if not args.skip_224:
        untrained_224(args)
    if not args.skip_chain:
        chain_model(args)


if __name__ == "__main__":
    main()
