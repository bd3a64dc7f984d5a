"""Shape-vs-texture and calibration study on the embedded data, several seeds, mean +- std.

    python scripts/shape_bias_study.py                 # test_resnet, 6 epochs, 3 seeds (~5 min)
    python scripts/shape_bias_study.py --quick         # one seed, tiny: checks the script runs

Shape bias (Geirhos et al. 2019): every model trains on `shapes` whose classes carry their own
texture (data.style=class_texture, so texture and shape both predict the label) or a weakened
texture cue, and is scored by `kta eval` on a cue-conflict test set (the shape of class A with the
texture of class B != A): shape bias = shape decisions / (shape + texture decisions).
    plain      class textures
    noise      class textures + Gaussian noise injection (data.augment.noise_std)
    mixed      half the shapes carry another class's texture (data.own_texture_share=0.5)
    stylised   textures drawn at random from the same bank (own share 1/6: no label information)
    stripes    random stripes instead of class textures (data.style=texture)
    adversarial  class textures, FGSM adversarial training at eps 8/255 (task=adversarial)
Each is also scored on class-textured shapes (cues agree) and on flat shapes (shape alone).

Calibration: a plain and a label-smoothed (loss.label_smoothing=0.1) model on digits; ECE, NLL
before and after temperature scaling fitted on the validation split.

Every run is a real `kta train` / `kta eval` in this process; run folders sit in
outputs/study/shape_bias_<time>/runs. Writes results.json and results.md there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COMMAND_LINE = list(sys.argv[1:])  # kta's dispatcher rewrites sys.argv for Hydra on every run
VARIANTS = {
    "plain": ["data.style=class_texture"],
    "noise": ["data.style=class_texture", "data.augment.noise_std=0.5"],
    "mixed": ["data.style=class_texture", "data.own_texture_share=0.5"],
    "stylised": ["data.style=class_texture", "data.own_texture_share=0.1667"],
    "stripes": ["data.style=texture"],
    "adversarial": ["data.style=class_texture", "task=adversarial", "task.eps=8/255"],
}
CALIBRATION = {"plain": [], "label_smoothing": ["loss.label_smoothing=0.1"]}


def kta(command: str, overrides: list[str], run_dir: Path) -> dict[str, Any]:
    """One `kta <command>` in this process; its metrics.json."""
    from kta_cli.cli import main

    try:
        main([command, *overrides, "logger=none", f"hydra.run.dir={run_dir}"])
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise RuntimeError(
                f"kta {command} {' '.join(overrides)} failed ({exit_.code})"
            ) from None
    return json.loads((run_dir / "metrics.json").read_text())


def shape_bias_runs(args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    size = [f"data.img_size={args.img_size}", f"data.per_class={args.per_class}"]
    rows = []
    for seed in range(args.seeds):
        for name, options in VARIANTS.items():
            run = folder / "runs" / f"{name}_{seed}"
            common = [*size, f"data.seed={seed}"]
            started = time.perf_counter()
            kta("train", [*args.train, "data=shapes", *common, *options, f"seed={seed}"], run)
            ckpt = f"ckpt={run / 'best.ckpt'}"
            scores = {}
            for test, style in (("conflict", "cue_conflict"), ("textured", None), ("flat", None)):
                data = ["data=shapes", *common, "eval.temperature_scaling=false"]
                data.append("data.style=flat" if test == "flat" else "data.style=class_texture")
                if style:
                    data.append(f"data.test_style={style}")
                scores[test] = kta("eval", [ckpt, *data], folder / "runs" / f"{name}_{seed}_{test}")
            conflict = scores["conflict"]
            rows.append(
                {
                    "variant": name,
                    "seed": seed,
                    "shape_bias": conflict["shape_bias"],
                    "shape_acc": conflict["shape_acc"],
                    "texture_acc": conflict["texture_acc"],
                    "textured_acc": scores["textured"]["acc"],
                    "flat_acc": scores["flat"]["acc"],
                    "seconds": time.perf_counter() - started,
                }
            )
            row = rows[-1]
            print(
                f"{name:9s} seed={seed} shape_bias={row['shape_bias']} "
                f"textured_acc={row['textured_acc']:.3f} flat_acc={row['flat_acc']:.3f}",
                flush=True,
            )
    return rows


def calibration_runs(args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    rows = []
    for seed in range(args.seeds):
        for name, options in CALIBRATION.items():
            run = folder / "runs" / f"digits_{name}_{seed}"
            data = [f"data.img_size={args.calib_img_size}", f"data.seed={seed}"]
            kta("train", [*args.train, "data=digits", *data, *options, f"seed={seed}"], run)
            scores = kta(
                "eval", [f"ckpt={run / 'best.ckpt'}"], folder / "runs" / f"{run.name}_eval"
            )
            keys = ("acc", "ece", "ece_scaled", "nll", "nll_scaled", "temperature")
            # no *_scaled / temperature when every val image is right (nothing to fit)
            rows.append({"model": name, "seed": seed, **{k: scores.get(k) for k in keys}})
            scaled = scores.get("ece_scaled")
            after = (
                f"{scaled:.4f} (T={scores['temperature']:.2f})"
                if scaled is not None
                else "not fitted"
            )
            print(
                f"{name:15s} seed={seed} acc={scores['acc']:.3f} ece={scores['ece']:.4f} -> "
                f"{after}",
                flush=True,
            )
    return rows


def cell(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "n/a"
    std = statistics.stdev(present) if len(present) > 1 else 0.0
    missing = f" ({len(values) - len(present)} undefined)" if len(present) < len(values) else ""
    return f"{statistics.fmean(present):.3f} +- {std:.3f}{missing}"


def tables(bias: list[dict[str, Any]], calibration: list[dict[str, Any]]) -> list[str]:
    columns = ("shape_bias", "shape_acc", "texture_acc", "textured_acc", "flat_acc")
    lines = ["| variant | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name in VARIANTS:
        rows = [r for r in bias if r["variant"] == name]
        lines.append(
            f"| {name} | " + " | ".join(cell([r[c] for r in rows]) for c in columns) + " |"
        )
    columns = ("acc", "ece", "ece_scaled", "nll", "nll_scaled", "temperature")
    lines += [
        "",
        "| digits model | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name in CALIBRATION:
        rows = [r for r in calibration if r["model"] == name]
        lines.append(
            f"| {name} | " + " | ".join(cell([r[c] for r in rows]) for c in columns) + " |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--img-size", type=int, default=32)  # shapes: textures need the pixels
    parser.add_argument("--calib-img-size", type=int, default=16)  # digits are 8x8 images
    parser.add_argument("--per-class", type=int, default=100)  # 600 shapes: 420 train, 60 val
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="test_resnet")
    parser.add_argument("--quick", action="store_true", help="1 seed, 16 px, 1 epoch: a smoke run")
    args = parser.parse_args(COMMAND_LINE)
    if args.quick:
        args.seeds, args.epochs, args.img_size, args.per_class = 1, 1, 16, 20
        args.calib_img_size = 16
    import torch

    torch.set_num_threads(args.threads)
    args.train = [
        f"model={args.model}",
        f"trainer.epochs={args.epochs}",
        f"trainer.threads={args.threads}",
        "trainer.progress=false",
    ]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d_%H-%M-%S")
    folder = REPO / "outputs" / "study" / f"shape_bias_{stamp}"
    started = time.perf_counter()
    bias = shape_bias_runs(args, folder)
    calibration = calibration_runs(args, folder)
    minutes = (time.perf_counter() - started) / 60
    command = ("python scripts/shape_bias_study.py " + " ".join(COMMAND_LINE)).strip()
    header = [
        f"`{command}`: {args.model}, shapes {args.img_size} px / digits {args.calib_img_size} px, "
        f"{args.epochs} epochs, {args.seeds} seeds, {args.threads} threads, {minutes:.1f} min; "
        "mean +- std over seeds.",
        "",
    ]
    text = "\n".join(header + tables(bias, calibration)) + "\n"
    (folder / "results.md").write_text(text)
    (folder / "results.json").write_text(
        json.dumps({"command": command, "shape_bias": bias, "calibration": calibration}, indent=2)
    )
    print("\n" + text + f"\nwritten to {folder}")


if __name__ == "__main__":
    main()
