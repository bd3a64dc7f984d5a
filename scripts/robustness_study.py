"""Robustness study: clean and robust accuracy (FGSM and PGD at several eps) of a plain model,
a noise-trained one (data.augment.noise_std), an adversarially trained one (task=adversarial) and
the README chain from the plain model (distill -> prune 50% -> int8; the int8 program is attacked
with examples made on its float parent, a transfer attack), several seeds, on the embedded
digits; ECE from `kta eval`.

Every run is a real `kta train` / `kta attack` / `kta eval` in this process (imports paid once),
its run folder inside the study folder (outputs/study_robustness/<time>/runs/...). Writes
results.json and results.md there (mean +- std over seeds).

    python scripts/robustness_study.py               # test_resnet 32 px, 4 epochs, 3 seeds
    python scripts/robustness_study.py --quick       # a smoke run of the script itself
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

from kta_runs import run_kta_in  # noqa: E402

EPS = ["2/255", "4/255", "8/255"]
ATTACKS = ("fgsm", "pgd")


def variants(args: argparse.Namespace) -> dict[str, list[str]]:
    """The training recipes compared (same model, data, optimiser and budget)."""
    return {
        "plain": [],
        f"noise {args.noise_std:g}": [f"data.augment.noise_std={args.noise_std}"],
        f"adversarial {args.adv_attack} 8/255": [
            "task=adversarial",
            f"task.attack={args.adv_attack}",
            "task.eps=8/255",
            f"task.val_steps={args.val_steps}",
        ],
    }


def train(args: argparse.Namespace, workdir: Path, recipe: list[str], seed: int) -> Path:
    return run_kta_in(
        workdir,
        "train",
        f"model={args.model}",
        f"data.img_size={args.img_size}",
        f"trainer.epochs={args.epochs}",
        f"seed={seed}",
        f"data.seed={seed}",
        *common(args),
        *recipe,
    )


def common(args: argparse.Namespace) -> list[str]:
    return ["trainer.progress=false", "logger=none", f"trainer.threads={args.threads}"]


def chain(args: argparse.Namespace, workdir: Path, plain: Path, seed: int) -> dict[str, Path]:
    """The README chain from the plain model: distil into a student, prune it, quantize that."""
    steps = {}
    steps["distilled"] = run_kta_in(
        workdir, "distill", f"teacher={plain}", f"student={args.student}",
        f"trainer.epochs={args.epochs}", f"seed={seed}", f"data.seed={seed}", *common(args),
    )  # fmt: skip
    steps["distilled + pruned 50%"] = run_kta_in(
        workdir, "prune", f"ckpt={steps['distilled']}", "prune.ratio=0.5",
        f"finetune.epochs={max(1, args.epochs // 2)}", f"seed={seed}", *common(args),
    )  # fmt: skip
    steps["distilled + pruned + int8"] = run_kta_in(
        workdir, "quantize", f"ckpt={steps['distilled + pruned 50%']}", "logger=none",
        "measure.latency=false",  # accuracy is what this study reads; latency is benchmarked
    )  # fmt: skip
    return steps


def score(args: argparse.Namespace, workdir: Path, ckpt: Path, seed: int) -> dict:
    """Clean, FGSM, PGD and noise accuracy from `kta attack`; ECE from `kta eval`."""
    attack = run_kta_in(
        workdir,
        "attack",
        f"ckpt={ckpt}",
        f"images={args.images}",
        f"attack.steps={args.pgd_steps}",
        f"attack.eps=[0,{','.join(EPS)}]",
        "noise.std=[0.1,0.2]",
        "examples=0",
        f"seed={seed}",
        *common(args)[1:],
    )
    scored = json.loads((attack / "metrics.json").read_text())
    row = {"clean_acc": scored["clean_acc"]}
    row.update({f"{m}@{e}": scored[f"{m}_acc@{e}"] for m in ATTACKS for e in EPS})
    row.update({f"noise@{s}": scored[f"noise_acc@{s}"] for s in ("0.1", "0.2")})
    evaluated = run_kta_in(workdir, "eval", f"ckpt={ckpt}", *common(args)[1:])
    row["ece"] = json.loads((evaluated / "metrics.json").read_text()).get("ece")
    return row


def summarise(rows: list[dict]) -> dict[str, str]:
    """mean +- std over seeds of every column ('n/a' where a figure is missing)."""
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows if r[key] is not None]
        if not values:
            out[key] = "n/a"
        elif len(values) == 1:
            out[key] = f"{values[0]:.3f}"
        else:
            out[key] = f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"
    return out


def markdown(summary: dict[str, dict[str, str]], args: argparse.Namespace, seconds: float) -> str:
    columns = list(next(iter(summary.values())))
    lines = [
        f"Robustness study, {datetime.now(timezone.utc):%Y-%m-%d}: {args.model} at "
        f"{args.img_size} px on digits, {args.epochs} epochs, seeds {args.seeds}, "
        f"PGD-{args.pgd_steps} / FGSM on {args.images} test images, "
        f"{args.threads} threads, wall time {seconds / 60:.1f} min.",
        "",
        "| model | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    lines += [f"| {name} | " + " | ".join(row.values()) + " |" for name, row in summary.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="test_resnet")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--images", type=int, default=100, help="test images attacked")
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--val-steps", type=int, default=5, help="PGD steps of val_robust_acc")
    parser.add_argument("--adv-attack", default="fgsm", choices=["fgsm", "pgd"])
    parser.add_argument(
        "--noise-std", type=float, default=0.5, help="normalised units (0.5: ~0.11 in pixels)"
    )
    parser.add_argument("--student", default="test_resnet", help="the chain's distilled model")
    parser.add_argument("--no-chain", action="store_true", help="skip distill -> prune -> int8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    if args.quick:
        args.img_size, args.epochs, args.seeds, args.images = 16, 1, [0], 16
        args.pgd_steps, args.val_steps = 2, 1
    folder = REPO / "outputs" / "study_robustness" / f"{datetime.now():%Y-%m-%d_%H-%M-%S}"
    (folder / "runs").mkdir(parents=True)
    started = time.perf_counter()
    results: dict[str, list[dict[str, Any]]] = {}
    workdir = folder / "runs"
    for seed in args.seeds:
        for name, recipe in variants(args).items():
            trained = train(args, workdir, recipe, seed)
            results.setdefault(name, []).append(score(args, workdir, trained, seed))
            if name == "plain" and not args.no_chain:
                for step, ckpt in chain(args, workdir, trained, seed).items():
                    results.setdefault(step, []).append(score(args, workdir, ckpt, seed))
    seconds = time.perf_counter() - started
    summary = {name: summarise(rows) for name, rows in results.items()}
    (folder / "results.json").write_text(
        json.dumps({"runs": results, "args": vars(args)}, indent=2)
    )
    text = markdown(summary, args, seconds)
    (folder / "results.md").write_text(text)
    print(text)
    print(f"study folder: {folder}")


if __name__ == "__main__":
    main()
