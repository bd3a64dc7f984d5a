"""What `kta sweep` costs per trial over typing the same command, and what a second worker on the
same journal file buys.

    python scripts/bench_sweep.py [--trials 5] [--rounds 3] [--epochs 1] [--quick]

A (overhead): per round, one `kta sweep` process running N trials of a space with one value
(optim.lr: [0.05], so every trial is the same run), against N `kta train` processes with the same
overrides, one after another (what a user does by hand). Both sides are whole commands, start-up
included; the sweep pays start-up once, the hand-typed runs N times, so the per-trial figure
also shows what a sweep saves. Reported: median seconds per trial over rounds, and the ratio.

B (workers): N trials of the lr space (random sampler, no pruning) by one worker against two
workers started together on one journal file, each worker at --threads torch threads; also one
worker at 2x --threads, the same cores a second worker takes. Median wall seconds and speed-ups.

Rounds interleave the contenders (A: sweep, direct, sweep, ...; B: 1w, 2w, 1w-2t, ...). Every
process runs in a fresh temporary folder with OMP_NUM_THREADS set to its thread count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ONE_POINT_SPACE = "params:\n  optim.lr: [0.05]\n"


def tiny(epochs: int, threads: int) -> list[str]:
    return [
        "model=test_resnet",
        "data.img_size=16",
        "data.train_per_class=20",
        f"trainer.epochs={epochs}",
        f"trainer.threads={threads}",
        "trainer.progress=false",
        "logger=none",
    ]


def start(args: list[str], folder: Path, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen(
        [sys.executable, "-m", "kta_cli", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wall(commands: list[list[str]], threads: int, together: bool = False) -> float:
    """Seconds for the commands, one after another or all started together, in a fresh folder."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "one_point.yaml").write_text(ONE_POINT_SPACE)
        began = time.perf_counter()
        if together:
            running = [start(c, Path(folder), threads) for c in commands]
        else:
            running = []
            for command in commands:
                running.append(start(command, Path(folder), threads))
                running[-1].wait()
        for process in running:
            if process.wait() != 0:
                raise SystemExit(f"failed: {process.args}\n{process.stderr.read()[-2000:]}")
        return time.perf_counter() - began


def overhead(args: argparse.Namespace) -> None:
    fixed = tiny(args.epochs, args.threads)
    sweep = [
        ["sweep", "train", "sweep=one_point.yaml", "sweep.sampler=random", "sweep.pruner=none",
         f"sweep.trials={args.trials}", *fixed]
    ]  # fmt: skip
    direct = [["train", "optim.lr=0.05", *fixed] for _ in range(args.trials)]
    per_trial: dict[str, list[float]] = {"sweep": [], "direct": []}
    for round_ in range(args.rounds):
        per_trial["sweep"].append(wall(sweep, args.threads) / args.trials)
        per_trial["direct"].append(wall(direct, args.threads) / args.trials)
        print(
            f"A round {round_ + 1}: "
            + ", ".join(f"{k} {v[-1]:.2f} s/trial" for k, v in per_trial.items()),
            flush=True,
        )
    sweep_s, direct_s = (statistics.median(per_trial[k]) for k in ("sweep", "direct"))
    print(
        f"A: {args.trials} trials, median s/trial: kta sweep {sweep_s:.2f}, kta train "
        f"by hand {direct_s:.2f}; sweep/direct = {sweep_s / direct_s:.2f}"
    )


def workers(args: argparse.Namespace) -> None:
    def sweep(threads: int) -> list[str]:
        return ["sweep", "train", "sweep=lr", "sweep.sampler=random", "sweep.pruner=none",
                f"sweep.trials={args.trials}", *tiny(args.epochs, threads)]  # fmt: skip

    times: dict[str, list[float]] = {"1 worker": [], "2 workers": [], "1 worker, 2x threads": []}
    for round_ in range(args.rounds):
        times["1 worker"].append(wall([sweep(args.threads)], args.threads))
        times["2 workers"].append(wall([sweep(args.threads)] * 2, args.threads, together=True))
        doubled = 2 * args.threads
        times["1 worker, 2x threads"].append(wall([sweep(doubled)], doubled))
        print(
            f"B round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()),
            flush=True,
        )
    medians = {k: statistics.median(v) for k, v in times.items()}
    one = medians["1 worker"]
    print(
        f"B: {args.trials} trials, median wall s: "
        + ", ".join(f"{k} {v:.1f} (speed-up {one / v:.2f})" for k, v in medians.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--quick", action="store_true", help="2 trials, 1 round: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.rounds = 2, 1
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"{args.threads} thread(s) per worker", flush=True)  # fmt: skip
    overhead(args)
    workers(args)


if __name__ == "__main__":
    main()
