"""Benchmark for `kta prune`: speed of structured pruning, and accuracy kept after fine-tuning.

    python scripts/bench_prune.py latency    # resnet18 at 224x224, 50% of channels removed
    python scripts/bench_prune.py accuracy   # digits: train, then 50% structured / 90% unstructured
    python scripts/bench_prune.py all --model vit_tiny_patch16_224 --cases structured
        # a ViT: head dimensions and MLP channels (--attention heads: whole heads) at 224x224,
        # and trained from scratch on the digits at --img-size
    python scripts/bench_prune.py all --quick  # test_vit, tiny budgets: checks the script runs

latency: CPU latency and MACs of the pruned model over the unpruned one, measured side by side
(interleaved rounds, median over several runs, torch.set_num_threads(2)) in each --layouts
(eager contiguous, eager channels_last, compiled). Target (issue 14): ratio <= 0.30. --kernels
adds the time inside oneDNN's kernels alone (torch.profiler) in each layout.
accuracy: runs the real CLI (kta train, kta prune) and prints the test-accuracy drop after
fine-tuning. Target: at most 1 point for each.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from kta_cli.compress.quantized import FrozenCompiled

THREADS = 2


def latency(
    runs: int, batch_sizes: list[int], round_to: int | str | None, model: str, size: int,
    attention: str, layouts: list[str], kernels: bool = False,
) -> None:  # fmt: skip
    import torch_pruning as tp

    from kta_cli.compress.prune_layers import head_layers
    from kta_cli.compress.prune_structured import StructuredPruner, count_macs_and_params
    from kta_cli.export.latency import onnxruntime_runners
    from kta_cli.models.factory import create_model
    from kta_cli.report.measure import interleaved_kernel_ms, interleaved_latency_ms

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    example = torch.randn(1, 3, size, size)
    original = create_model(model, num_classes=1000, img_size=size).eval()
    pruned = create_model(model, num_classes=1000, img_size=size).eval()
    pruned.load_state_dict(original.state_dict())
    StructuredPruner(
        pruned, example, tp.importance.MagnitudeImportance(p=1), ratio=0.5, scope="layer",
        ignored=head_layers(pruned), round_to=round_to, attention=attention,
    ).step()  # fmt: skip
    macs0, params0 = count_macs_and_params(original, example)
    macs1, params1 = count_macs_and_params(pruned, example)
    print(f"{model} {size}x{size}, 50% per layer removed (L1, attention {attention}), "
          f"threads={THREADS}")  # fmt: skip
    print(f"params {params0} -> {params1}  ratio {params1 / params0:.3f}")
    print(f"MACs   {macs0} -> {macs1}  ratio {macs1 / macs0:.3f}")
    models = {"input": original, "pruned": pruned}
    scratch = tempfile.TemporaryDirectory(prefix="kta-bench-prune-")  # the ONNX files
    for layout in layouts:  # kta prune times channels_last by default
        if layout == "onnxruntime":  # exported as kta export does, in onnxruntime sessions
            runs_of = onnxruntime_runners(models, example, Path(scratch.name), THREADS)
        else:
            runs_of = {name: in_layout(m, layout) for name, m in models.items()}
        for batch in batch_sizes:  # compiled: one static graph per batch size
            images = torch.randn(batch, 3, size, size)
            if layout in ("channels_last", "compiled"):
                images = images.to(memory_format=torch.channels_last)
            ratios, before, after = [], [], []
            for _ in range(runs):
                times = interleaved_latency_ms(runs_of, images, rounds=5, repeats=5)
                before.append(times["input"])
                after.append(times["pruned"])
                ratios.append(times["pruned"] / times["input"])
            print(
                f"{layout}, batch {batch}: latency {statistics.median(before):.1f} ms -> "
                f"{statistics.median(after):.1f} ms, ratio median {statistics.median(ratios):.3f}"
                f" (runs: {', '.join(f'{r:.3f}' for r in ratios)}) target <= 0.30"
            )
            if kernels and layout != "onnxruntime":  # oneDNN kernels alone: no runtime lever cuts
                with torch.inference_mode():
                    inside = interleaved_kernel_ms(runs_of, images, rounds=5)
                print(f"  kernels only: {inside['input']:.2f} ms -> {inside['pruned']:.2f} ms, "
                      f"ratio {inside['pruned'] / inside['input']:.3f}")  # fmt: skip


def in_layout(model: torch.nn.Module, layout: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model as it is timed: eager contiguous, eager channels_last, or channels_last through
    kta's FrozenCompiled (inductor with freezing, which folds BatchNorm into the convolutions;
    one static graph per batch size). onnxruntime: export/latency.py's onnxruntime_runners."""
    if layout == "contiguous":
        return model
    model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    return model if layout == "channels_last" else FrozenCompiled(model)


def kta(folder: Path, *args: str) -> dict:
    """Run the CLI in `folder` and return the run's metrics.json."""
    command = [sys.executable, "-m", "kta_cli", *args]
    print("$ kta " + " ".join(args), flush=True)
    subprocess.run(command, cwd=folder, check=True, stdout=subprocess.DEVNULL)
    return json.loads((folder / "outputs" / args[0] / "latest" / "metrics.json").read_text())


def accuracy(
    folder: Path, epochs: int, finetune_epochs: int, img_size: int, ckpt: Path | None,
    cases: list[str], unstructured_steps: int, model: str = "resnet18",
    attention: str = "head_dims",
) -> None:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    common = ["logger=none", "trainer.progress=false", f"trainer.threads={THREADS}"]
    if ckpt is None:
        trained = kta(
            folder, "train", f"model={model}", f"data.img_size={img_size}",
            f"trainer.epochs={epochs}", *common,
        )  # fmt: skip
        print(f"trained: test_acc {trained['test_acc']:.4f}")
        ckpt = folder / "outputs" / "train" / "latest"
    arguments = {
        "structured": ["prune.method=structured", "prune.ratio=0.5", "prune.scope=layer",
                       f"prune.attention={attention}"],
        "unstructured": ["prune.method=unstructured", "prune.ratio=0.9",
                         f"prune.steps={unstructured_steps}", "prune.schedule=cubic"],
    }  # fmt: skip
    for name in cases:
        m = kta(
            folder, "prune", f"ckpt={ckpt}", *arguments[name],
            f"finetune.epochs={finetune_epochs}", *common,
        )  # fmt: skip
        drop = 100 * (m["test_acc_before"] - m["test_acc_after_finetune"])
        print(
            f"{name}: test_acc {m['test_acc_before']:.4f} -> after pruning "
            f"{m['test_acc_after_pruning']:.4f} -> after fine-tuning "
            f"{m['test_acc_after_finetune']:.4f}; drop {drop:.2f} points (target <= 1); "
            f"sparsity {m['sparsity']:.3f}, params ratio {m['params_ratio']:.3f}, "
            f"MACs ratio {m['macs_ratio']:.3f}, latency ratio {m.get('latency_ratio', 0):.3f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("latency", "accuracy", "all"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--round-to", type=lambda v: v if v == "auto" else int(v), default=None, help="auto | N"
    )
    parser.add_argument("--folder", type=Path, default=Path("outputs/bench_prune"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--ckpt", type=Path, default=None, help="skip training, prune this")
    parser.add_argument(
        "--cases", nargs="+", choices=("structured", "unstructured"),
        default=["structured", "unstructured"],
    )  # fmt: skip
    parser.add_argument("--unstructured-steps", type=int, default=3)
    parser.add_argument("--model", default="resnet18", help="any timm CNN or ViT")
    parser.add_argument("--latency-size", type=int, default=224)
    parser.add_argument("--attention", choices=("head_dims", "heads"), default="head_dims")
    parser.add_argument(
        "--layouts", nargs="+", default=["contiguous", "channels_last"],
        choices=("contiguous", "channels_last", "compiled", "onnxruntime"),
        help="compiled: both models through torch.compile (inductor, freezing); onnxruntime: "
        "exported as kta export does",
    )  # fmt: skip
    parser.add_argument(
        "--kernels", action="store_true", help="also time oneDNN's kernels alone (torch.profiler)"
    )
    parser.add_argument("--quick", action="store_true", help="test_vit at 32 px, 1 run, 1 epoch")
    args = parser.parse_args()
    if args.quick:
        args.model, args.latency_size, args.runs, args.batch_sizes = "test_vit", 32, 1, [1]
        args.epochs, args.finetune_epochs, args.img_size = 1, 1, 16
    if args.part in ("latency", "all"):
        latency(
            args.runs, args.batch_sizes, args.round_to, args.model, args.latency_size,
            args.attention, args.layouts, args.kernels,
        )  # fmt: skip
    if args.part in ("accuracy", "all"):
        accuracy(
            args.folder.resolve(), args.epochs, args.finetune_epochs, args.img_size,
            args.ckpt.resolve() if args.ckpt else None, args.cases, args.unstructured_steps,
            args.model, args.attention,
        )  # fmt: skip


if __name__ == "__main__":
    main()
