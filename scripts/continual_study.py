"""Continual-learning study (issue 15): how much do naive fine-tuning, replay, EWC and LwF forget
of earlier tasks, against joint training, in the class-incremental setting?

One command, several seeds. For split digits (five tasks of two digits) and split shapes (three
tasks of two shapes, drawn flat) it runs `kta continual` once per method and seed:
    naive, replay (two buffer sizes), EWC, LwF, joint
and reports average accuracy after the last task and forgetting (Chaudhry et al. 2018, as in
kta_cli/continual/metrics.py), mean +- std across seeds (each seed: its own split, init, order
of batches and replay memory).

    python scripts/continual_study.py              # test_resnet, 16 px, 2 epochs a task, 3 seeds
    python scripts/continual_study.py --quick      # a smoke run (1 epoch, 1 seed, small data)
    python scripts/continual_study.py --size 32 --epochs 1     # the other budget the brief allows

Budget (the default): timm test_resnet at 16 px, 2 epochs per task, batch 32, Adam 1e-3,
3 seeds, 6 methods x 2 scenarios = 36 runs in this one process (no start-up per run); shapes at
100 per class. Meant to fit about 5 minutes on 2 idle cores (not measured on an idle machine).
Writes continual_study.json beside the outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from kta_cli.cli import main as kta
from kta_cli.report.run_folder import latest_run

SCENARIOS = {
    "split_digits": ["scenario=split_digits"],
    "split_shapes": ["scenario=split_shapes"],
}
KEPT = ("average_accuracy", "forgetting", "backward_transfer", "accuracy_matrix")


def methods(buffers: list[int]) -> list[tuple[str, list[str]]]:
    rows: list[tuple[str, list[str]]] = [("naive", ["method=naive"])]
    rows += [(f"replay {b}", ["method=replay", f"method.buffer_size={b}"]) for b in buffers]
    rows += [("ewc", ["method=ewc"]), ("lwf", ["method=lwf"]), ("joint", ["method=joint"])]
    return rows


def run_continual(*args: str) -> dict:
    """Run one `kta continual` in this process; return its scenario folder's metrics."""
    try:
        kta(["continual", *args])
    except SystemExit as exit_:
        if exit_.code:
            raise RuntimeError(f"kta continual {' '.join(args)} failed ({exit_.code})") from None
    folder = latest_run(Path("outputs") / "continual" / "latest")
    return json.loads((folder / "metrics.json").read_text())


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{round(values[0], 3) + 0.0:.3f}"
    return f"{round(statistics.mean(values), 3) + 0.0:.3f} +- {statistics.stdev(values):.3f}"


def study(args: argparse.Namespace) -> dict:
    common = [f"model={args.model}", f"data.img_size={args.size}", f"trainer.epochs={args.epochs}",
              "data.batch_size=32", "optim=adam", "trainer.progress=false", "logger=none",
              "figures=false", f"trainer.threads={args.threads}"]  # fmt: skip
    if args.quick:
        common += ["data.train_per_class=20", "data.per_class=30"]
    else:
        common += ["data.per_class=100"]  # shapes: 600 images (read by shapes only)
    results: dict = {}
    for scenario in args.scenarios:
        scenario_args = SCENARIOS[scenario]
        for label, method_args in methods(args.buffers):
            if args.methods and label.split()[0] not in args.methods:
                continue
            for seed in range(args.seeds):
                started = time.perf_counter()
                metrics = run_continual(*common, *scenario_args, *method_args, f"seed={seed}",
                                        f"data.seed={seed}")  # fmt: skip
                cell = results.setdefault(scenario, {}).setdefault(label, [])
                kept = {key: metrics[key] for key in KEPT}
                cell.append({"seed": seed, "seconds": time.perf_counter() - started, **kept})
                print(f"{scenario} {label} seed {seed}: avg acc {metrics['average_accuracy']:.3f}"
                      f" forgetting {metrics['forgetting']:.3f}", flush=True)  # fmt: skip
    return results


def print_tables(results: dict) -> None:
    for scenario, rows in results.items():
        print(f"\n{scenario} (class-incremental): mean +- std over seeds")
        print(f"{'method':<14} {'average accuracy':>20} {'forgetting':>20} {'BWT':>20}")
        for label, runs in rows.items():
            cells = [mean_std([r[k] for r in runs])
                     for k in ("average_accuracy", "forgetting", "backward_transfer")]  # fmt: skip
            print(f"{label:<14} {cells[0]:>20} {cells[1]:>20} {cells[2]:>20}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="test_resnet")
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--buffers", type=int, nargs=2, default=[50, 200])
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--methods", nargs="+", default=None, help="naive replay ewc lwf joint")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--quick", action="store_true", help="1 epoch, 1 seed, 20 per class")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.seeds, args.buffers = 1, 1, [10, 30]
    out = Path(args.out or tempfile.mkdtemp(prefix="kta_continual_study_"))
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)
    started = time.perf_counter()
    results = study(args)
    print_tables(results)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    summary = {"settings": settings, "seconds": time.perf_counter() - started, "results": results}
    (out / "continual_study.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{summary['seconds']:.0f} s; results in {out / 'continual_study.json'}")


if __name__ == "__main__":
    main()
