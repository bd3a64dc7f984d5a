"""Domain-adaptation study (issue 15): shapes, source style flat; accuracy on each other style.

One command, several seeds. For each seed it trains a source model on flat shapes, then scores
the target-style test split (the same test images in every row) with:
    source-only   the source model as it is
    AdaBN         BatchNorm statistics re-estimated on unlabelled target images (kta adapt)
    TENT          entropy minimisation of the BatchNorm affine parameters (kta adapt)
    DANN          kta train task=dann, labelled flat source + unlabelled target (one run a style)
The unlabelled target images are other draws than the scored ones (adapt.split=train).

    python scripts/adaptation_study.py             # test_resnet, 32 px, 3 epochs, 3 seeds
    python scripts/adaptation_study.py --quick     # a smoke run (16 px, 1 epoch, 1 seed, 1 style)

Budget (the default): timm test_resnet at 32 px, 200 shapes a class (840 training images),
batch 64, 3 epochs for source and DANN alike, TENT one online pass (Adam 1e-3, batch 128),
3 seeds x 4 styles; every kta command runs in this one process (no start-up per run). Prints
mean +- std over seeds per style and method and writes adaptation_study.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from kta_runs import run_kta

STYLES = ["texture", "clutter", "noise", "colorshift"]
METHODS = ["source-only", "AdaBN", "TENT", "DANN"]


def metrics_of(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def one_seed(args: argparse.Namespace, seed: int) -> dict[str, dict[str, float]]:
    """{style: {method: target test accuracy}} for one seed."""
    common = [
        f"model={args.model}",
        "data=shapes",
        f"data.img_size={args.img_size}",
        f"data.per_class={args.per_class}",
        f"data.batch_size={args.batch_size}",
        f"data.seed={seed}",
        f"seed={seed}",
        f"trainer.epochs={args.epochs}",
        f"trainer.threads={args.threads}",
        "trainer.progress=false",
        "logger=none",
    ]
    source = run_kta("train", *common) / "best.ckpt"
    results: dict[str, dict[str, float]] = {style: {} for style in args.styles}
    targets = f"adapt.targets=[{','.join(args.styles)}]"
    for method, name in (("adabn", "AdaBN"), ("tent", "TENT")):
        adapted = metrics_of(run_kta("adapt", f"ckpt={source}", f"method={method}", targets,
                                     f"seed={seed}", f"trainer.threads={args.threads}",
                                     "logger=none"))["targets"]  # fmt: skip
        for style in args.styles:
            results[style]["source-only"] = adapted[style]["source_acc"]
            results[style][name] = adapted[style]["adapted_acc"]
    for style in args.styles:
        dann = metrics_of(run_kta("train", *common, "task=dann", f"data.target_style={style}"))
        results[style]["DANN"] = dann["test_target_acc"]
    return results


def summary(per_seed: list[dict[str, dict[str, float]]], styles: list[str]) -> str:
    lines = [f"{'target style':<14}" + "".join(f"{m:>18}" for m in METHODS)]
    for style in styles:
        cells = []
        for method in METHODS:
            values = [seed[style][method] for seed in per_seed]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} +- {std:.3f}".rjust(18))
        lines.append(f"{style:<14}" + "".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="test_resnet")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--styles", nargs="+", default=STYLES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="16 px, 1 epoch, 1 seed, texture")
    parser.add_argument("--out", default="adaptation_study.json")
    args = parser.parse_args()
    if args.quick:
        args.img_size, args.per_class, args.epochs, args.seeds = 16, 20, 1, 1
        args.batch_size, args.styles = 16, ["texture"]
    out = Path(args.out).resolve()
    previous = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="kta_adaptation_study_") as work:
        os.chdir(work)
        try:
            per_seed = [one_seed(args, seed) for seed in range(args.seeds)]
        finally:
            os.chdir(previous)
    table = summary(per_seed, args.styles)
    print(
        f"\nshapes, source style flat; target-style test accuracy, mean +- std over "
        f"{args.seeds} seed(s); {args.model} at {args.img_size} px, {args.epochs} epoch(s)\n"
    )
    print(table)
    out.write_text(json.dumps({"settings": vars(args), "per_seed": per_seed}, indent=2) + "\n")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
