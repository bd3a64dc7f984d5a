"""Does int8 pay on a ViT? fp32 (eager, compiled) vs static and dynamic int8, side by side.

    python scripts/bench_quantize_vit.py           # vit_tiny_patch16_224 @224, batch 1 and 32
    python scripts/bench_quantize_vit.py --quick   # test_vit @32: checks the script runs

Random weights (nothing downloads): latency and size do not depend on the weights; output
agreement (cosine similarity of logits with fp32) stands in for accuracy. Candidates alternate in
every round (interleaved), medians over --rounds, torch.set_num_threads(--threads). The int8
programs run through torch.compile as `kta quantize` runs them (quant.compile=true).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from bench_quantize import Batches, compiled, int8_file_bytes
from torch import nn

from kta_cli.compress.quantize import QuantSettings, quantize
from kta_cli.engine.checkpoint import save_checkpoint
from kta_cli.models.factory import create_model
from kta_cli.report.measure import file_bytes, interleaved_latency_ms


def agreement(reference: nn.Module, candidate: Any, images: torch.Tensor) -> float:
    with torch.inference_mode():
        similarity = nn.functional.cosine_similarity(reference(images), candidate(images))
    return float(similarity.mean())


def int8_candidates(
    model: nn.Module, batches: Batches, one: torch.Tensor, args: argparse.Namespace, row: dict
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="kta-bench-vit-"))
    save_checkpoint(folder / "float.ckpt", {"model": model.state_dict()})
    row["fp32_bytes"] = file_bytes(folder / "float.ckpt")
    runs: dict[str, Any] = {}
    for mode in ("static", "dynamic"):
        settings = QuantSettings(mode=mode, calib_batches=args.calib_batches, sensitivity=False)
        started = time.perf_counter()
        result = quantize(model, settings, train_loader=batches, val_loader=batches, name="vit")
        row[f"int8_{mode}_quantize_s"] = time.perf_counter() - started
        started = time.perf_counter()
        with torch.inference_mode():
            result.model(one)  # the first call compiles
        row[f"int8_{mode}_compile_s"] = time.perf_counter() - started
        row[f"int8_{mode}_bytes"] = int8_file_bytes(result, folder, mode)
        row[f"int8_{mode}_agreement"] = agreement(model, result.model, batches.batches[0][0])
        runs[f"int8_{mode}"] = result.model
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_tiny_patch16_224")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--calib-batches", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="test_vit @32, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.model, args.img_size, args.batch_sizes = "test_vit", 32, [1, 4]
        args.calib_batches, args.rounds, args.repeats = 2, 2, 2
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {args.threads}, {time.strftime('%Y-%m-%d %H:%M')}")
    model = create_model(args.model, num_classes=1000, img_size=args.img_size).eval()
    generator = torch.Generator().manual_seed(0)
    size = args.img_size
    batches = Batches(
        [
            (torch.randn(4, 3, size, size, generator=generator), torch.zeros(4).long())
            for _ in range(args.calib_batches)
        ]
    )
    one = batches.batches[0][0][:1].contiguous()
    row: dict[str, Any] = {"model": f"{args.model} @{size}"}
    runs: dict[str, Any] = {"fp32": model}
    runs["fp32_compiled"], row["fp32_compile_s"] = compiled(model, one)
    runs.update(int8_candidates(model, batches, one, args, row))
    for batch_size in args.batch_sizes:
        images = torch.randn(batch_size, 3, size, size, generator=generator)
        with torch.inference_mode():
            latency = interleaved_latency_ms(runs, images, rounds=args.rounds, repeats=args.repeats)
        row.update({f"{name}_ms_batch{batch_size}": value for name, value in latency.items()})
    print_row(row, args.batch_sizes)


def print_row(row: dict[str, Any], batch_sizes: list[int]) -> None:
    print(f"\n== {row['model']}")
    for key, value in row.items():
        print(f"  {key:<30} {value:.4f}" if isinstance(value, float) else f"  {key:<30} {value}")
    for mode in ("static", "dynamic"):
        line = f"  int8 {mode}: file ratio {row[f'int8_{mode}_bytes'] / row['fp32_bytes']:.3f}"
        for batch in batch_sizes:
            int8 = row[f"int8_{mode}_ms_batch{batch}"]
            line += (
                f", batch {batch} int8/fp32 eager {int8 / row[f'fp32_ms_batch{batch}']:.3f}"
                f" (compiled {int8 / row[f'fp32_compiled_ms_batch{batch}']:.3f})"
            )
        print(line + "  (< 1: int8 is faster)")


if __name__ == "__main__":
    main()
