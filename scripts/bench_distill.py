"""Benchmark `kta distill` on the embedded digits: gap closure over seeds, and epoch-time ratios.

1. Trains one teacher with `kta train` on the whole training split, then runs `kta distill ...
   distill.baseline=true` for each seed on a small transfer set (--per-class labelled examples of
   each class, the same split): the distilled student and the same student trained without the
   teacher, same budget.
   Gap closure = (KD acc - scratch acc) / (teacher acc - scratch acc), on the test split.
2. Times one training epoch (whole training split, CPU) of the student alone, of distillation with
   the teacher cache, and of distillation running the teacher every step: interleaved rounds,
   median, 2 threads.

    python scripts/bench_distill.py            # the figures in docs/bench/distill.md
    python scripts/bench_distill.py --quick    # a smoke run of the script itself
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from kta_runs import run_kta_in


def gap_closure_runs(args: argparse.Namespace, workdir: Path, teacher: Path) -> list[dict]:
    rows = []
    for seed in args.seeds:
        run_dir = run_kta_in(
            workdir,
            "distill",
            f"teacher={teacher}",
            f"student={args.student}",
            f"seed={seed}",
            f"trainer.epochs={args.epochs}",
            "distill.baseline=true",
            "trainer.progress=false",
            "logger=none",
            "trainer.threads=2",
            f"trainer.device={args.device}",
            f"data.train_per_class={args.per_class}",
            f"distill.alpha={args.alpha}",
            f"distill.temperature={args.temperature}",
            *args.distill_overrides,
        )
        metrics = json.loads((run_dir / "metrics.json").read_text())
        rows.append(
            {
                "seed": seed,
                **{
                    k: metrics[k]
                    for k in ("teacher_test_acc", "scratch_test_acc", "test_acc", "gap_closure")
                },
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def epoch_seconds(task: torch.nn.Module, loader: Any) -> float:
    """Wall-clock seconds of one training epoch (forward, backward, optimizer step)."""
    params = [p for p in task.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    task.train()
    loader.set_epoch(0, 0)
    start = time.perf_counter()
    for batch in loader:
        loss = task(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def timing_runs(args: argparse.Namespace, teacher_path: Path) -> dict[str, float]:
    """Median epoch seconds of each variant, measured in alternating rounds."""
    from kta_cli.data.datasets import build_data, spec_from_dict
    from kta_cli.engine.checkpoint import load_checkpoint
    from kta_cli.engine.distill_task import DistillationTask
    from kta_cli.engine.tasks import ClassificationTask
    from kta_cli.engine.teacher_cache import compute_outputs, with_example_ids
    from kta_cli.loading import model_from_checkpoint
    from kta_cli.losses.schedules import ValueSchedule
    from kta_cli.models.factory import create_model

    checkpoint = load_checkpoint(teacher_path)
    data = build_data(spec_from_dict(checkpoint["config"]["data"]))
    teacher = model_from_checkpoint(checkpoint).eval()
    classes, size = len(data.class_names), data.spec.img_size
    student = create_model(args.student, num_classes=classes, img_size=size)
    live = DistillationTask(
        student, teacher, temperature=ValueSchedule(4.0), alpha=ValueSchedule(0.5), total_steps=1
    )
    cached = DistillationTask(
        student, teacher, temperature=ValueSchedule(4.0), alpha=ValueSchedule(0.5), total_steps=1
    )
    started = time.perf_counter()
    cached.use_cache(compute_outputs(cached.teacher_outputs, data.train, torch.device("cpu")))
    cache_build = time.perf_counter() - started
    variants = {
        "student only": (ClassificationTask(student), data.train),
        "distill, cached teacher": (cached, with_example_ids(data.train)),
        "distill, live teacher": (live, data.train),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for task, loader in variants.values():  # warm-up
        epoch_seconds(task, loader)
    for _ in range(args.rounds):
        for name, (task, loader) in variants.items():
            samples[name].append(epoch_seconds(task, loader))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    medians["cache build (once)"] = cache_build
    return medians


def closure_text(value: float | None) -> str:
    return "n/a (no gap)" if value is None else f"{value:.3f}"


def report(rows: list[dict], seconds: dict[str, float], args: argparse.Namespace) -> None:
    closures = [r["gap_closure"] for r in rows if r["gap_closure"] is not None]
    print("\nseed  teacher  scratch  distilled  gap closure")
    for r in rows:
        print(
            f"{r['seed']:>4}  {r['teacher_test_acc']:.4f}   {r['scratch_test_acc']:.4f}   "
            f"{r['test_acc']:.4f}     {closure_text(r['gap_closure'])}"
        )
    if closures:
        spread = statistics.stdev(closures) if len(closures) > 1 else 0.0
        print(
            f"gap closure: mean {statistics.mean(closures):.3f}, std {spread:.3f}, "
            f"min {min(closures):.3f}, max {max(closures):.3f} (target >= 0.5)"
        )
    base = seconds["student only"]
    print(f"\nepoch time ({args.rounds} interleaved rounds, median, 2 threads):")
    for name, value in seconds.items():
        ratio = "" if name.startswith("cache") else f"  {value / base:.2f}x student-only"
        print(f"  {name:<26} {value:.3f} s{ratio}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher-model", default="resnet18")
    parser.add_argument("--teacher-epochs", type=int, default=10)
    parser.add_argument("--student", default="resnet10t")
    parser.add_argument("--epochs", type=int, default=30, help="student budget (both arms)")
    parser.add_argument("--per-class", default="20", help="transfer set: examples per class")
    parser.add_argument("--alpha", type=float, default=0.1, help="weight of the label CE")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--device", default="cpu", help="for the kta runs; timing is on CPU")
    parser.add_argument("--img-size", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kta-bench-distill"))
    parser.add_argument("--quick", action="store_true", help="tiny models, 1 epoch, 1 seed")
    parser.add_argument("distill_overrides", nargs="*", help="extra kta distill overrides")
    args = parser.parse_args()
    if args.quick:
        args.teacher_model, args.student, args.teacher_epochs, args.epochs = (
            "test_resnet",
            "test_resnet",
            1,
            1,
        )
        args.seeds, args.rounds = [0], 1
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(2)
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, workdir {args.workdir}")
    print(f"settings: {vars(args)}")
    teacher_dir = run_kta_in(
        args.workdir,
        "train",
        f"model={args.teacher_model}",
        f"data.img_size={args.img_size}",
        f"trainer.epochs={args.teacher_epochs}",
        "trainer.progress=false",
        "logger=none",
        "trainer.threads=2",
        f"trainer.device={args.device}",
    )
    teacher = teacher_dir / "best.ckpt"
    rows = gap_closure_runs(args, args.workdir, teacher)
    seconds = timing_runs(args, teacher)
    report(rows, seconds, args)


if __name__ == "__main__":
    main()
