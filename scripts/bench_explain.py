"""Explanations per second per `kta explain` method at 224x224 on this CPU.

    python scripts/bench_explain.py [--model resnet18] [--images 2] [--rounds 3]

Each round runs every method once on the same images (interleaved, so load drift hits all
methods alike); the figure is the median over rounds. Defaults are those of configs/explain.yaml.
Random weights (pretrained=False): speed does not depend on what the weights are.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import timm
import torch

from kta_cli.explain.methods import METHODS, Explainer, Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    extra = {"img_size": args.size} if "vit" in args.model else {}
    model = timm.create_model(args.model, pretrained=False, num_classes=10, **extra).eval()
    explainer = Explainer(
        model,
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
        img_size=args.size,
        settings=Settings(),
    )
    images = torch.randn(args.images, 3, args.size, args.size)
    targets = explainer.logits(images).argmax(dim=1)
    methods = args.methods.split(",")
    for method in methods:  # warm-up (and first-call costs such as hooks and layer search)
        explainer.explain(method, images[:1], targets[:1])
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(args.rounds):
        for method in methods:
            start = time.perf_counter()
            explainer.explain(method, images, targets)
            seconds[method].append(time.perf_counter() - start)
    print(
        f"{args.model} at {args.size}x{args.size}, {args.images} images per call, "
        f"median of {args.rounds} interleaved rounds, 2 threads, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}"
    )
    base = args.images / statistics.median(seconds[methods[0]])
    print(f"| method | explanations/s | s per image | relative to {methods[0]} |")
    print("|---|---:|---:|---:|")
    for method in methods:
        rate = args.images / statistics.median(seconds[method])
        print(f"| {method} | {rate:.2f} | {1 / rate:.2f} | {rate / base:.3f} |")


if __name__ == "__main__":
    main()
